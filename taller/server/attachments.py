"""Images attached to a ``message``: a local path, or base64 data recognised by its first bytes.

:func:`decode_attachment` checks one item and returns either the checked local path or an
:class:`Upload` (decoded bytes and the suffix its magic bytes give); it writes nothing.
:func:`save_upload` writes an upload with mode 0600 under ``outputs_dir/uploads``, and
:func:`attachment_paths` does both for a message's list, off the event loop. What the client says
about an image (name, media type) is never trusted: the bytes must be a PNG, JPEG, GIF, WebP or BMP
that Pillow can verify.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taller.errors import ToolError
from taller.paths import check_input_path
from taller.server.protocol import Limits, ProtocolError

# Uploaded images are accepted by their first bytes, not by what the client claims.
IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF87a", ".gif"),
               (b"GIF89a", ".gif"), (b"BM", ".bmp"))


@dataclass(frozen=True)
class Upload:
    """A decoded image that still has to be saved."""

    blob: bytes
    suffix: str


def image_suffix(blob: bytes) -> str | None:
    """``.png``/``.jpg``/``.gif``/``.bmp``/``.webp`` from the magic bytes, or None."""
    for magic, suffix in IMAGE_MAGIC:
        if blob.startswith(magic):
            return suffix
    if len(blob) > 12 and blob[:4] == b"RIFF" and blob[8:12] == b"WEBP":
        return ".webp"
    return None


def check_attachment_list(raw: Any, max_attachments: int) -> list:
    """The message's ``attachments`` field as a list (empty when absent), or a ``bad_attachment`` error."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ProtocolError("bad_attachment", "\"attachments\" must be a list")
    if len(raw) > max_attachments:
        raise ProtocolError("bad_attachment", f"at most {max_attachments} attachments per message")
    return raw


def decode_attachment(item: Any, max_upload_bytes: int) -> str | Upload:
    """A local path (checked like any user path) or the decoded, verified image of a base64 item."""
    if isinstance(item, dict) and "path" in item and "data" not in item:
        item = item["path"]
    if isinstance(item, str) and not item.startswith("data:"):
        try:
            return str(check_input_path(item))
        except ToolError as exc:
            raise ProtocolError("bad_attachment", f"attachment: {exc}") from None
    data = item.get("data") if isinstance(item, dict) else item
    if not isinstance(data, str) or not data:
        raise ProtocolError("bad_attachment", "an attachment is a path or {\"data\": base64 image}")
    if data.startswith("data:"):
        data = data.partition(",")[2]
    # Refuse an oversized upload by its base64 length, before decoding it.
    if len(data) > max_upload_bytes * 4 // 3 + 8:
        raise ProtocolError("bad_attachment", f"attachment larger than {max_upload_bytes // (1024 * 1024)} MB")
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad_attachment", "attachment data is not valid base64") from None
    suffix = image_suffix(blob)
    if suffix is None:
        raise ProtocolError("bad_attachment", "attachment is not a PNG, JPEG, GIF, WebP or BMP image")
    try:
        from PIL import Image

        with Image.open(io.BytesIO(blob)) as image:
            image.verify()  # catches truncated or corrupt files before a tool chokes on them
    except ImportError:
        pass
    except Exception as exc:
        raise ProtocolError("bad_attachment", f"attachment is a corrupt image ({type(exc).__name__})") from None
    return Upload(blob, suffix)


def save_upload(upload: Upload, folder: Path) -> Path:
    """Write the image to a new file in ``folder`` (mode 0600, never overwriting) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"upload-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}{upload.suffix}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(upload.blob)
    return path


def attachment_path(item: Any, limits: Limits, uploads_folder: Path) -> str:
    """One attachment as the path the agent receives (an upload is saved first)."""
    decoded = decode_attachment(item, limits.max_upload_bytes)
    if isinstance(decoded, Upload):
        return str(save_upload(decoded, uploads_folder))
    return decoded


async def attachment_paths(raw: Any, limits: Limits, uploads_folder: Path) -> list[str]:
    """Every attachment of a message as a path, decoded and saved in worker threads (not on the loop)."""
    paths = []
    for item in check_attachment_list(raw, limits.max_attachments):
        paths.append(await asyncio.to_thread(attachment_path, item, limits, uploads_folder))
    return paths
