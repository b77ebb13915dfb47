"""Where Taller's files live, and the check every path from the LLM or a user passes first.

Base layer. All state lives under one data folder, ``Settings.home`` (``TALLER_HOME``); the
few files that two components share by name (the server token: the server writes it, the client
reads it) are located here so neither has to import the other.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from taller.config import Settings, get_settings
from taller.errors import ToolError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Folders a path from the LLM may never point into, even when readable.
_FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev", "/etc", "/boot", "/root/.ssh", "/var/lib")
MAX_INPUT_BYTES = 200 * 1024 * 1024
# Longer paths are refused before the file system sees them (Linux's PATH_MAX and NAME_MAX).
MAX_PATH_CHARS = 4096
MAX_NAME_CHARS = 255
# The most characters of a path (or any text from a user) an error message quotes.
QUOTE_CHARS = 120


def clip(text: object, limit: int = QUOTE_CHARS) -> str:
    """``text`` for an error message: at most ``limit`` characters, its middle cut when longer
    ("/home/jo/very…/file.csv (1,048,576 characters)"), so a huge argument is never echoed."""
    text = str(text)
    if len(text) <= limit:
        return text
    half = max(1, (limit - 1) // 2)
    return f"{text[:half]}…{text[-half:]} ({len(text):,} characters)"


def check_input_path(path: str, kind: str = "file", must_exist: bool = True) -> Path:
    """Validate a path that came from the LLM or a user before any code opens it.

    Expands ``~``, resolves symlinks, refuses system folders, requires a regular file of a
    sane size. ``kind`` is informational: an image's content is checked by the image loader,
    which gives a better message than a suffix rule. Raises :class:`ToolError`.
    """
    if not isinstance(path, str) or not path.strip():
        raise ToolError("no file path was given")
    if len(path) > MAX_PATH_CHARS:
        # Checked first: the file system would answer "File name too long" and quote it all.
        raise ToolError(f"the file path is {len(path):,} characters long; the limit is {MAX_PATH_CHARS:,}")
    if "\x00" in path:
        raise ToolError("the file path contains a NUL character")
    candidate = Path(path.strip().strip("'\"")).expanduser()
    longest = max((len(part) for part in candidate.parts), default=0)
    if longest > MAX_NAME_CHARS:
        raise ToolError(f"a file or folder name in the path {clip(path)} is {longest:,} characters long; "
                        f"the limit is {MAX_NAME_CHARS}")
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as exc:
        raise ToolError(f"cannot use the path {clip(path)}: {_reason(exc)}") from None
    text = str(resolved)
    for root in _FORBIDDEN_ROOTS:
        if text == root or text.startswith(root + os.sep):
            raise ToolError(f"refusing to read {clip(text)}: system folders are off limits")
    if not must_exist:
        return resolved
    try:
        info = resolved.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ToolError(f"file not found: {clip(text)}") from None
    except OSError as exc:  # too long after ~ expansion, a loop of links, no permission...
        raise ToolError(f"cannot use the path {clip(text)}: {_reason(exc)}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"not a regular file: {clip(text)}")
    if info.st_size > MAX_INPUT_BYTES:
        raise ToolError(f"{clip(text)} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MB")
    return resolved


def _reason(exc: BaseException) -> str:
    """An OS error's reason without the path it repeats ("File name too long")."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


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
