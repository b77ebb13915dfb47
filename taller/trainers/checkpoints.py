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


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


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


def list_runs(model_name: str | None = None) -> list[dict[str, Any]]:
    """Every run on disk (newest first) from its ``status.json``.

    A run whose status says ``running`` but whose process is gone is reported as ``interrupted``
    (it can be continued with ``resume=True``).
    """
    runs = []
    for model_dir in _model_dirs(model_name):
        for run_dir in model_dir.iterdir():
            status = read_json(run_dir / "status.json")
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
