"""A training run and the checkpoint / resume / cancel protocol every trainer follows.

A trainer tells its :class:`Run` once what makes up a checkpoint, then trains::

    run.track(model, optimizer, stopper=stopper, scheduler=scheduler)
    start_epoch = run.restore()            # 1, or the epoch after the resume checkpoint's
    for epoch in range(start_epoch, epochs + 1):
        train_loss = train_one_epoch(...)  # iterates run.steps(batches): cancel flag, resume skip
        val_mse = evaluate(...)
        if run.end_epoch(epoch, epochs, {"train_loss": train_loss, "val_mse": val_mse}, monitor="val_mse"):
            break                          # the early stopper says so
    run.load_best()                        # the weights of the best validation epoch

and the run does the rest: ``end_epoch`` logs the metrics, steps the early stopper, keeps the
best weights, writes ``last.pt`` when one is due (the last epoch, an early stop, or the
``checkpoint_interval_s`` setting — 30 s — since the last one) and sends the epoch's progress
event; :meth:`Run.steps` writes ``last.pt`` inside an epoch too when that interval has passed
(between two steps, where the tracked state is consistent), so a process killed at any moment
loses at most about that much training. Leaving ``with run:`` with :class:`CancelledError`
saves the tracked state with the step reached. A checkpoint holds the step reached inside the
epoch and the random generators' state (torch, CUDA, Python, the batch sampler's own generator,
as they were when the epoch drew its batch order and as they are now), so ``resume=True``
continues at that step with the same batches and the same random draws an uninterrupted run
would have had. Side trainings (cross-validation folds, the other models of a comparison) call
``track(..., checkpoints=False)``: the same loop, nothing written to disk.

Every checkpoint write goes through :meth:`Run.save_last`. Part of the training engine
(:mod:`taller.trainers.engine` re-exports :class:`Run` and :class:`EarlyStopping`).

Under torchrun (:mod:`taller.trainers.distributed`) every process runs this same protocol on the
same global steps: before each step they agree on the cancel flag (one process cancelled stops them
all at the same step), at each epoch's end on the metrics (averaged, so the early stopper decides
the same everywhere), and rank 0 alone writes. A checkpoint holds the unwrapped weights, the global
step and rank 0's random generators, so any number of processes can resume it (docs/trainers.md).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from taller.progress import CancelledError
from taller.trainers import distributed
from taller.trainers.checkpoints import cpu_state
from taller.trainers.device import rng_state, set_rng_state, unwrap_model
from taller.trainers.records import CHECKPOINT_INTERVAL_S, PROGRESS_INTERVAL_S, RunRecord

__all__ = ["CHECKPOINT_INTERVAL_S", "PROGRESS_INTERVAL_S", "EarlyStopping", "Run", "RunRecord"]


class EarlyStopping:
    """Stop when the validation metric has not improved by ``min_delta`` for ``patience`` epochs.

    ``patience=0`` never stops but still says which epoch is the best (for ``best.pt``).
    """

    def __init__(self, patience: int, mode: str = "min", min_delta: float = 0.0) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience = patience
        self.mode = mode
        self.min_delta = abs(min_delta)
        self.best: float | None = None
        self.bad_epochs = 0

    def improves(self, value: float) -> bool:
        if self.best is None or math.isnan(self.best):
            return not math.isnan(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: float) -> bool:
        """Record one epoch's metric; True when it is a new best."""
        value = float(value)
        if self.improves(value):
            self.best = value
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.bad_epochs = int(state.get("bad_epochs", 0))



class Run(RunRecord):
    """One training run: the records of :class:`RunRecord` plus the checkpoint / resume / cancel
    protocol (see the module docstring).

    Use it as a context manager around the training::

        with run:
            ...track, restore, train with run.steps(...) and run.end_epoch(...)
            return run.finish(metrics)

    Leaving the block with :class:`CancelledError` saves the tracked state (when it is the
    run's own, see :meth:`track`) with the step reached and marks the run ``cancelled``; with
    any other exception ``failed``. The exception propagates in both cases.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Where the current epoch is (see steps()): a cancelled run saves it, a resumed one skips it.
        self.epoch_step = 0
        self.epoch_trained = 0
        self._epoch_total = 0
        self._skip_steps = 0
        # The tracked training (see track()): what a checkpoint holds and how far it got.
        self._model: torch.nn.Module | None = None
        self._optimizer: Any = None
        self._stopper: EarlyStopping | None = None
        self._state: dict[str, Any] = {}
        self._checkpoints = False
        self._log_epochs = True
        self._restored = False
        self.completed_epochs = 0
        self._best: tuple[int, dict[str, Any], float | None] | None = None
        # Random generators: as the current epoch found them (before drawing its batch order),
        # and as a resumed checkpoint saved them (put back by steps()).
        self._epoch_rng: dict[str, Any] | None = None
        self._in_epoch = False
        self._generator: torch.Generator | None = None  # the batch sampler's own generator, if any
        self._resume_rng: dict[str, Any] | None = None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if isinstance(exc, CancelledError) and self._status.get("state") == "running":
            try:
                self.save_last(step=self.epoch_step)  # resume continues at the step reached
            except OSError as write_failed:  # a full disk: the run failed, and says why
                self.fail(write_failed)
                self.release_locks()
                raise write_failed from exc
        return super().__exit__(exc_type, exc, tb)

    # the checkpoint / resume protocol ---------------------------------------------------------
    def track(
        self,
        model: torch.nn.Module,
        optimizer: Any = None,
        *,
        stopper: EarlyStopping | None = None,
        checkpoints: bool = True,
        log_epochs: bool = True,
        **state: Any,
    ) -> None:
        """Name what makes up a checkpoint of the training that starts now.

        ``model`` is saved as the checkpoint's ``model`` (what ``load()`` reads), ``optimizer``
        as ``optimizer``, and every other keyword under ``extra``: objects with ``state_dict``
        (a discriminator, schedulers, a second optimizer, the ``stopper``) are saved and
        restored; plain values (a vocabulary, class names) are saved as they are, in
        ``best.pt`` too, so that the model can be loaded without the data. The ``stopper``
        decides the best epoch (see :meth:`end_epoch`).

        ``checkpoints=False`` trains a side model (a cross-validation fold, the other model of a
        comparison): no resume, no files, the best weights kept in memory only.
        ``log_epochs=False`` also leaves ``metrics.jsonl`` alone.
        """
        for reserved in ("step", "rng"):
            if reserved in state:
                raise ValueError(f"{reserved!r} is the checkpoint's own field (the step reached, the random "
                                 "generators); name that state otherwise")
        self._model, self._optimizer, self._stopper = model, optimizer, stopper
        self._state = {**state, "stopper": stopper} if stopper is not None else dict(state)
        self._checkpoints, self._log_epochs = checkpoints, log_epochs
        self._status_follows_checkpoint = checkpoints
        self.completed_epochs = 0
        self._best = None
        self._epoch_rng, self._in_epoch = None, False

    def restore(self) -> int:
        """Load the tracked state from the resume checkpoint; returns the first epoch to train.

        Without one (a new run, a side training, or the checkpoint already used) it returns 1.
        A checkpoint saved mid-epoch also makes :meth:`steps` skip the steps already trained.
        """
        checkpoint = self.resume_checkpoint
        if checkpoint is None or not self._checkpoints or self._restored or self._model is None:
            return 1
        self._restored = True
        path = self.dir / "last.pt"
        extra = checkpoint.get("extra") or {}
        try:
            unwrap_model(self._model).load_state_dict(checkpoint["model"])
            if self._optimizer is not None:
                if checkpoint.get("optimizer") is None:
                    raise ValueError("it holds no optimizer state")
                self._optimizer.load_state_dict(checkpoint["optimizer"])
            for name, value in self._state.items():
                if not hasattr(value, "load_state_dict"):
                    continue  # a plain value, rebuilt from the data
                if name not in extra:
                    raise ValueError(f"it holds no {name} state (saved by an older version?)")
                target = unwrap_model(value) if isinstance(value, torch.nn.Module) else value
                target.load_state_dict(extra[name])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ValueError(f"cannot resume from {path}: {exc}; start a new run instead (resume=False)") from exc
        self.completed_epochs = int(checkpoint["epoch"])
        self._skip_steps = int(extra.get("step", 0) or 0)
        rng = extra.get("rng") if isinstance(extra.get("rng"), dict) else None
        if rng is not None and not self._skip_steps:
            set_rng_state(rng.get("now"))  # the global generators now; the sampler's in steps()
        self._resume_rng = rng
        self._status["resumed_from"] = {"epoch": self.completed_epochs, "step": self._skip_steps}
        self._write_status()
        if self._skip_steps:
            where = f"from epoch {self.completed_epochs + 1}, step {self._skip_steps}"
        elif self.completed_epochs:
            where = f"from the end of epoch {self.completed_epochs}"
        else:
            where = "from the start of epoch 1"
        saved = checkpoint.get("saved")
        # Steps count global batches, so the same (epoch, step) holds for any number of processes.
        saved_world, world = int(checkpoint.get("world_size") or 1), distributed.world_size()
        processes = (f"; saved by {saved_world} process{'es' if saved_world > 1 else ''}, continued by {world}"
                     if saved_world != world else "")
        self._send({"type": "progress", "source": "train_model", "model": self.model_name, "run_id": self.run_id,
                    "state": "running", "resumed_from": {"epoch": self.completed_epochs, "step": self._skip_steps},
                    "message": f"{self.model_name} resumed run {self.run_id} {where}"
                               + (f" (checkpoint saved {saved}{processes})" if saved else
                                  (f" ({processes[2:]})" if processes else ""))})
        return self.completed_epochs + 1

    def steps(self, batches: Any, limit: int | None = None) -> Iterator[tuple[int, Any]]:
        """``enumerate(batches, start=1)`` that checks the cancel flag before every step.

        It keeps :attr:`epoch_step` (steps finished in this epoch, what a cancelled run saves),
        writes ``last.pt`` between two steps when the checkpoint interval has passed, and, in the
        first epoch after :meth:`restore`, puts the random generators back as the interrupted
        epoch had them (so the batches come in the same order) and skips the steps that run had
        already done, so learning-rate schedules stay on their step count. ``limit`` stops after
        that many steps (dry runs).
        """
        total = len(batches) if limit is None else min(limit, len(batches))
        skip, self._skip_steps = self._skip_steps, 0
        resume_rng, self._resume_rng = self._resume_rng, None
        generator = getattr(batches, "generator", None)
        self._generator = generator if isinstance(generator, torch.Generator) else None
        if resume_rng is not None:
            if skip:  # mid-epoch: the epoch's batch order again, then the draws as they were
                set_rng_state(resume_rng.get("epoch_start"), self._generator)
            else:
                set_rng_state(resume_rng.get("now"), self._generator, global_state=False)
        if self._checkpoints:
            self._epoch_rng = rng_state(self._generator)  # what this epoch's batch order comes from
        self._in_epoch = True
        self._epoch_total = total
        self.epoch_step = skip
        self.epoch_trained = 0
        for step, batch in enumerate(batches, start=1):
            if step > total:
                break
            if step <= skip:
                continue
            if step == skip + 1 and skip and resume_rng is not None:
                set_rng_state(resume_rng.get("now"))
            self._agree_on_cancel()
            yield step, batch
            self.epoch_step = step
            self.epoch_trained += 1
            if self._step_pause:
                time.sleep(self._step_pause)
            # The tracked state is consistent between steps: a time-based save goes here. The
            # last step is left to end_epoch, which follows at once.
            if self._checkpoints and step < total and self.checkpoint_due():
                self.save_last(step=step)

    def _agree_on_cancel(self) -> None:
        """:meth:`check_cancelled`, agreed by every process under torchrun: one cancelled process
        (``cancel`` sends SIGTERM to rank 0) stops them all before the same step. A process that
        finds a peer gone stops too, as cancelled, so rank 0 saves ``last.pt`` at the step reached
        (the state is consistent between steps)."""
        if distributed.context() is None:
            self.check_cancelled()
            return
        try:
            agreed = distributed.any_rank(self.cancel_event.is_set())
        except RuntimeError as lost:  # gloo: the connection to a dead peer closed
            self.cancel_event.set()
            raise CancelledError(f"training run {self.run_id} stopped: another process of the run is gone "
                                 f"({str(lost).splitlines()[0][:200] if str(lost) else type(lost).__name__})") from lost
        # Only the vote decides: a signal that sets the flag just after it is seen at the next
        # step's vote, never by this process alone (the others would wait for it in this step).
        if agreed:
            self.cancel_event.set()
            self.check_cancelled()

    def end_epoch(
        self,
        epoch: int,
        epochs: int,
        metrics: dict[str, Any],
        *,
        monitor: str | None = None,
        loss: str = "train_loss",
        message: str | None = None,
    ) -> bool:
        """Close an epoch: log ``metrics``, step the stopper on ``metrics[monitor]``, keep the
        best weights, write ``last.pt`` when due, send the epoch's progress event.

        ``loss`` names the metric shown as the event's loss. Returns True when the early
        stopper says to stop.
        """
        if monitor is not None and monitor not in metrics:
            raise KeyError(f"end_epoch: no {monitor!r} among this epoch's metrics ({', '.join(metrics)})")
        metrics = distributed.average_metrics(metrics)  # the same numbers, so the same decisions, in every process
        value = metrics[monitor] if monitor else None
        improved = self._stopper is not None and value is not None and self._stopper.step(value)
        if self._log_epochs:
            self.log_epoch(epoch, metrics)
        total = self._epoch_total
        self.progress(epoch, epochs, total, total, metrics.get(loss), value, monitor, message=message, force=True)
        if improved and self._model is not None:
            self._best = (epoch, cpu_state(self._model), float(value))
            if self._checkpoints:  # kept in memory, written as best.pt with the next last.pt
                self.defer_best(*self._best, self._constants())
        self.completed_epochs = epoch
        self.epoch_step = 0
        self._in_epoch = False
        stop = self._stopper is not None and self._stopper.should_stop
        if self._checkpoints and self.checkpoint_due(final=epoch >= epochs or stop):
            self.save_last()
        return stop

    def save_last(self, step: int = 0) -> Path | None:
        """Write ``last.pt`` with the tracked state after :attr:`completed_epochs` and ``step``
        steps of the next epoch (with any pending ``best.pt``). None for a side training."""
        if not self._checkpoints or self._model is None or not self.writes:
            return None
        if self.resume_checkpoint is not None and not self._restored:
            return None  # fresh weights must never overwrite the checkpoint still to be resumed
        extra = {name: cpu_state(value) if hasattr(value, "state_dict") else value for name, value in self._state.items()}
        optimizer = cpu_state(self._optimizer) if self._optimizer is not None else None
        best = self._stopper.best if self._stopper is not None else None
        return self.save_checkpoint(cpu_state(self._model), optimizer, self.completed_epochs, best,
                                    {**extra, "step": step, "rng": self._rng_to_save(step)})

    def _rng_to_save(self, step: int) -> dict[str, Any]:
        """The random generators a resume needs: inside an epoch, as the epoch found them (its batch
        order is drawn again) and as they are now; at an epoch's end, as the next epoch will find
        them — which is how this epoch found them when it stopped before its first step."""
        if step > 0 and self._epoch_rng is not None:
            return {"epoch_start": self._epoch_rng, "now": rng_state(self._generator)}
        if self._in_epoch and self._epoch_rng is not None:
            return {"now": self._epoch_rng}
        return {"now": rng_state(self._generator)}

    def load_best(self) -> int | None:
        """Put the best epoch's weights back into the tracked model; returns that epoch.

        From memory when this process saw the best epoch, else from ``best.pt`` (a resumed run
        that did not improve); None, and the weights unchanged, when there is no best yet.
        """
        if self._model is None:
            return None
        if self._best is not None:
            epoch, state, _ = self._best
        elif self._checkpoints and distributed.context() is not None:
            # Every process has no best in memory alike (the same metrics): rank 0 reads best.pt.
            best = self.load_checkpoint("best.pt") if self.writes and (self.dir / "best.pt").is_file() else None
            best = distributed.broadcast(None if best is None else (int(best["epoch"]), best["model"]))
            if best is None:
                return None
            epoch, state = best
        elif self._checkpoints and (self.dir / "best.pt").is_file():
            best = self.load_checkpoint("best.pt")
            epoch, state = int(best["epoch"]), best["model"]
        else:
            return None
        unwrap_model(self._model).load_state_dict(state)
        return epoch

    def _constants(self) -> dict[str, Any]:
        """The tracked plain values (vocabularies, class names): what ``best.pt`` needs besides weights."""
        return {name: value for name, value in self._state.items() if not hasattr(value, "state_dict")}


def start_run(model_name: str, config: Any, run: "Run | None" = None, cancel_event: Any = None,
              on_progress: Any = None, check: Any = None) -> "Run":
    """Every trainer's first step: check the config and the data set, then create (or take) the run.

    A missing data set is an error before any run folder exists (``check`` raises
    :class:`taller.data.DataNotFoundError`); a caller that created the run already (the
    background registry, which hands the run id back at once) passes it as ``run``.
    """
    if config.epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {config.epochs}")
    if check is not None:
        check(config)
    return run or Run.create(model_name, config, cancel_event=cancel_event, on_progress=on_progress)
