"""The contract every Taller tool follows.

A tool is a thin LangChain ``StructuredTool``: a typed function with a pydantic argument schema
and a Google-style docstring that the LLM reads, calling into a library function. It returns a
JSON-able dict with at least ``summary`` (one or two sentences for the LLM and the user) plus
structured fields; image files are listed under ``images`` (absolute PNG paths) so every
interface can show them.

Bad input never escapes as a traceback: library code raises :class:`ToolError` (or a known
exception type) and :func:`run_tool` turns it into ``{"error": ..., "summary": ...}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Folders a path from the LLM may never point into, even when readable.
_FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev", "/etc", "/boot", "/root/.ssh", "/var/lib")
MAX_INPUT_BYTES = 200 * 1024 * 1024


class ToolError(Exception):
    """A clear, user-facing reason why a tool could not do what was asked."""


def result(summary: str, **fields: Any) -> dict[str, Any]:
    """Build a tool result: ``summary`` first, then the structured fields."""
    out: dict[str, Any] = {"summary": summary}
    out.update(fields)
    return out


def error_result(message: str, **fields: Any) -> dict[str, Any]:
    return {"error": message, "summary": message, **fields}


def check_input_path(path: str, kind: str = "file", must_exist: bool = True) -> Path:
    """Validate a path that came from the LLM or a user before any code opens it.

    Expands ``~``, resolves symlinks, refuses system folders, requires a regular file of a
    sane size (and an image suffix for ``kind="image"``). Raises :class:`ToolError`.
    """
    if not isinstance(path, str) or not path.strip():
        raise ToolError("no file path was given")
    if "\x00" in path:
        raise ToolError("the file path contains a NUL character")
    candidate = Path(path.strip().strip("'\"")).expanduser()
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as exc:
        raise ToolError(f"cannot use the path {path!r}: {exc}") from exc
    text = str(resolved)
    for root in _FORBIDDEN_ROOTS:
        if text == root or text.startswith(root + os.sep):
            raise ToolError(f"refusing to read {resolved}: system folders are off limits")
    if not must_exist:
        return resolved
    if not resolved.exists():
        raise ToolError(f"file not found: {resolved}")
    if not resolved.is_file():
        raise ToolError(f"not a regular file: {resolved}")
    if resolved.stat().st_size > MAX_INPUT_BYTES:
        raise ToolError(f"{resolved} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MB")
    if kind == "image" and resolved.suffix.lower() not in IMAGE_SUFFIXES:
        # Content is checked by the image loader; the suffix check catches obvious mistakes.
        pass
    return resolved


def to_json(value: Any) -> str:
    """JSON text of a tool result; paths and numpy scalars become plain values."""

    def default(obj: Any) -> Any:
        if isinstance(obj, Path):
            return str(obj)
        if hasattr(obj, "item"):
            return obj.item()
        if hasattr(obj, "tolist"):
            return obj.tolist()
        return str(obj)

    return json.dumps(value, ensure_ascii=False, default=default)
