"""What a training run records: its folder and status, progress events, metrics, checkpoint files.

:class:`RunRecord` is the part of :class:`taller.trainers.run.Run` that writes things down —
``status.json`` (running / finished / cancelled / failed, the device, the last metrics),
``metrics.jsonl`` and TensorBoard scalars (one line per epoch), throttled progress events with an
ETA, and atomic ``last.pt`` / ``best.pt`` files — and holds the cancel flag. What to save and
when (the checkpoint / resume / cancel protocol) is :class:`~taller.trainers.run.Run`'s concern.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Self

import torch

from taller.config import get_settings
from taller.progress import CancelledError, emit
from taller.trainers.checkpoints import (
    jsonable,
    list_runs,
    load_checkpoint,
    new_run_id,
    now_iso,
    read_status,
    write_checkpoint,
    write_json_atomic,
)
from taller.trainers.device import configure_backends, select_device

ProgressCallback = Callable[[dict[str, Any]], None]

# Progress events at most this often (seconds), except at the end of an epoch.
PROGRESS_INTERVAL_S = 0.25
# last.pt is rewritten at most this often (and always at the end and on cancel): on small data
# an epoch takes seconds and writing model + optimizer state every epoch would dominate.
CHECKPOINT_INTERVAL_S = 30.0


class RunRecord:
    """The folder ``$TALLER_HOME/runs/<model>/<run_id>/`` of one run and everything written to it.

    Use it (or :class:`~taller.trainers.run.Run`) as a context manager around the training so
    that the status always ends right: leaving the block with :class:`CancelledError` marks the
    run ``cancelled``, with any other exception ``failed`` (the exception propagates).
    """

    def __init__(
        self,
        model_name: str,
        config: Any,
        run_id: str,
        folder: Path,
        cancel_event: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.model_name = model_name
        self.config = config
        self.run_id = run_id
        self.dir = folder
        self.cancel_event = cancel_event or threading.Event()
        self.on_progress = on_progress
        self.resume_checkpoint: dict[str, Any] | None = None
        self.device: str | None = None
        self._best_pending: tuple[int, dict[str, Any], float | None, dict[str, Any]] | None = None
        self._last_checkpoint = time.monotonic()
        self._writer: Any = None
        self._writer_tried = False
        self._last_emit = 0.0
        self._started = time.monotonic()
        self._eta_origin: float | None = None  # work fraction done when timing started (resume)
        self._status: dict[str, Any] = {}

    # construction ---------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        model_name: str,
        config: Any,
        run_id: str | None = None,
        resume: bool | None = None,
        cancel_event: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Self:
        """Open a new run folder, or with ``resume=True`` re-open an unfinished one.

        ``resume=None`` follows the config's own ``resume`` field (False when it has none), so a
        trainer cannot forget to pass it on. Resuming picks ``run_id`` when given, else the newest
        run of ``model_name`` that has a ``last.pt`` and did not finish; its checkpoint is in
        :attr:`resume_checkpoint` (None when there was nothing to resume, in which case a new run
        starts); :meth:`Run.restore` loads it.
        """
        if resume is None:
            resume = bool(getattr(config, "resume", False))
        root = get_settings().runs_dir / model_name
        checkpoint = None
        if resume:
            folder = None
            if run_id:
                candidate = root / run_id
                if not (candidate / "last.pt").is_file():
                    raise FileNotFoundError(f"run {run_id} has no last.pt checkpoint to resume from")
                folder = candidate
            else:
                # Finished runs are done and "running" ones belong to a live process; anything
                # else (cancelled, failed, interrupted by a crash) with a last.pt can continue.
                for status in list_runs(model_name):
                    path = Path(status["path"])
                    if status.get("state") not in ("finished", "running") and (path / "last.pt").is_file():
                        folder = path
                        break
            if folder is not None:
                run_id = folder.name
                checkpoint = load_checkpoint(folder / "last.pt")
        if run_id is None:
            run_id = new_run_id(model_name)
        folder = root / run_id
        folder.mkdir(parents=True, exist_ok=True)
        run = cls(model_name, config, run_id, folder, cancel_event=cancel_event, on_progress=on_progress)
        run.resume_checkpoint = checkpoint
        # A resumed run keeps its creation time and metrics; an unusable old status.json is replaced.
        previous = read_status(folder)[0] or {}
        run._status = {
            "run_id": run_id,
            "model": model_name,
            "state": "running",
            "created": previous.get("created") or now_iso(),
            "created_ts": previous.get("created_ts") or time.time(),  # sub-second order for list_runs
            "updated": now_iso(),
            "finished": None,
            "resumed": checkpoint is not None,
            "epoch": int(checkpoint["epoch"]) if checkpoint else 0,
            "epochs": getattr(config, "epochs", None),
            "metrics": previous.get("metrics") or {},
            "error": None,
            "pid": os.getpid(),
            "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {},
        }
        if dataclasses.is_dataclass(config):
            write_json_atomic(folder / "config.json", {"class": type(config).__name__, **dataclasses.asdict(config)})
        run._write_status()
        return run

    # status ---------------------------------------------------------------------------------
    def _write_status(self) -> None:
        self._status["updated"] = now_iso()
        if self.device:
            self._status["device"] = self.device
        write_json_atomic(self.dir / "status.json", self._status)

    @property
    def status(self) -> dict[str, Any]:
        return dict(self._status, path=str(self.dir))

    def use_device(self, preference: str = "auto") -> torch.device:
        """Pick the device (CUDA → MPS → CPU unless overridden), set its backends, announce the run."""
        device = select_device(preference)
        configure_backends(device)
        self.set_device(device)
        return device

    def set_device(self, device: torch.device | str) -> None:
        """Record the device and announce the start (call before the timed training loop).

        It also opens the TensorBoard writer and sends the first event now, so their one-off
        import costs (seconds on a busy CPU) do not land inside the first epoch.
        """
        self.device = str(device)
        self._write_status()
        self._tensorboard()
        self._send({"type": "progress", "source": "train_model", "model": self.model_name, "run_id": self.run_id,
                    "state": "running", "device": self.device, "message": f"{self.model_name} training on {self.device}"})

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Mark the run finished with its final metrics; returns them with run_id and run_dir."""
        metrics = jsonable(dict(metrics))
        self._status.update(state="finished", finished=now_iso(), metrics=metrics)
        self._write_status()
        self.close()
        return {**metrics, "run_id": self.run_id, "run_dir": str(self.dir)}

    def mark_cancelled(self) -> None:
        self._status.update(state="cancelled", finished=now_iso())
        self._write_status()
        self.close()
        emit({"type": "progress", "source": "train_model", "model": self.model_name, "run_id": self.run_id,
              "message": "cancelled; last checkpoint kept", "state": "cancelled"})

    def fail(self, exc: BaseException) -> None:
        self._status.update(state="failed", finished=now_iso(), error=f"{type(exc).__name__}: {exc}")
        self._write_status()
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        if self._status.get("state") != "running":
            return False
        if isinstance(exc, CancelledError):
            self.mark_cancelled()
        else:
            self._status["traceback"] = "".join(traceback.format_exception(exc_type, exc, tb))[-4000:]
            self.fail(exc)
        return False

    # cancellation ----------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`CancelledError` when the cancel flag is set (call between steps)."""
        if self.cancel_event.is_set():
            raise CancelledError(f"training run {self.run_id} was cancelled")

    # progress and metrics ------------------------------------------------------------------------
    def progress(
        self,
        epoch: int,
        epochs: int,
        step: int,
        total: int,
        loss: float | torch.Tensor | None,
        metric: float | torch.Tensor | None = None,
        metric_name: str | None = None,
        message: str | None = None,
        force: bool = False,
    ) -> dict[str, Any] | None:
        """Report progress, at most ~4 times a second except at an epoch's end (or ``force``).

        ``loss`` may be a device tensor: it is only read (a GPU sync) when an event is sent, so
        calling this every step costs nothing on the hot path. Returns the event, or None when
        throttled.
        """
        self._status["epochs"] = epochs  # a dry run trains fewer epochs than its config says
        now = time.monotonic()
        end_of_epoch = step >= total
        if not (force or end_of_epoch) and now - self._last_emit < PROGRESS_INTERVAL_S:
            return None
        self._last_emit = now
        done = ((epoch - 1) * total + step) / max(1, epochs * total)
        done = min(max(done, 0.0), 1.0)
        if self._eta_origin is None:
            # Resumed runs start part-way: time only the work done in this process.
            self._eta_origin = done
            self._started = now
        worked = done - self._eta_origin
        elapsed = now - self._started
        eta = elapsed * (1.0 - done) / worked if worked > 1e-9 else None
        event = {
            "type": "progress",
            "source": "train_model",
            "model": self.model_name,
            "run_id": self.run_id,
            "epoch": epoch,
            "epochs": epochs,
            "step": step,
            "total": total,
            "loss": None if loss is None else float(loss),
            "metric": None if metric is None else float(metric),
            "metric_name": metric_name,
            "eta_s": None if eta is None else round(eta, 1),
            "message": message or f"{self.model_name} epoch {epoch}/{epochs}, step {step}/{total}",
        }
        self._send(event)
        return event

    def _send(self, event: dict[str, Any]) -> None:
        emit(event)
        if self.on_progress is not None:
            try:
                self.on_progress(event)
            except Exception:  # a broken listener must not stop training
                pass

    def _tensorboard(self) -> Any:
        if not self._writer_tried:
            self._writer_tried = True
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.dir / "tensorboard"))
            except Exception:  # tensorboard not installed: the JSON-lines file still has everything
                self._writer = None
        return self._writer

    def log_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Append one epoch's metrics to ``metrics.jsonl`` and TensorBoard; update status.json."""
        record = {"epoch": epoch, "time": now_iso(), **jsonable(dict(metrics))}
        with open(self.dir / "metrics.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        writer = self._tensorboard()
        if writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.add_scalar(key, value, epoch)
            writer.flush()
        self._status["epoch"] = epoch
        self._status["metrics"] = {k: v for k, v in record.items() if k not in ("time",)}
        self._write_status()

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.dir / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    # checkpoint files ---------------------------------------------------------------------------
    def checkpoint_due(self, final: bool = False) -> bool:
        """True when ``last.pt`` should be written now: the final epoch, or the interval passed."""
        return final or time.monotonic() - self._last_checkpoint >= CHECKPOINT_INTERVAL_S

    def save_checkpoint(
        self,
        model_state: dict[str, Any],
        optimizer_state: dict[str, Any] | None,
        epoch: int,
        best_metric: float | None,
        extra: dict[str, Any] | None = None,
        name: str = "last.pt",
    ) -> Path:
        """Write a checkpoint atomically (temp file + rename): a crash never leaves half a file.

        Writing ``last.pt`` first writes the best weights handed to :meth:`defer_best`, if any,
        so a new best costs a memory copy, not a disk write.
        """
        if name == "last.pt" and self._best_pending is not None:
            best_epoch, best_state, best_value, constants = self._best_pending
            self._best_pending = None
            self.save_checkpoint(best_state, None, best_epoch, best_value, constants, name="best.pt")
        if name == "last.pt":
            self._last_checkpoint = time.monotonic()
        payload = {
            "model": model_state,
            "optimizer": optimizer_state,
            "epoch": int(epoch),
            "best_metric": None if best_metric is None else float(best_metric),
            "config": dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {},
            "config_class": type(self.config).__name__,
            "model_name": self.model_name,
            "run_id": self.run_id,
            "saved": now_iso(),
            "extra": extra or {},
        }
        return write_checkpoint(self.dir / name, payload)

    def defer_best(self, epoch: int, model_state: dict[str, Any], metric: float | None,
                   extra: dict[str, Any] | None = None) -> None:
        """Keep the best weights so far (a CPU state dict) to write as ``best.pt`` with the next ``last.pt``."""
        self._best_pending = (epoch, model_state, metric, extra or {})

    def load_checkpoint(self, name: str = "last.pt", map_location: str | torch.device = "cpu") -> dict[str, Any]:
        return load_checkpoint(self.dir / name, map_location=map_location)

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
            self._writer = None
