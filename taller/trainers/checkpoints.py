"""What a training run leaves on disk: JSON records, checkpoints, and the list of runs.

A run folder is ``$TALLER_HOME/runs/<model>/<run_id>/`` with ``config.json``, ``status.json``,
``metrics.jsonl`` and the checkpoints ``last.pt`` / ``best.pt``. Every file is written atomically
(a temporary file in the same folder, flushed to disk with ``fsync``, then ``os.replace``), so a
reader or a crash never sees half a file; a temporary file that a killed process left behind is
removed when the next run of that model starts (:func:`clean_orphans`). A write that fails (a
full disk) raises :class:`RunWriteError`, whose message says what was being saved and where.

Two lock files (see :mod:`taller.locks`) say who is training: ``runs/<model>/.model.lock`` (one
run per model across processes) and ``<run folder>/.run.lock``, both held by the training
process for the run's life. A run whose ``status.json`` says ``running`` while its run lock is
free was interrupted (its process died). Part of the training engine
(:mod:`taller.trainers.engine` re-exports the public names).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import secrets
import stat
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from taller.config import get_settings
from taller.locks import LOCKS_WORK, holder_of, is_locked
from taller.trainers.device import unwrap_model

# A test hook: seconds to sleep inside a checkpoint save, between writing the temporary file
# and renaming it over the checkpoint, so that tests can kill a process in the middle of a save.
SAVE_PAUSE_ENV = "TALLER_TEST_SAVE_PAUSE_S"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def jsonable(value: Any) -> Any:
    """Plain JSON values from configs and metrics (paths, tensors, numpy scalars)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
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


class RunWriteError(OSError):
    """A run's file could not be written (a full disk, a quota, a read-only folder).

    ``str()`` is the whole message ("no space left on device while saving the checkpoint to
    …/last.pt"); ``errno`` is the original error's.
    """

    def __init__(self, message: str, error_number: int | None = None) -> None:
        super().__init__(error_number, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


_ERRNO_WORDS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                errno.EIO: "an input/output error"}


def write_error(exc: OSError, what: str, path: Path) -> RunWriteError:
    """A :class:`RunWriteError` for ``exc`` raised while ``what`` (``"saving the checkpoint"``) to ``path``."""
    if isinstance(exc, RunWriteError):
        return exc
    reason = _ERRNO_WORDS.get(exc.errno) or (exc.strerror or type(exc).__name__).lower()
    return RunWriteError(f"{reason} while {what} to {path}", exc.errno)


def _sync_and_replace(tmp: str, path: Path) -> None:
    """Rename the flushed temporary file over ``path``; then sync the folder (best effort)."""
    os.replace(tmp, path)
    try:
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader never sees half a file (temporary file, fsync, rename)."""
    write_text_atomic(path, json.dumps(jsonable(data), indent=2, ensure_ascii=False))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that a reader never sees half a file (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        _sync_and_replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clean_orphans(folder: Path) -> list[Path]:
    """Remove the temporary files (``.last.pt.*.tmp``, ``.status.json.*.tmp``…) that a killed
    writer left in ``folder``; call it only while no one writes there (the model lock is held)."""
    removed = []
    try:
        candidates = list(folder.glob(".*.tmp"))
    except OSError:
        return removed
    for path in candidates:
        try:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path)
        except OSError:
            pass
    return removed


# A status.json is a few KB; a file much larger than this is not one.
MAX_RECORD_BYTES = 1024 * 1024


class BadRecordError(ValueError):
    """A run's JSON record cannot be used; the message says what is wrong with it (never its contents)."""


def load_record(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """The JSON value in ``path``; :class:`BadRecordError` saying what is wrong, FileNotFoundError
    when there is none.

    Only a regular file is opened: ``stat`` first, then a non-blocking open whose ``fstat`` is
    checked again, so a FIFO or a device in its place is refused without blocking on it.
    """
    info = os.stat(path)  # FileNotFoundError when absent; follows a link like open() would
    if not stat.S_ISREG(info.st_mode):
        raise BadRecordError(f"{path.name} is not a regular file (it is {_file_kind(info.st_mode)})")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced between the two checks
            raise BadRecordError(f"{path.name} is not a regular file (it is {_file_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            raise BadRecordError(f"{path.name} is {info.st_size:,} bytes, more than a record can be")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > max_bytes:
        raise BadRecordError(f"{path.name} grew past {max_bytes:,} bytes while it was read")
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRecordError(f"{path.name} is not UTF-8 text (binary content)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRecordError(f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise BadRecordError(f"{path.name} is nested too deeply to read") from None


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a file"


def read_json(path: Path) -> Any:
    """The JSON value in ``path``, or None when it is missing or unusable (see :func:`load_record`)."""
    try:
        return load_record(path)
    except (OSError, BadRecordError):
        return None


# The fields of a status.json that readers rely on, and the JSON types each may have (None: null).
_STATUS_TYPES: dict[str, tuple[type | None, ...]] = {
    "run_id": (str,), "model": (str,), "state": (str,), "created": (str, None), "updated": (str, None),
    "finished": (str, None), "created_ts": (int, float, None), "epoch": (int, None), "epochs": (int, None),
    "metrics": (dict, None), "error": (str, None), "pid": (int, None), "device": (str, None),
    "resumed": (bool, None), "config": (dict, None), "step": (int, None), "checkpoint": (dict, None),
    "world_size": (int, None),
}
_TYPE_WORDS = {str: "text", int: "a whole number", float: "a number", dict: "an object", bool: "true/false",
               None: "null"}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {str: "text", int: "a whole number", float: "a number", dict: "an object",
            list: "a list"}.get(type(value), type(value).__name__)


def read_status(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(status, None)`` for a usable ``status.json`` of ``run_dir``, ``(None, problem)`` for one
    that is not (not a regular file, binary, not JSON, not an object, a field of the wrong type,
    another run's), and ``(None, None)`` when the folder has none yet."""
    try:
        status = load_record(run_dir / "status.json")
    except FileNotFoundError:
        return None, None
    except BadRecordError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"status.json cannot be read ({exc.strerror or type(exc).__name__})"
    if not isinstance(status, dict):
        return None, f"status.json holds {_json_kind(status).replace('a list', 'a JSON list')}, not an object"
    for name, kinds in _STATUS_TYPES.items():
        if name not in status:
            continue
        value = status[name]
        fits = any((kind is None and value is None)
                   or (kind is not None and isinstance(value, kind)
                       and not (isinstance(value, bool) and kind in (int, float)))
                   for kind in kinds)
        if not fits:
            words = [_TYPE_WORDS[kind] for kind in kinds if not (kind is int and float in kinds)]
            wanted = " or ".join(words)
            return None, f"status.json: {name!r} is {_json_kind(value)}, not {wanted}"
    if status.get("run_id", run_dir.name) != run_dir.name:
        return None, "status.json names another run than its folder"
    status.setdefault("run_id", run_dir.name)
    status.setdefault("model", run_dir.parent.name)
    status.setdefault("state", "unknown")
    return status, None


def write_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file in the same folder, ``fsync``, then rename: never half a
    checkpoint, and the temporary file is removed when the save fails. A process killed in the
    middle leaves the old checkpoint whole and a ``.tmp`` that :func:`clean_orphans` removes."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb", buffering=0) as raw:
            out = _WriteAll(raw)
            try:
                torch.save(payload, out)
            except RuntimeError:
                # torch reports a failed write as "unexpected pos …"; the OSError under it says why.
                if out.error is not None:
                    raise out.error from None
                raise
            os.fsync(raw.fileno())
        pause = os.environ.get(SAVE_PAUSE_ENV)
        if pause:
            time.sleep(float(pause))
        _sync_and_replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class _WriteAll:
    """A binary file for ``torch.save`` that writes every byte at once and keeps the OSError of a
    failed write (a full disk), which torch itself would only report as a RuntimeError."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                written = self.raw.write(view[done:])
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += written
        except OSError as exc:
            self.error = exc
            raise
        return done

    def flush(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


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


def trained_checkpoint(model_name: str, config_class: type, path: str | os.PathLike | None = None,
                       what: str | None = None) -> tuple[dict[str, Any], Any]:
    """The checkpoint at ``path``, else the newest finished run's ``best.pt``, with its Config.

    FileNotFoundError saying how to train one when there is none yet (``what`` names the model).
    """
    found = Path(path) if path else latest_checkpoint(model_name)
    if found is None:
        raise FileNotFoundError(f"no trained {what or model_name} yet: train one first (train_model {model_name})")
    checkpoint = load_checkpoint(found)
    return checkpoint, config_from_checkpoint(config_class, checkpoint)


def _model_dirs(model_name: str | None) -> list[Path]:
    root = get_settings().runs_dir
    if not root.is_dir():
        return []
    if model_name:
        return [root / model_name] if (root / model_name).is_dir() else []
    return sorted(p for p in root.iterdir() if p.is_dir())


def model_lock_path(model_name: str) -> Path:
    """The lock file held by the process that trains ``model_name`` (one run per model)."""
    return get_settings().runs_dir / model_name / ".model.lock"


def run_lock_path(run_dir: Path) -> Path:
    """The lock file held by the process that trains the run in ``run_dir``."""
    return Path(run_dir) / ".run.lock"


def run_is_live(run_dir: Path, pid: Any = None) -> bool:
    """Whether a process is training the run in ``run_dir`` now (its run lock is held).

    A folder written before run locks existed has no lock file: its status's pid decides."""
    lock = run_lock_path(run_dir)
    if LOCKS_WORK and lock.is_file():
        return is_locked(lock)
    return pid == os.getpid() or _pid_alive(pid)


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


def list_runs(model_name: str | None = None, problems: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """Every run on disk (newest first) from its ``status.json``.

    A run whose status says ``running`` but whose run lock is free (its process is gone) is
    reported as ``interrupted`` (it can be continued with ``resume=True``), or as the end its
    process could only leave in the lock file (``failed`` with the error, when a full disk kept
    it from writing ``status.json``). A run folder whose ``status.json`` is unusable
    (see :func:`read_status`) is skipped; given a ``problems`` list, each is added to it as
    ``{"path": <run folder>, "problem": <what is wrong>}``.
    """
    runs = []
    for model_dir in _model_dirs(model_name):
        for run_dir in sorted(model_dir.iterdir()):
            if not run_dir.is_dir():
                continue
            status, problem = read_status(run_dir)
            if problem is not None and problems is not None:
                problems.append({"path": str(run_dir), "problem": problem})
            if not status:
                continue
            status["path"] = str(run_dir)
            if status.get("state") == "running" and not run_is_live(run_dir, status.get("pid")):
                # A process that could not write its last status (a full disk) left it in the lock file.
                note = holder_of(run_lock_path(run_dir)) or {}
                if note.get("state") in ("failed", "cancelled", "finished"):
                    error = note.get("error")
                    status.update(state=note["state"], error=error[:2000] if isinstance(error, str) else None)
                else:
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


def outputs_folder(run: Any = None) -> Path:
    """Where a trainer writes its PNGs: the run folder (a :class:`Run`), else the outputs folder."""
    folder = run.dir if run is not None else get_settings().outputs_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder
