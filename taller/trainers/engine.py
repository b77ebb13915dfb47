"""The small training engine every Taller trainer shares.

The trainer contract (all seven models in :data:`taller.trainers.TRAINERS`)
---------------------------------------------------------------------------
A trainer is one module ``taller/trainers/<name>.py`` that defines:

* ``Config`` — a ``@dataclass`` with defaults that train something sensible on a CPU. Fields
  every trainer has: ``epochs: int``, ``batch_size: int``, ``seed: int``, ``device: str``
  (``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``), ``dry_run: bool`` (a few batches, one epoch),
  ``resume: bool``. The config is saved in every checkpoint (``dataclasses.asdict``).
* ``train(config, run=None, cancel_event=None, on_progress=None) -> dict`` — trains, evaluates
  on held-out data and returns the metrics (JSON-able, includes ``run_id`` and ``run_dir``).
  ``run`` is a :class:`Run` created by the caller (the background registry in
  :mod:`taller.trainers.runs` creates it first so it can hand the run id back at once); when
  ``None`` the trainer calls ``Run.create(name, config, resume=config.resume, ...)`` itself.
  On cancellation the trainer saves ``last.pt`` and re-raises :class:`taller.progress.CancelledError`
  (the :class:`Run` context marks the run ``cancelled``); on any other error the run is marked
  ``failed`` and the exception propagates.
* ``python -m taller.trainers.<name> --epochs N --dry-run`` via :func:`cli`.
* Optionally ``check_data(config) -> None`` raising :class:`taller.data.DataNotFoundError` when
  the data set is missing (the background registry calls it before starting, so the user hears
  about the missing file at once), ``load(path=None) -> (model, config)`` and the helpers the
  tools use.

What the engine gives them
--------------------------
* :func:`select_device`, :func:`seed_everything`, :func:`autocast` (bf16 on CUDA),
  :func:`maybe_compile` (``torch.compile`` on CUDA when the ``compile`` setting is on).
* :class:`DeviceBatches`: a data set that fits in memory lives on the device as tensors and is
  batched by indexing with a permutation drawn on the device — no DataLoader workers, no
  host→device copy per batch. :func:`make_batches` falls back to a ``DataLoader`` when it does not fit.
* :class:`EarlyStopping` on the validation metric.
* :class:`Run`: the run folder ``$TALLER_HOME/runs/<model>/<run_id>/`` with ``config.json``,
  ``metrics.jsonl`` (one line per epoch), TensorBoard events, ``status.json``, atomic checkpoints
  (``last.pt``, ``best.pt``), throttled progress events with an ETA, and a cancel flag.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import secrets
import sys
import tempfile
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from taller.config import get_settings
from taller.progress import CancelledError, emit

ProgressCallback = Callable[[dict[str, Any]], None]

# Progress events at most this often (seconds), except at the end of an epoch.
PROGRESS_INTERVAL_S = 0.25
# last.pt is rewritten at most this often (and always at the end and on cancel): on small data
# an epoch takes seconds and writing model + optimizer state every epoch would dominate.
CHECKPOINT_INTERVAL_S = 30.0
# A data set bigger than this share of free GPU memory is streamed through a DataLoader instead.
DEVICE_MEMORY_SHARE = 0.5


# --- device, seeding, precision ---------------------------------------------------------------


def select_device(preference: str | None = None) -> torch.device:
    """CUDA, then Apple MPS, then CPU; ``"cpu"``/``"cuda"``/``"mps"`` force one.

    ``None`` or ``"auto"`` reads the ``device`` setting (itself ``"auto"`` by default).
    Asking for CUDA on a machine without it is an error, not a silent CPU run.
    """
    if preference is None or preference == "auto":
        preference = get_settings().device or "auto"
    preference = preference.strip().lower()
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    if preference == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps' was asked for but Apple MPS is not available; use 'auto' or 'cpu'")
    try:
        return torch.device(preference)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {preference!r}: use auto, cpu, cuda or mps") from exc


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy (when installed) and torch on every device."""
    random.seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % (2**32))
    except ImportError:  # numpy is optional for the engine
        pass
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); a no-op elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_backends(device: torch.device) -> None:
    """Let CUDA use TF32 matmuls for the float32 parts (harmless elsewhere)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def maybe_compile(model: torch.nn.Module, enabled: bool | None = None) -> torch.nn.Module:
    """``torch.compile`` the model on CUDA when enabled (default: the ``compile`` setting).

    On CPU compiling costs more than it saves for these small models, so it is skipped. Save the
    weights of :func:`unwrap_model` (the compiled wrapper prefixes every key with ``_orig_mod.``).
    """
    if enabled is None:
        enabled = bool(get_settings().compile)
    if not enabled:
        return model
    try:
        device = next(model.parameters()).device
    except StopIteration:
        return model
    if device.type != "cuda":
        return model
    return torch.compile(model)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The original module behind a ``torch.compile`` wrapper (itself otherwise)."""
    return getattr(model, "_orig_mod", model)


# --- batching -----------------------------------------------------------------------------------


class DeviceBatches:
    """Tensors that live on the device, batched by indexing; shuffled with a device permutation.

    All tensors share their first dimension. ``len()`` is the number of batches per epoch.
    Iterating yields tuples of tensors (one per input tensor).
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        device: torch.device | str | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        generator_seed: int | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("DeviceBatches needs at least one tensor")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        count = tensors[0].shape[0]
        if any(t.shape[0] != count for t in tensors):
            raise ValueError("all tensors must have the same first dimension")
        self.device = torch.device(device) if device is not None else tensors[0].device
        # non_blocking needs pinned memory to overlap; a one-off copy of the whole set is fine blocking.
        self.tensors = tuple(t.to(self.device) for t in tensors)
        self.count = count
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator: torch.Generator | None = None
        if generator_seed is not None:
            self.generator = torch.Generator(device=self.device)
            self.generator.manual_seed(generator_seed)

    def __len__(self) -> int:
        if self.drop_last:
            return self.count // self.batch_size
        return math.ceil(self.count / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if self.shuffle:
            order = torch.randperm(self.count, device=self.device, generator=self.generator)
        else:
            order = None
        for index in range(len(self)):
            start = index * self.batch_size
            stop = min(start + self.batch_size, self.count)
            if order is None:
                yield tuple(t[start:stop] for t in self.tensors)
            else:
                picked = order[start:stop]
                yield tuple(t.index_select(0, picked) for t in self.tensors)


class LoaderBatches:
    """The DataLoader path for data that does not fit on the device: pinned, copied per batch."""

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        device: torch.device | str,
        shuffle: bool = True,
        drop_last: bool = False,
        num_workers: int = 0,
    ) -> None:
        from torch.utils.data import DataLoader, TensorDataset

        self.device = torch.device(device)
        pin = self.device.type == "cuda"
        self.loader = DataLoader(
            TensorDataset(*tensors),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=num_workers,
            pin_memory=pin,
        )
        self.non_blocking = pin

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for batch in self.loader:
            yield tuple(t.to(self.device, non_blocking=self.non_blocking) for t in batch)


def tensors_nbytes(tensors: Sequence[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def device_budget_bytes(device: torch.device) -> int:
    """How many bytes of data set may live on ``device``: a share of free GPU memory; RAM is unbounded
    here because the tensors are already in host memory."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * DEVICE_MEMORY_SHARE)
    return sys.maxsize


def make_batches(
    tensors: Sequence[torch.Tensor],
    batch_size: int,
    device: torch.device | str,
    shuffle: bool = True,
    drop_last: bool = False,
    memory_budget_bytes: int | None = None,
    seed: int | None = None,
) -> DeviceBatches | LoaderBatches:
    """:class:`DeviceBatches` when the tensors fit in the device budget, else a DataLoader path."""
    device = torch.device(device)
    budget = device_budget_bytes(device) if memory_budget_bytes is None else memory_budget_bytes
    if tensors_nbytes(tensors) <= budget:
        return DeviceBatches(tensors, batch_size, device, shuffle=shuffle, drop_last=drop_last, generator_seed=seed)
    return LoaderBatches(tensors, batch_size, device, shuffle=shuffle, drop_last=drop_last)


# --- early stopping -------------------------------------------------------------------------------


class EarlyStopping:
    """Stop when the validation metric has not improved by ``min_delta`` for ``patience`` epochs."""

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


# --- files ----------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """Plain JSON values from configs and metrics (paths, tensors, numpy scalars)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(_jsonable(data), out, indent=2, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :meth:`Run.save_checkpoint` (a clear error if it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # Our own files: configs are plain dicts, so the safe weights-only loader is enough.
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable Taller checkpoint: {exc}") from exc
    if not isinstance(data, dict) or "model" not in data:
        raise ValueError(f"{path} is not a Taller checkpoint (no model weights in it)")
    return data


def config_from_checkpoint(config_class: type, checkpoint: dict[str, Any]) -> Any:
    """Rebuild a trainer's Config from a checkpoint, ignoring fields a newer version dropped."""
    names = {f.name for f in dataclasses.fields(config_class)}
    saved = checkpoint.get("config") or {}
    return config_class(**{k: v for k, v in saved.items() if k in names})


def _model_dirs(model_name: str | None) -> list[Path]:
    root = get_settings().runs_dir
    if not root.is_dir():
        return []
    if model_name:
        return [root / model_name] if (root / model_name).is_dir() else []
    return sorted(p for p in root.iterdir() if p.is_dir())


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_runs(model_name: str | None = None) -> list[dict[str, Any]]:
    """Every run on disk (newest first) from its ``status.json``.

    A run whose status says ``running`` but whose process is gone is reported as ``interrupted``
    (it can be continued with ``resume=True``).
    """
    runs = []
    for model_dir in _model_dirs(model_name):
        for run_dir in model_dir.iterdir():
            status = _read_json(run_dir / "status.json")
            if not status:
                continue
            status["path"] = str(run_dir)
            if status.get("state") == "running" and status.get("pid") != os.getpid() and not _pid_alive(status.get("pid")):
                status["state"] = "interrupted"
            status["checkpoints"] = sorted(p.name for p in run_dir.glob("*.pt"))
            runs.append(status)
    runs.sort(key=lambda s: (s.get("created_ts") or 0.0, s.get("created") or "", s.get("run_id") or ""), reverse=True)
    return runs


def latest_checkpoint(model_name: str, name: str = "best.pt") -> Path | None:
    """The newest finished run's ``name`` (falling back to its ``last.pt``); then any stopped run's."""
    runs = list_runs(model_name)
    for states in (("finished",), ("cancelled", "interrupted", "failed")):
        for status in runs:
            if status.get("state") not in states:
                continue
            folder = Path(status["path"])
            for candidate in (name, "last.pt"):
                if (folder / candidate).is_file():
                    return folder / candidate
    return None


def new_run_id(model_name: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{model_name}-{stamp}-{secrets.token_hex(2)}"


# --- a training run -------------------------------------------------------------------------------


class Run:
    """One training run: its folder, metrics, checkpoints, progress events and cancel flag.

    Use it as a context manager around the training so that the status always ends right::

        with run:
            ...train, calling run.progress(...), run.check_cancelled(), run.log_epoch(...)
            return run.finish(metrics)

    Leaving the block with :class:`CancelledError` marks the run ``cancelled``; with any other
    exception ``failed`` (the exception propagates in both cases).
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
        # Where the current epoch is (see steps()): a cancelled run saves it, a resumed one skips it.
        self.epoch_step = 0
        self.epoch_trained = 0
        self._skip_steps = 0
        self._best_pending: tuple[int, dict[str, Any], float | None] | None = None
        self._last_checkpoint = time.monotonic()
        self._writer: Any = None
        self._writer_tried = False
        self._last_emit = 0.0
        self._started = time.monotonic()
        self._eta_origin: float | None = None  # work fraction done when timing started (resume)
        self._status: dict[str, Any] = {}
        self.device: str | None = None

    # construction ---------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        model_name: str,
        config: Any,
        run_id: str | None = None,
        resume: bool = False,
        cancel_event: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> "Run":
        """Open a new run folder, or with ``resume=True`` re-open an unfinished one.

        Resuming picks ``run_id`` when given, else the newest run of ``model_name`` that has a
        ``last.pt`` and did not finish; its checkpoint is in :attr:`resume_checkpoint` (None when
        there was nothing to resume, in which case a new run starts).
        """
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
        if checkpoint is not None:
            run._skip_steps = int((checkpoint.get("extra") or {}).get("step", 0) or 0)
        previous = _read_json(folder / "status.json") or {}
        run._status = {
            "run_id": run_id,
            "model": model_name,
            "state": "running",
            "created": previous.get("created") or _now(),
            "created_ts": previous.get("created_ts") or time.time(),  # sub-second order for list_runs
            "updated": _now(),
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
        self._status["updated"] = _now()
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
        event = {"type": "progress", "source": "train_model", "model": self.model_name, "run_id": self.run_id,
                 "state": "running", "device": self.device, "message": f"{self.model_name} training on {self.device}"}
        emit(event)
        if self.on_progress is not None:
            try:
                self.on_progress(event)
            except Exception:
                pass

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Mark the run finished with its final metrics; returns them with run_id and run_dir."""
        metrics = _jsonable(dict(metrics))
        self._status.update(state="finished", finished=_now(), metrics=metrics)
        self._write_status()
        self.close()
        return {**metrics, "run_id": self.run_id, "run_dir": str(self.dir)}

    def mark_cancelled(self) -> None:
        self._status.update(state="cancelled", finished=_now())
        self._write_status()
        self.close()
        emit({"type": "progress", "source": "train_model", "model": self.model_name, "run_id": self.run_id,
              "message": "cancelled; last checkpoint kept", "state": "cancelled"})

    def fail(self, exc: BaseException) -> None:
        self._status.update(state="failed", finished=_now(), error=f"{type(exc).__name__}: {exc}")
        self._write_status()
        self.close()

    def __enter__(self) -> "Run":
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

    def steps(self, batches: Any) -> Iterator[tuple[int, Any]]:
        """``enumerate(batches, start=1)`` that checks the cancel flag before every step.

        It keeps :attr:`epoch_step` (steps finished in this epoch: save it as ``extra["step"]``
        when cancelled) and, in the first epoch of a resumed run, skips the steps that the
        interrupted run had already done, so learning-rate schedules stay on their step count.
        """
        skip, self._skip_steps = self._skip_steps, 0
        self.epoch_step = skip
        self.epoch_trained = 0
        for step, batch in enumerate(batches, start=1):
            if step <= skip:
                continue
            self.check_cancelled()
            yield step, batch
            self.epoch_step = step
            self.epoch_trained += 1

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
        emit(event)
        if self.on_progress is not None:
            try:
                self.on_progress(event)
            except Exception:  # a broken listener must not stop training
                pass
        return event

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
        record = {"epoch": epoch, "time": _now(), **_jsonable(dict(metrics))}
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

    # checkpoints ----------------------------------------------------------------------------------
    def keep_best(self, epoch: int, model_state: dict[str, Any], metric: float | None = None) -> None:
        """Remember the best weights so far (a CPU state dict); written as ``best.pt`` together
        with the next ``last.pt``, so a new best costs a memory copy, not a disk write."""
        self._best_pending = (epoch, model_state, metric)

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

        Writing ``last.pt`` first writes the best weights kept by :meth:`keep_best`, if any.
        """
        if name == "last.pt" and self._best_pending is not None:
            best_epoch, best_state, best_value = self._best_pending
            self._best_pending = None
            self.save_checkpoint(best_state, None, best_epoch, best_value if best_value is not None else best_metric,
                                 extra, name="best.pt")
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
            "saved": _now(),
            "extra": extra or {},
        }
        target = self.dir / name
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(payload, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def load_checkpoint(self, name: str = "last.pt", map_location: str | torch.device = "cpu") -> dict[str, Any]:
        return load_checkpoint(self.dir / name, map_location=map_location)

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
            self._writer = None


def cpu_state(module_or_optimizer: Any) -> dict[str, Any]:
    """A state dict with every tensor copied to CPU (checkpoints load anywhere)."""

    def to_cpu(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().to("cpu", copy=True)
        if isinstance(value, dict):
            return {k: to_cpu(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(to_cpu(v) for v in value)
        return value

    if isinstance(module_or_optimizer, torch.nn.Module):
        module_or_optimizer = unwrap_model(module_or_optimizer)
    return to_cpu(module_or_optimizer.state_dict())


def outputs_folder(run: Run | None = None) -> Path:
    """Where a trainer writes its PNGs: the run folder, else the outputs folder."""
    folder = run.dir if run is not None else get_settings().outputs_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- command line ---------------------------------------------------------------------------------


def cli(config_class: type, train: Callable[..., dict[str, Any]], argv: list[str] | None = None) -> int:
    """``python -m taller.trainers.<name>``: one flag per Config field, progress on stderr."""
    parser = argparse.ArgumentParser(description=(sys.modules[train.__module__].__doc__ or "").strip().splitlines()[0])
    for f in dataclasses.fields(config_class):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif kind.startswith("int"):
            parser.add_argument(flag, type=int, default=default)
        elif kind.startswith("float"):
            parser.add_argument(flag, type=float, default=default)
        elif kind.startswith("tuple") or kind.startswith("list"):
            parser.add_argument(flag, type=lambda s: tuple(int(x) for x in s.split(",")), default=default)
        else:
            parser.add_argument(flag, type=str, default=default)
    args = parser.parse_args(argv)
    config = config_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)})
    if getattr(config, "epochs", 1) < 1:
        parser.error("--epochs must be at least 1")

    def show(event: dict[str, Any]) -> None:
        if event.get("step") is not None and event.get("step") == event.get("total"):
            metric = f" {event['metric_name']}={event['metric']:.4f}" if event.get("metric") is not None else ""
            loss = f" loss={event['loss']:.4f}" if event.get("loss") is not None else ""
            print(f"epoch {event['epoch']}/{event['epochs']}{loss}{metric}", file=sys.stderr)

    try:
        metrics = train(config, on_progress=show)
    except CancelledError as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(_jsonable(metrics), indent=2, ensure_ascii=False))
    return 0
