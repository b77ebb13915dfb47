"""What a training run records: its folder and status, progress events, metrics, checkpoint files.

:class:`RunRecord` is the part of :class:`taller.trainers.run.Run` that writes things down —
``status.json`` (running / finished / cancelled / failed, the device, the last metrics),
``metrics.jsonl`` and TensorBoard scalars (one line per epoch), throttled progress events with an
ETA, and atomic ``last.pt`` / ``best.pt`` files — and holds the cancel flag and the run's locks.
What to save and when (the checkpoint / resume / cancel protocol) is
:class:`~taller.trainers.run.Run`'s concern.

What survives a crash (``kill -9``, a power cut) is what ``last.pt`` holds. So that a reader never
sees more than that, ``status.json``'s ``epoch``, ``step`` and ``metrics`` of a run that writes
checkpoints move with ``last.pt`` (``checkpoint`` says when it was saved), not with every epoch;
``metrics.jsonl`` may run ahead of it by the epochs since the last save, and a resumed run cuts
it back to the checkpoint it continues from. Live progress is in the progress events.

Under torchrun (:mod:`taller.trainers.distributed`) only rank 0 writes anything: it takes the
locks, finds the run to resume and tells the other processes (its run id and checkpoint); theirs
is a *follower* record that writes nothing, with a scratch folder of its own as ``dir`` for the
pictures a trainer draws (removed when the run ends). ``status.json`` says ``world_size``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import threading
import time
import traceback
import weakref
from pathlib import Path
from typing import Any, Callable, Self

import torch

from taller.config import get_settings
from taller.locks import FileLock, LockBusyError, holder_of
from taller.progress import CancelledError, emit
from taller.trainers import distributed
from taller.trainers.checkpoints import (
    RunWriteError,
    clean_orphans,
    jsonable,
    list_runs,
    load_checkpoint,
    model_lock_path,
    new_run_id,
    now_iso,
    read_status,
    run_lock_path,
    write_checkpoint,
    write_error,
    write_json_atomic,
    write_text_atomic,
)
from taller.trainers.device import configure_backends, select_device

ProgressCallback = Callable[[dict[str, Any]], None]

# Progress events at most this often (seconds), except at the end of an epoch.
PROGRESS_INTERVAL_S = 0.25
# last.pt is rewritten this often, inside epochs too (and always at the end and on cancel): on
# small data an epoch takes seconds and writing model + optimizer state every epoch would
# dominate. The default of the ``checkpoint_interval_s`` setting, which each run reads.
CHECKPOINT_INTERVAL_S = 30.0
# A test hook: seconds to sleep after every training step (Run.steps), so that the fault tests
# can kill a tiny training at a chosen moment on any machine.
STEP_PAUSE_ENV = "TALLER_TEST_STEP_PAUSE_S"


class NothingToResumeError(FileNotFoundError):
    """``resume`` was asked for but no unfinished run of the model has a checkpoint; says why."""


class RunBusyError(LockBusyError):
    """Another process (or another run of this one) is training the model already."""


# This process's runs by their model lock, so that a run that holds a model's lock without
# training (created to write a checkpoint, then left) does not block the next one.
_holders: dict[str, "weakref.ref[RunRecord]"] = {}
_holders_lock = threading.Lock()


def _busy(model_name: str, lock: Path) -> RunBusyError:
    holder = holder_of(lock) or {}
    pid, note = holder.get("pid"), holder.get("note") or ""
    run = f", {note}" if note.startswith("run ") else ""
    if pid == os.getpid():
        where = f"in this process{' (' + note + ')' if run else ''}"
    else:
        where = f"in another process ({'pid ' + str(pid) if pid else 'pid unknown'}{run})"
    return RunBusyError(f"{model_name} is already training {where}; wait for it to finish or cancel it first",
                        holder or None)


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
        # A run made of several trainings (a lesson's experiments): (index, count) of the current
        # one, so that the progress fraction and the ETA are the whole run's, not one training's.
        self.stage: tuple[int, int] = (0, 1)
        self._status: dict[str, Any] = {}
        self._checkpoint_interval = float(get_settings().checkpoint_interval_s)
        self._step_pause = float(os.environ.get(STEP_PAUSE_ENV) or 0)
        # With checkpoints, status.json's epoch and metrics follow last.pt (see the module doc).
        self._status_follows_checkpoint = False
        self._last_record: dict[str, Any] | None = None
        self._locks: list[FileLock] = []  # the run lock, then the model lock; held until close()
        self._training = False  # inside ``with run:``
        # Under torchrun only rank 0 writes the records; the others keep this False (see create()).
        self.writes = True
        self.record_dir = folder  # where the records are: rank 0's folder (a follower's dir is scratch)

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
        run of ``model_name`` that did not finish and has a ``last.pt``; its checkpoint is in
        :attr:`resume_checkpoint` and :meth:`Run.restore` loads it. When there is nothing to
        resume, :class:`NothingToResumeError` says why: a new run never starts silently from zero.

        One run per model across processes: the model's lock is taken first and held, with the
        run folder's own lock, until the run ends (:meth:`close`) or its process dies;
        :class:`RunBusyError` names the process that holds it. With the lock held, no one else
        writes this model's run folders, so the temporary files a killed save left there are
        removed. A resumed run's ``metrics.jsonl`` is cut back to the checkpoint's epoch.

        Under torchrun it first joins the process group; rank 0 does all of the above and sends
        the others its answer (the run id and the checkpoint to resume, or the error to raise).
        """
        context = distributed.setup(getattr(config, "device", "auto"))
        if context is None:
            return cls._create_here(model_name, config, run_id, resume, cancel_event, on_progress)
        if context.rank != 0:
            return cls._follow(model_name, config, cancel_event, distributed.broadcast())
        try:
            run = cls._create_here(model_name, config, run_id, resume, cancel_event, on_progress)
        except BaseException as exc:
            family = next((kind for kind in (RunBusyError, NothingToResumeError, FileNotFoundError, ValueError, OSError)
                           if isinstance(exc, kind)), RuntimeError)
            distributed.broadcast({"error": str(exc), "family": family.__name__})
            raise
        distributed.broadcast({"run_id": run.run_id, "dir": str(run.dir), "checkpoint": run.resume_checkpoint})
        return run

    @classmethod
    def _follow(cls, model_name: str, config: Any, cancel_event: threading.Event | None,
                reply: dict[str, Any]) -> Self:
        """A process other than rank 0: the run rank 0 created, as a record that writes nothing."""
        if "error" in reply:
            families = {kind.__name__: kind for kind in (RunBusyError, NothingToResumeError, FileNotFoundError,
                                                         ValueError, OSError, RuntimeError)}
            family = families.get(reply.get("family"), RuntimeError)
            raise family(f"rank 0 could not start the run: {reply['error']}")
        rank = distributed.rank()
        # Under the data folder, not the system's temporary one, so that a follower killed before
        # close() leaves nothing outside TALLER_HOME; the next launch of the run sweeps it.
        scratch_root = get_settings().cache_dir / "scratch"
        scratch_root.mkdir(parents=True, exist_ok=True)
        prefix = f"taller-{reply['run_id']}-rank{rank}-"
        for stale in scratch_root.glob(prefix + "*"):  # left by a launch that was killed
            shutil.rmtree(stale, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_root))
        run = cls(model_name, config, reply["run_id"], scratch, cancel_event=cancel_event)
        run.writes = False
        run.record_dir = Path(reply["dir"])
        run.resume_checkpoint = reply.get("checkpoint")
        run._status = {"run_id": run.run_id, "model": model_name, "state": "running", "rank": rank,
                       "world_size": distributed.world_size()}
        return run

    @classmethod
    def _create_here(cls, model_name: str, config: Any, run_id: str | None, resume: bool | None,
                     cancel_event: threading.Event | None, on_progress: ProgressCallback | None) -> Self:
        """:meth:`create` in this process alone (a plain run, or rank 0)."""
        if resume is None:
            resume = bool(getattr(config, "resume", False))
        root = get_settings().runs_dir / model_name
        model_lock = FileLock(model_lock_path(model_name))
        if not model_lock.acquire(note=f"training {model_name}") and not cls._take_from_idle_run(model_lock):
            raise _busy(model_name, model_lock.path)
        locks = [model_lock]
        try:
            for folder in sorted(root.iterdir()) if root.is_dir() else ():
                if folder.is_dir() and not folder.is_symlink():
                    clean_orphans(folder)
            checkpoint = None
            if resume:
                folder = cls._folder_to_resume(model_name, root, run_id)
                run_id = folder.name
                checkpoint = load_checkpoint(folder / "last.pt")
            if run_id is None:
                run_id = new_run_id(model_name)
            folder = root / run_id
            folder.mkdir(parents=True, exist_ok=True)
            run_lock = FileLock(run_lock_path(folder))
            if not run_lock.acquire(note=f"run {run_id}"):
                raise _busy(model_name, run_lock.path)
            locks.insert(0, run_lock)
            model_lock.set_note(f"run {run_id}")
            run = cls(model_name, config, run_id, folder, cancel_event=cancel_event, on_progress=on_progress)
            run._locks = locks
            with _holders_lock:
                _holders[str(model_lock.path)] = weakref.ref(run)
            run.resume_checkpoint = checkpoint
            # A resumed run keeps its creation time; an unusable old status.json is replaced.
            previous = read_status(folder)[0] or {}
            saved_epoch = int(checkpoint["epoch"]) if checkpoint else 0
            saved_step = int((checkpoint.get("extra") or {}).get("step", 0) or 0) if checkpoint else 0
            metrics = run._cut_metrics(saved_epoch) if checkpoint else {}
            run._status = {
                "run_id": run_id,
                "model": model_name,
                "state": "running",
                "created": previous.get("created") or now_iso(),
                "created_ts": previous.get("created_ts") or time.time(),  # sub-second order for list_runs
                "updated": now_iso(),
                "finished": None,
                "resumed": checkpoint is not None,
                "epoch": saved_epoch,
                "step": saved_step,
                "epochs": getattr(config, "epochs", None),
                "metrics": metrics,
                "checkpoint": {"epoch": saved_epoch, "step": saved_step, "saved": checkpoint.get("saved")}
                if checkpoint else None,
                "error": None,
                "pid": os.getpid(),
                "world_size": distributed.world_size(),
                "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {},
            }
            if dataclasses.is_dataclass(config):
                target = folder / "config.json"
                try:
                    write_json_atomic(target, {"class": type(config).__name__, **dataclasses.asdict(config)})
                except OSError as exc:
                    raise write_error(exc, "writing the run's config", target) from exc
            run._write_status()
        except BaseException:
            for lock in locks:
                lock.release()
            raise
        return run

    @staticmethod
    def _take_from_idle_run(model_lock: FileLock) -> bool:
        """Take the model's lock from a run of this process that is not training (created, maybe
        used to write a checkpoint, never entered with ``with run:``); False when there is none."""
        with _holders_lock:
            ref = _holders.get(str(model_lock.path))
        holder = ref() if ref is not None else None
        if holder is None or holder._training or not holder._locks:
            return False
        holder.release_locks()
        return model_lock.acquire(note="taken from an idle run")

    @staticmethod
    def _folder_to_resume(model_name: str, root: Path, run_id: str | None) -> Path:
        """The run folder ``resume`` continues; :class:`NothingToResumeError` saying why when none."""
        new_run = "train without resume to start a new run"
        if run_id:
            candidate = root / run_id
            if not candidate.is_dir():
                raise NothingToResumeError(f"nothing to resume: {model_name} has no run {run_id}")
            if not (candidate / "last.pt").is_file():
                raise NothingToResumeError(f"nothing to resume: run {run_id} has no last.pt checkpoint "
                                           f"(it stopped before its first one); {new_run}")
            return candidate
        runs = list_runs(model_name)
        # This process holds the model's lock, so no run of it is live: every unfinished run
        # (cancelled, failed, interrupted by a crash) with a last.pt can continue, newest first.
        for status in runs:
            path = Path(status["path"])
            if status.get("state") != "finished" and (path / "last.pt").is_file():
                return path
        if not runs:
            raise NothingToResumeError(f"nothing to resume: {model_name} has no runs yet; {new_run}")
        unfinished = [status for status in runs if status.get("state") != "finished"]
        if unfinished:
            interval = get_settings().checkpoint_interval_s
            raise NothingToResumeError(
                f"nothing to resume: run {unfinished[0]['run_id']} stopped before its first checkpoint "
                f"(last.pt is written every {interval:g} s of training), so it has nothing to continue from; "
                f"{new_run}")
        raise NothingToResumeError(f"nothing to resume: the newest {model_name} run ({runs[0]['run_id']}) "
                                   f"finished; {new_run}")

    def _cut_metrics(self, epoch: int) -> dict[str, Any]:
        """Keep only the ``metrics.jsonl`` lines up to ``epoch`` (what the checkpoint holds); returns
        that epoch's metrics for ``status.json``. Unreadable lines (a write cut short) go too."""
        path = self.dir / "metrics.jsonl"
        kept, last = [], {}
        for record in self.read_metrics():
            if isinstance(record.get("epoch"), int) and record["epoch"] <= epoch:
                kept.append(record)
                if record["epoch"] == epoch:
                    last = {k: v for k, v in record.items() if k != "time"}
        if path.is_file():
            text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in kept)
            try:
                if path.read_text(encoding="utf-8", errors="replace") != text:
                    write_text_atomic(path, text)
            except OSError as exc:
                raise write_error(exc, "cutting metrics.jsonl back to the checkpoint", path) from exc
        if kept:
            self._last_record = kept[-1]
        return last

    # status ---------------------------------------------------------------------------------
    def _write_status(self) -> None:
        if not self.writes:
            return
        self._status["updated"] = now_iso()
        if self.device:
            self._status["device"] = self.device
        path = self.dir / "status.json"
        try:
            write_json_atomic(path, self._status)
        except OSError as exc:
            raise write_error(exc, "writing the run status", path) from exc

    def _record_end(self) -> None:
        """Write the final status however full the disk is: atomically; else in place over the
        old status.json (its blocks are already there); else as a note in the run's lock file,
        which :func:`list_runs` reads when the lock is free and the status still says running."""
        if not self.writes:
            return
        try:
            self._write_status()
            return
        except OSError:
            pass
        try:
            self._write_status_in_place()
            return
        except OSError:
            pass
        if self._locks:
            self._locks[0].leave_note(state=self._status.get("state"), error=self._status.get("error"))

    def _write_status_in_place(self) -> None:
        """Overwrite status.json where it is (not atomic: the last resort on a full disk)."""
        data = json.dumps(jsonable(self._status), ensure_ascii=False).encode("utf-8")
        fd = os.open(self.dir / "status.json", os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    def release_locks(self) -> None:
        """Let the model train again (another process, or a later run in this one)."""
        locks, self._locks = self._locks, []
        for lock in locks:
            lock.release()

    @property
    def status(self) -> dict[str, Any]:
        return dict(self._status, path=str(self.dir))

    def use_device(self, preference: str = "auto") -> torch.device:
        """Pick the device (CUDA → MPS → CPU unless overridden), set its backends, announce the run."""
        device = distributed.local_device(select_device(preference))  # cuda:LOCAL_RANK under torchrun
        configure_backends(device)
        self.set_device(device)
        return device

    def set_device(self, device: torch.device | str) -> None:
        """Record the device and announce the start (call before the timed training loop).

        It also opens the TensorBoard writer and sends the first event now, so their one-off
        import costs (seconds on a busy CPU) do not land inside the first epoch.
        """
        self.device = str(device)
        if not self.writes:
            return
        self._write_status()
        self._tensorboard()
        self._send({"type": "progress", "source": "train_model", "model": self.model_name, "run_id": self.run_id,
                    "state": "running", "device": self.device, "message": f"{self.model_name} training on {self.device}"})

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Mark the run finished with its final metrics; returns them with run_id and run_dir."""
        metrics = jsonable(dict(metrics))
        self._status.update(state="finished", finished=now_iso(), metrics=metrics, step=0)
        if self._last_record is not None and isinstance(self._last_record.get("epoch"), int):
            self._status["epoch"] = max(int(self._status.get("epoch") or 0), self._last_record["epoch"])
        self._record_end()
        self.close()
        return {**metrics, "run_id": self.run_id, "run_dir": str(self.dir)}

    def mark_cancelled(self) -> None:
        self._status.update(state="cancelled", finished=now_iso())
        self._record_end()
        self.close()
        if not self.writes:
            return
        emit({"type": "progress", "source": "train_model", "model": self.model_name, "run_id": self.run_id,
              "message": "cancelled; last checkpoint kept", "state": "cancelled"})

    def fail(self, exc: BaseException) -> None:
        """Mark the run failed with ``exc`` (never raises: on a full disk it records what it can)."""
        error = str(exc) if isinstance(exc, RunWriteError) else f"{type(exc).__name__}: {exc}"
        self._status.update(state="failed", finished=now_iso(), error=error)
        if isinstance(exc, RunWriteError):
            self._status.pop("traceback", None)  # the message says it all
        self._record_end()
        self.close()

    def __enter__(self) -> Self:
        self._training = True
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc is None or self._status.get("state") != "running":
                return False
            if isinstance(exc, CancelledError):
                self.mark_cancelled()
            else:
                self._status["traceback"] = "".join(traceback.format_exception(exc_type, exc, tb))[-4000:]
                self.fail(exc)
            return False
        finally:
            self._training = False
            self.release_locks()
            if exc is None or isinstance(exc, CancelledError):
                distributed.wait_for_all()  # the others wait for rank 0's last writes

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
        if not self.writes:
            return None
        self._status["epochs"] = epochs  # a dry run trains fewer epochs than its config says
        now = time.monotonic()
        end_of_epoch = step >= total
        if not (force or end_of_epoch) and now - self._last_emit < PROGRESS_INTERVAL_S:
            return None
        self._last_emit = now
        done = ((epoch - 1) * total + step) / max(1, epochs * total)
        stage, stages = self.stage
        done = (stage + min(max(done, 0.0), 1.0)) / max(1, stages)
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
        if stages > 1:
            event.update(stage=stage + 1, stages=stages, done=round(done, 4))
        self._send(event)
        return event

    def _send(self, event: dict[str, Any]) -> None:
        if not self.writes:
            return
        emit(event)
        if self.on_progress is not None:
            try:
                self.on_progress(event)
            except Exception:  # a broken listener must not stop training
                pass

    def _tensorboard(self) -> Any:
        if not self.writes:
            return None
        if not self._writer_tried:
            self._writer_tried = True
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.dir / "tensorboard"))
            except Exception:  # tensorboard not installed: the JSON-lines file still has everything
                self._writer = None
        return self._writer

    def log_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Append one epoch's metrics to ``metrics.jsonl`` and TensorBoard.

        ``status.json`` takes them now, or, for a run whose status follows its checkpoints, with
        the next ``last.pt``. A line that a full disk cut short is removed again.
        """
        record = {"epoch": epoch, "time": now_iso(), **jsonable(dict(metrics))}
        if not self.writes:
            self._last_record = record
            return
        path = self.dir / "metrics.jsonl"
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(exc, "appending the epoch's metrics", path) from exc
        try:
            size = os.fstat(fd).st_size
            try:
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
            except OSError as exc:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                raise write_error(exc, "appending the epoch's metrics", path) from exc
        finally:
            os.close(fd)
        writer = self._tensorboard()
        if writer is not None:
            try:
                for key, value in record.items():
                    if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                        writer.add_scalar(key, value, epoch)
                writer.flush()
            except Exception:  # TensorBoard is a copy of metrics.jsonl: a full disk must not stop here
                self._close_writer()
                self._writer_tried = True  # and it is not tried again
        self._last_record = record
        if not self._status_follows_checkpoint:
            self._status["epoch"] = epoch
            self._status["metrics"] = {k: v for k, v in record.items() if k not in ("time",)}
            self._write_status()

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl`` (a line that is not a JSON object is skipped)."""
        path = self.dir / "metrics.jsonl"
        if not path.is_file():
            return []
        records = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    # checkpoint files ---------------------------------------------------------------------------
    def checkpoint_due(self, final: bool = False) -> bool:
        """True when ``last.pt`` should be written now: the final epoch, or the interval passed
        (the ``checkpoint_interval_s`` setting, 30 s by default)."""
        return final or time.monotonic() - self._last_checkpoint >= self._checkpoint_interval

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
        so a new best costs a memory copy, not a disk write. A follower (not rank 0) writes nothing.
        """
        if not self.writes:
            self._last_checkpoint = time.monotonic()
            return self.dir / name
        if name == "last.pt" and self._best_pending is not None:
            best_epoch, best_state, best_value, constants = self._best_pending
            self._best_pending = None
            self.save_checkpoint(best_state, None, best_epoch, best_value, constants, name="best.pt")
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
            "world_size": distributed.world_size(),  # what a resume with another number of processes reports
            "extra": extra or {},
        }
        path = self.dir / name
        try:
            write_checkpoint(path, payload)
        except OSError as exc:
            raise write_error(exc, "saving the checkpoint", path) from exc
        if name == "last.pt":
            self._last_checkpoint = time.monotonic()
            step = int((extra or {}).get("step", 0) or 0)
            self._status.update(epoch=int(epoch), step=step,
                                checkpoint={"epoch": int(epoch), "step": step, "saved": payload["saved"]})
            record = self._last_record
            if record is not None and record.get("epoch") == int(epoch):
                self._status["metrics"] = {k: v for k, v in record.items() if k != "time"}
            self._write_status()
        return path

    def defer_best(self, epoch: int, model_state: dict[str, Any], metric: float | None,
                   extra: dict[str, Any] | None = None) -> None:
        """Keep the best weights so far (a CPU state dict) to write as ``best.pt`` with the next ``last.pt``."""
        if not self.writes:
            return
        self._best_pending = (epoch, model_state, metric, extra or {})

    def load_checkpoint(self, name: str = "last.pt", map_location: str | torch.device = "cpu") -> dict[str, Any]:
        return load_checkpoint(self.dir / name, map_location=map_location)

    def _close_writer(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
            self._writer = None

    def close(self) -> None:
        """Close TensorBoard's writer and let go of the run's locks (the run is over); a follower's
        scratch folder is removed."""
        self._close_writer()
        self.release_locks()
        if not self.writes and self.dir != self.record_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
