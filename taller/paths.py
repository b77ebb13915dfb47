"""Where Taller's files live, and the check every path from the LLM or a user passes first.

Base layer. All state lives under one data folder, ``Settings.home`` (``TALLER_HOME``); the
few files that two components share by name (the server token: the server writes it, the client
reads it) are located here so neither has to import the other.
"""

from __future__ import annotations

import os
from pathlib import Path

from taller.config import Settings, get_settings
from taller.errors import ToolError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Folders a path from the LLM may never point into, even when readable.
_FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev", "/etc", "/boot", "/root/.ssh", "/var/lib")
MAX_INPUT_BYTES = 200 * 1024 * 1024


def check_input_path(path: str, kind: str = "file", must_exist: bool = True) -> Path:
    """Validate a path that came from the LLM or a user before any code opens it.

    Expands ``~``, resolves symlinks, refuses system folders, requires a regular file of a
    sane size. ``kind`` is informational: an image's content is checked by the image loader,
    which gives a better message than a suffix rule. Raises :class:`ToolError`.
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
    return resolved


def server_token_path(settings: Settings | None = None) -> Path:
    """The file holding the local server's token (mode 0600), written by ``taller serve``."""
    return (settings or get_settings()).home / "server_token"


def read_server_token(settings: Settings | None = None) -> str | None:
    """The token a local client should use: the config's, else the token file's (never creates one)."""
    settings = settings or get_settings()
    if settings.server_token:
        return settings.server_token
    path = server_token_path(settings)
    if path.is_file():
        return path.read_text(encoding="utf-8").strip() or None
    return None
