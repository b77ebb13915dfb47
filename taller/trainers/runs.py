"""Background training runs: start one, ask how it goes, cancel it, list them all.

The ``train_model`` and ``list_models`` tools use this registry for every model in
:data:`taller.trainers.TRAINERS`. ``start`` creates the run folder (so the run id exists and
``status.json`` says ``running``) and returns at once; the trainer's
``train(config, run=run, cancel_event=event)`` runs in a daemon thread and reports progress
through :func:`taller.progress.emit`. One run per model at a time: a second ``start`` of a model
that is still training is refused with a clear message.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from taller.progress import CancelledError
from taller.errors import ToolError
from taller.trainers import TRAINERS


@dataclass
class _ActiveRun:
    run_id: str
    model: str
    cancel_event: threading.Event
    run: Any  # engine.Run
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.time)
    result: dict[str, Any] | None = None
    error: str | None = None
    state: str = "running"


_lock = threading.Lock()
_active: dict[str, _ActiveRun] = {}


def trainer_module(model: str) -> Any:
    """The trainer module of ``model``; ToolError for an unknown or not-yet-built model."""
    if model not in TRAINERS:
        raise ToolError(f"unknown model {model!r}; choose one of: {', '.join(TRAINERS)}")
    try:
        return importlib.import_module(TRAINERS[model])
    except ModuleNotFoundError as exc:
        if exc.name == TRAINERS[model]:
            raise ToolError(f"the {model} trainer is not available in this version of Taller") from exc
        raise


def build_config(model: str, epochs: int | None = None, **overrides: Any) -> Any:
    """The model's Config with ``epochs`` and any field overrides; clear errors for bad values."""
    module = trainer_module(model)
    config = module.Config()
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ToolError(f"{model} has no setting {', '.join(unknown)}; settings: {', '.join(sorted(names))}")
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ToolError(f"epochs must be a whole number of at least 1, got {epochs!r}")
        overrides["epochs"] = epochs
    return dataclasses.replace(config, **overrides)


def _worker(active: _ActiveRun, module: Any, config: Any) -> None:
    try:
        metrics = module.train(config, run=active.run, cancel_event=active.cancel_event)
        active.result = metrics
        active.state = "finished"
    except CancelledError:
        active.state = "cancelled"
    except BaseException as exc:  # the thread must record every failure; the run's status says it too
        active.error = f"{type(exc).__name__}: {exc}"
        active.state = "failed"
        if active.run.status.get("state") == "running":
            active.run.fail(exc)


def start(model: str, epochs: int | None = None, **overrides: Any) -> str:
    """Start training ``model`` in the background; returns the run id at once.

    ``overrides`` set Config fields (``batch_size=64``, ``dry_run=True``, ``resume=True``...).
    """
    from taller.trainers.engine import Run

    config = build_config(model, epochs, **overrides)
    module = trainer_module(model)
    # Missing data must be an answer now, not a failed run found later.
    check_data = getattr(module, "check_data", None)
    if check_data is not None:
        check_data(config)
    with _lock:
        for active in _active.values():
            if active.model == model and active.thread.is_alive():
                raise ToolError(
                    f"{model} is already training (run {active.run_id}); wait for it to finish or cancel it first"
                )
        event = threading.Event()
        run = Run.create(model, config, resume=bool(getattr(config, "resume", False)), cancel_event=event)
        active = _ActiveRun(run_id=run.run_id, model=model, cancel_event=event, run=run)
        active.thread = threading.Thread(
            target=_worker, args=(active, module, config), name=f"train-{run.run_id}", daemon=True
        )
        _active[run.run_id] = active
    active.thread.start()
    return run.run_id


def cancel(run_id: str) -> bool:
    """Ask a running run to stop at its next step (it saves a checkpoint first). False if not running."""
    with _lock:
        active = _active.get(run_id)
    if active is None or not active.thread.is_alive():
        return False
    active.cancel_event.set()
    return True


def _describe(active: _ActiveRun) -> dict[str, Any]:
    status = active.run.status
    state = status.get("state", active.state)
    if active.thread.is_alive():
        state = "cancelling" if active.cancel_event.is_set() else "running"
    return {
        "run_id": active.run_id,
        "model": active.model,
        "state": state,
        "epoch": status.get("epoch"),
        "epochs": status.get("epochs"),
        "metrics": active.result if active.result is not None else status.get("metrics", {}),
        "error": active.error or status.get("error"),
        "created": status.get("created"),
        "finished": status.get("finished"),
        "device": status.get("device"),
        "path": status.get("path"),
    }


def get(run_id: str) -> dict[str, Any]:
    """The state of one run (this process's or any on disk); ToolError if there is no such run."""
    with _lock:
        active = _active.get(run_id)
    if active is not None:
        return _describe(active)
    from taller.trainers.engine import list_runs

    for status in list_runs():
        if status.get("run_id") == run_id:
            return _from_disk(status)
    raise ToolError(f"no training run called {run_id!r}")


def _from_disk(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": status.get("run_id"),
        "model": status.get("model"),
        "state": status.get("state"),
        "epoch": status.get("epoch"),
        "epochs": status.get("epochs"),
        "metrics": status.get("metrics", {}),
        "error": status.get("error"),
        "created": status.get("created"),
        "finished": status.get("finished"),
        "device": status.get("device"),
        "path": status.get("path"),
        "checkpoints": status.get("checkpoints", []),
    }


def list_all(model: str | None = None, problems: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """Running runs of this process and every run on disk, newest first.

    A run folder whose ``status.json`` is unusable is skipped; given a ``problems`` list, it is
    reported there as ``{"path", "problem"}`` (see :func:`taller.trainers.checkpoints.read_status`).
    """
    from taller.trainers.engine import list_runs

    with _lock:
        actives = dict(_active)
    rows = []
    for status in list_runs(model, problems=problems):
        active = actives.get(status.get("run_id"))
        row = _describe(active) if active is not None else _from_disk(status)
        row["checkpoints"] = status.get("checkpoints", [])
        rows.append(row)
    return rows


def wait(run_id: str, timeout: float | None = None) -> dict[str, Any]:
    """Block until the run ends (or ``timeout`` seconds pass); returns :func:`get`."""
    with _lock:
        active = _active.get(run_id)
    if active is not None:
        active.thread.join(timeout)
    return get(run_id)


def running() -> list[str]:
    """Run ids of this process's runs that are still training."""
    with _lock:
        return [run_id for run_id, active in _active.items() if active.thread.is_alive()]
