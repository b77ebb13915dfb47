"""What a training run leaves on disk: JSON records, checkpoints, and the list of runs.

A run folder is ``$TALLER_HOME/runs/<model>/<run_id>/`` with ``config.json``, ``status.json``,
``metrics.jsonl`` and the checkpoints ``last.pt`` / ``best.pt``. Every file is written atomically
(a temporary file, then a rename), so a reader or a crash never sees half a file. Part of the
training engine (:mod:`taller.trainers.engine` re-exports the public names).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import stat
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from taller.config import get_settings
from taller.trainers.device import unwrap_model


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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(jsonable(data), out, indent=2, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    "resumed": (bool, None), "config": (dict, None),
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
    """``torch.save`` to a temporary file in the same folder, then rename: never half a checkpoint."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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

    A run whose status says ``running`` but whose process is gone is reported as ``interrupted``
    (it can be continued with ``resume=True``). A run folder whose ``status.json`` is unusable
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
