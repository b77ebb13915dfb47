"""Lessons: the experiment that shows what each workshop model is there to teach.

A trainer's lesson is a few short trainings chosen so that its point shows on a laptop CPU in at
most ten minutes: the vanilla RNN failing where LSTM and GRU remember, the bidirectional gain,
beam search against greedy decoding, the autoencoder's bottleneck size against reconstruction,
the VAE's β trade-off, dropout and early stopping against over-fitting. Each lesson writes a plot
and a two-sentence reading (English and Spanish) of what its own figures show, and checks its
claim (for example "LSTM and GRU ≥ 0.9 at length 100 while the vanilla RNN stays ≤ 0.3") on them::

    python -m taller.trainers.rnn --lesson
    python -m taller.trainers.rnn --lesson --dry-run     # the same path on a few batches

A lesson is a run of its model (``runs/<model>/<run_id>/`` with ``config.lesson`` set): it reports
progress with one ETA for all its experiments and can be cancelled like any training. It writes
no ``best.pt`` / ``last.pt``, so the model's tools (``generate_images``, ``translate`` ...) never
load a lesson's side models. Its files are ``lesson.json`` (the claim, whether it held, the
figures, the readings, each finished experiment) and ``lesson.png``.

Nothing is lost when a lesson stops: every experiment's figures are in ``lesson.json`` as soon as
it ends, and the next lesson run of the same model and settings starts from the experiments that
the newest unfinished one (cancelled, killed) had done, and says which run it continued.

A trainer adds ``lesson: bool = False`` to its ``Config``, a ``teach(config, notebook, device) ->
Lesson`` function, and at the top of ``train``::

    if config.lesson:
        return lessons.run_lesson(MODEL_NAME, config, teach, run, cancel_event, on_progress)

Inside ``teach``, each training is ``notebook.experiment(name, compute)``; ``compute()`` trains
through ``notebook.run`` (``run.track(..., checkpoints=False)`` and ``run.steps``, as the side
trainings of a comparison do) and returns JSON-able figures.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from taller.trainers.checkpoints import list_runs, write_json_atomic

LESSON_FILE = "lesson.json"
PLOT_FILE = "lesson.png"
# Settings that do not change what a lesson measures: a run with other values may reuse its parts.
_NOT_PART_OF_THE_LESSON = frozenset({"resume", "device", "data_path"})


@dataclass
class Lesson:
    """What a lesson found: its claim checked on its own figures, a plot and a reading."""

    title: str  # "Why gated cells remember longer"
    claim: str  # what must hold, with the thresholds: "LSTM and GRU ≥ 0.9 at length 100 …"
    held: bool  # whether the claim held in this run
    figures: dict[str, Any]  # the numbers the claim and the reading are made of
    reading: dict[str, str]  # {"en": ..., "es": ...}: two sentences each, written from the figures
    plot: Path | None = None  # lesson.png (see Notebook.plot_path)
    extra: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping in lesson.json


class Notebook:
    """A lesson's record in its run folder: the experiments done so far, kept as they finish."""

    def __init__(self, run: Any, config: Any, experiments: int, settings: Any = None) -> None:
        self.run = run
        self.config = config
        self.count = max(1, experiments)
        self.dry_run = bool(getattr(config, "dry_run", False))
        self.key = lesson_key(config, settings)
        self.parts: dict[str, Any] = {}
        self.continued_from: str | None = None
        self._index = 0
        self._take_unfinished_parts()
        self._save(state="running")  # from now on the run folder says it is a lesson

    @property
    def path(self) -> Path:
        return Path(self.run.record_dir) / LESSON_FILE

    @property
    def plot_path(self) -> Path:
        return Path(self.run.record_dir) / PLOT_FILE

    def experiment(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The figures of experiment ``name``: computed now, or kept from an unfinished run."""
        self.run.stage = (min(self._index, self.count - 1), self.count)
        self._index += 1
        if name in self.parts:
            return self.parts[name]
        self.run.check_cancelled()
        figures = compute()
        self.parts[name] = figures
        self._save(state="running")
        return figures

    def _save(self, state: str, lesson: dict[str, Any] | None = None) -> None:
        if not getattr(self.run, "writes", True):
            return
        record = {"model": self.run.model_name, "run_id": self.run.run_id, "state": state, "key": self.key,
                  "dry_run": self.dry_run, "experiments": self.parts, "continued_from": self.continued_from}
        if lesson:
            record.update(lesson)
        write_json_atomic(self.path, record)

    def _take_unfinished_parts(self) -> None:
        """Start from the experiments the newest unfinished lesson run with the same settings did."""
        for status in list_runs(self.run.model_name):
            if status.get("run_id") == self.run.run_id or status.get("state") == "finished":
                continue
            record = _read(Path(status["path"]) / LESSON_FILE)
            if record and record.get("key") == self.key and record.get("experiments"):
                self.parts = dict(record["experiments"])
                self.continued_from = status.get("run_id")
                self.run._send({"type": "progress", "source": "train_model", "model": self.run.model_name,
                                "run_id": self.run.run_id, "state": "running",
                                "message": f"continued the lesson of run {self.continued_from}: "
                                           f"{len(self.parts)} experiment(s) already done "
                                           f"({', '.join(self.parts)})"})
                return


def lesson_key(config: Any, settings: Any = None) -> dict[str, Any]:
    """What defines what a lesson measures: the config (less where it runs) and the lesson's own
    sizes. Two runs with the same key may share experiments."""
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(vars(config))
    key = {k: v for k, v in values.items() if k not in _NOT_PART_OF_THE_LESSON}
    if settings is not None:
        key["lesson_settings"] = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings
    return json.loads(json.dumps(key, default=str))


def run_lesson(model_name: str, config: Any, teach: Callable[[Any, Notebook, Any], Lesson], run: Any = None,
               cancel_event: Any = None, on_progress: Any = None, experiments: int = 1,
               settings: Any = None) -> dict[str, Any]:
    """Run ``teach`` as a run of ``model_name``; returns the lesson's metrics (and writes lesson.json).

    ``experiments`` is how many ``notebook.experiment`` calls ``teach`` makes (for the ETA);
    ``settings`` the lesson's own sizes (a dataclass), which with the config decide whether a
    stopped lesson's experiments measured the same thing and may be taken.
    """
    from taller.trainers.run import Run

    # A lesson never resumes a checkpoint (it writes none): the notebook takes unfinished parts.
    run = run or Run.create(model_name, config, resume=False, cancel_event=cancel_event, on_progress=on_progress)
    with run:
        started = time.perf_counter()
        device = run.use_device(getattr(config, "device", "auto"))
        notebook = Notebook(run, config, experiments, settings)
        lesson = teach(config, notebook, device)
        seconds = round(time.perf_counter() - started, 1)
        record = {
            "title": lesson.title, "claim": lesson.claim, "claim_held": bool(lesson.held),
            "figures": lesson.figures, "reading": lesson.reading, "seconds": seconds, "device": str(device),
            "plot": str(lesson.plot) if lesson.plot else None, **lesson.extra,
        }
        notebook._save(state="finished", lesson=record)
        metrics = {
            "lesson": lesson.title, "claim": lesson.claim, "claim_held": bool(lesson.held),
            "figures": lesson.figures, "reading": lesson.reading.get("en", ""),
            "reading_es": lesson.reading.get("es", ""), "lesson_seconds": seconds, "device": str(device),
            "dry_run": notebook.dry_run, "continued_from": notebook.continued_from,
        }
        if lesson.plot:
            metrics["images"] = [str(lesson.plot)]
        return run.finish(metrics)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def is_lesson_run(status: dict[str, Any]) -> bool:
    """Whether a run (a :func:`list_runs` row) is a lesson: it has a lesson.json."""
    return (Path(status.get("path", "")) / LESSON_FILE).is_file()


def latest_lesson(model_name: str, include_dry_run: bool = False) -> dict[str, Any] | None:
    """The newest finished lesson of ``model_name`` (``lesson.json`` with ``run_id`` and ``path``)."""
    for status in list_runs(model_name):
        if status.get("state") != "finished":
            continue
        record = _read(Path(status["path"]) / LESSON_FILE)
        if not record or record.get("state") != "finished":
            continue
        if record.get("dry_run") and not include_dry_run:
            continue
        return {**record, "run_id": status.get("run_id"), "path": status["path"]}
    return None


def running_lesson(model_name: str) -> dict[str, Any] | None:
    """The lesson of ``model_name`` that is running now (its status row), if any."""
    for status in list_runs(model_name):
        if status.get("state") in ("running", "cancelling") and is_lesson_run(status):
            return status
    return None
