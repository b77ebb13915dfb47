"""Training-run tracking: progress events in, one state per run out (plain logic, no Textual).

Training runs outlive the request that started them; they report on :data:`taller.progress.bus`
from their own threads, one event per step or epoch (``run_id``, ``model``, ``epoch``/``epochs``,
``step``/``total``, ``loss``, ``metric``/``metric_name``, ``eta_s``, and ``state`` when a run ends
by cancellation). :class:`RunTracker` folds those events into a :class:`RunState` per run: the
latest value of every field, the recent losses (for a sparkline), how far along the run is and
how it ended. Runs that finish or fail without a progress event are found by
:func:`ended_states`, which reads the runs registry (file I/O: call it from a worker thread).

Nothing here draws or imports an interface framework: the chat's runs panel renders these
states, and a server that keeps the latest progress of each run can keep a tracker too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from taller.ui.formatting import format_number, format_seconds

SPARKLINE_POINTS = 60  # loss values kept per run
ENDED_STATES = ("finished", "cancelled", "failed")  # a progress event may carry one of these
ACTIVE_STATES = ("running", "cancelling")  # still working (a cancelling run saves its checkpoint)


def progress_fraction(event: dict[str, Any]) -> float | None:
    """How far a run is, 0..1, from its epoch (and step within the epoch); None when unknown."""
    epoch, epochs = event.get("epoch"), event.get("epochs")
    step, total = event.get("step"), event.get("total")
    if not isinstance(epoch, (int, float)) or not isinstance(epochs, (int, float)) or epochs <= 0:
        return None
    if isinstance(step, (int, float)) and isinstance(total, (int, float)) and total > 0:
        done = ((epoch - 1) * total + step) / (epochs * total)
    else:
        done = epoch / epochs
    return min(max(done, 0.0), 1.0)


@dataclass
class RunState:
    """What is known of one training run: the merged progress events and how it ended."""

    run_id: str
    model: str = ""
    state: str = "running"
    losses: list[float] = field(default_factory=list)
    last_event: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Run ids start with the model's name (``vae-20261122-…``): a fair label until told.
        self.model = self.model or self.run_id.split("-")[0]

    @property
    def active(self) -> bool:
        """Running or cancelling: the run still works (shown normally, not dimmed)."""
        return self.state in ACTIVE_STATES

    def update(self, event: dict[str, Any]) -> None:
        """Fold in one progress event: fields it leaves out (or sends as None) keep their value."""
        self.last_event = {**self.last_event, **{k: v for k, v in event.items() if v is not None}}
        if event.get("model"):
            self.model = str(event["model"])
        loss = event.get("loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            self.losses = (self.losses + [float(loss)])[-SPARKLINE_POINTS:]
        if event.get("state") in ENDED_STATES:
            self.state = str(event["state"])

    def fraction(self) -> float | None:
        """0..1 done; a finished run is complete whatever its last event said."""
        return 1.0 if self.state == "finished" else progress_fraction(self.last_event)

    def details(self) -> list[str]:
        """Plain-text facts for a one-line label: epoch, loss, metric, and the ETA while running."""
        event = self.last_event
        parts = []
        if event.get("epoch") is not None and event.get("epochs"):
            parts.append(f"epoch {event['epoch']}/{event['epochs']}")
        if isinstance(event.get("loss"), (int, float)):
            parts.append(f"loss {format_number(event['loss'])}")
        if isinstance(event.get("metric"), (int, float)):
            parts.append(f"{event.get('metric_name') or 'metric'} {format_number(event['metric'])}")
        if self.state == "running" and isinstance(event.get("eta_s"), (int, float)) and event["eta_s"] > 0:
            parts.append(f"ETA {format_seconds(event['eta_s'])}")
        return parts


class RunTracker:
    """Every run seen on the progress stream, oldest first, each as a :class:`RunState`."""

    def __init__(self) -> None:
        self._runs: dict[str, RunState] = {}

    def __iter__(self) -> Iterator[RunState]:
        return iter(list(self._runs.values()))

    def __len__(self) -> int:
        return len(self._runs)

    def get(self, run_id: str) -> RunState | None:
        return self._runs.get(run_id)

    def update(self, event: dict[str, Any]) -> tuple[RunState, bool] | None:
        """Apply a progress event; (its run's state, whether the run is new), None without a run id."""
        if not event.get("run_id"):
            return None
        run_id = str(event["run_id"])
        run = self._runs.get(run_id)
        created = run is None
        if run is None:
            run = self._runs[run_id] = RunState(run_id, str(event.get("model") or ""))
        run.update(event)
        return run, created

    def set_state(self, run_id: str, state: str) -> bool:
        """Record how a run ended (or that it is cancelling); True when that changed anything."""
        run = self._runs.get(run_id)
        if run is None or run.state == state:
            return False
        run.state = state
        return True

    def running_ids(self) -> list[str]:
        return [run.run_id for run in self._runs.values() if run.state == "running"]

    def prune(self, keep: int) -> list[str]:
        """Forget the oldest runs that are no longer running until at most ``keep`` remain.

        Running runs are never forgotten (their progress still matters); cancelling ones are, as
        they only wait for their last checkpoint. Returns the forgotten run ids, oldest first.
        """
        forgotten = []
        for run in list(self._runs.values()):
            if len(self._runs) <= keep:
                break
            if run.state != "running":
                del self._runs[run.run_id]
                forgotten.append(run.run_id)
        return forgotten


def ended_states(run_ids: Iterable[str]) -> dict[str, str]:
    """Runs among ``run_ids`` that the registry says have ended: run id -> finished/failed/….

    "finished" and "failed" are not progress events, so they are read from the runs registry
    (each run's status file). Blocking file I/O; runs the registry cannot read are left out.
    """
    try:
        from taller.trainers import runs
    except ImportError:
        return {}
    ended = {}
    for run_id in run_ids:
        try:
            state = runs.get(run_id).get("state")
        except Exception:
            continue
        if state and state not in ACTIVE_STATES:
            ended[run_id] = str(state)
    return ended


@dataclass(frozen=True)
class CancelOutcome:
    """What asking a run to stop did, said for people (``severity`` as in a notification)."""

    stopped: bool
    message: str
    severity: str = "information"


def request_cancel(run_id: str) -> CancelOutcome:
    """Ask a training run to stop; it keeps its last checkpoint."""
    try:
        from taller.trainers import runs
    except ImportError:
        return CancelOutcome(False, "Training runs are not available in this version of Taller.", "error")
    try:
        stopped = runs.cancel(run_id)
    except Exception as exc:
        return CancelOutcome(False, f"Cannot cancel {run_id}: {exc}", "error")
    if stopped:
        return CancelOutcome(True, f"Cancelling {run_id}; its last checkpoint is kept.")
    return CancelOutcome(False, f"{run_id} is not running.", "warning")
