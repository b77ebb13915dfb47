"""The JSON protocol of ``docs/protocol.md``: frames, ids, limits, errors, and dispatch by ``"type"``.

Every frame is one JSON object in a websocket text frame with a ``"type"``. This module turns a raw
frame into a checked ``dict`` and finds its handler in a table (``type`` → handler), so a new
message type is one function and one table entry (see :mod:`taller.server.handlers`). It holds
no state and does no I/O.

Error codes (the ``code`` of an ``error`` frame): ``bad_json``, ``missing_field``, ``bad_field``,
``unknown_type``, ``binary_not_supported``, ``too_large``, ``bad_attachment``, ``rate_limited``,
``thread_busy``, ``duplicate_request``, ``too_many_requests``, ``not_running``, ``not_remembered``,
``unknown_thread``, ``unknown_branch``, ``bad_import``, ``internal``;
``/files`` uses ``forbidden`` and ``not_found`` for its HTTP answers.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

PROTOCOL_VERSION = 1
# Browsers cannot set headers on a WebSocket, so the page offers the subprotocols
# ``["taller", "taller.token.<TOKEN>"]``; the server answers with ``taller`` (never the token).
SUBPROTOCOL = "taller"
# Events that end a request (``interrupt`` pauses it; see docs/protocol.md).
TERMINAL = {"final", "error", "interrupt"}
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")

Handler = TypeVar("Handler")


@dataclass
class Limits:
    """Per-connection and per-message limits (the defaults suit one user on one machine)."""

    max_frame_bytes: int = 16 * 1024 * 1024      # a frame can carry a few base64 images
    max_send_bytes: int = 4 * 1024 * 1024        # the largest frame the server sends (cut to fit, see frame_text)
    max_upload_bytes: int = 8 * 1024 * 1024      # one decoded image attachment
    max_attachments: int = 4
    max_text_chars: int = 20000
    rate_per_s: float = 20.0                     # sustained frames per second per connection
    rate_burst: int = 60                         # frames allowed at once before limiting
    max_active_requests: int = 8                 # agent requests one connection may run at once
    send_queue: int = 4096                       # events waiting for a slow reader before it is dropped
    max_file_bytes: int = 32 * 1024 * 1024       # largest image served by /files
    max_import_bytes: int = 4 * 1024 * 1024      # a thread exported as JSON, sent back with "import"


class ProtocolError(Exception):
    """A frame the server cannot act on; becomes an ``error`` frame with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def hello_frame(connection_id: str, limits: Limits) -> dict[str, Any]:
    """The first frame of every connection: protocol version, connection id, the limits that apply."""
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "connection_id": connection_id,
            "limits": {"max_frame_bytes": limits.max_frame_bytes,
                       "max_send_bytes": limits.max_send_bytes,
                       "max_upload_bytes": limits.max_upload_bytes,
                       "rate_per_s": limits.rate_per_s,
                       "max_active_requests": limits.max_active_requests}}


# How a frame that is too large is cut, step by step: texts to this many characters and lists to
# this many items, until it fits.
_CUT_STEPS = ((20_000, 2_000), (2_000, 200), (200, 20))
# Fields a frame keeps when even the last step does not make it fit.
_KEPT_FIELDS = ("type", "thread_id", "request_id", "tool", "call_id", "code", "ok", "cancelled")


def _size(text: str) -> int:
    """Bytes of ``text`` as UTF-8 (counted only when some character is not ASCII)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _shrink(value: Any, chars: int, items: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= chars else f"{value[:chars]}… [cut: {len(value):,} characters in all]"
    if isinstance(value, dict):
        return {key: _shrink(item, chars, items) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shrink(item, chars, items) for item in list(value)[:items]]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _shrink(str(value), chars, items)  # what json.dumps(default=str) would write


def frame_text(event: dict[str, Any], max_bytes: int) -> str:
    """The JSON text of an event the server sends, at most ``max_bytes`` bytes.

    An event that would be larger (a huge tool result, a long history) is cut until it fits: long
    texts, then long lists, shortened step by step, with a ``cut`` field saying so; if nothing
    fits, only its type and ids are sent, with ``cut`` saying what was left out. A client never
    receives a frame larger than ``Limits.max_send_bytes``.
    """
    text = json.dumps(event, ensure_ascii=False, default=str)
    size = _size(text)
    if size <= max_bytes:
        return text
    for chars, items in _CUT_STEPS:
        shrunk = _shrink(event, chars, items)
        shrunk["cut"] = (f"this {event.get('type', 'event')} frame would have been {size:,} bytes, more than "
                         f"the {max_bytes:,} a frame carries: texts longer than {chars:,} characters and "
                         f"lists longer than {items:,} items were cut")
        candidate = json.dumps(shrunk, ensure_ascii=False, default=str)
        if _size(candidate) <= max_bytes:
            return candidate
    kept = {key: event[key] for key in _KEPT_FIELDS if key in event and _size(str(event[key])) <= 200}
    kept["cut"] = (f"this {event.get('type', 'event')} frame would have been {size:,} bytes, more than the "
                   f"{max_bytes:,} a frame carries, and was left out")
    return json.dumps(kept, ensure_ascii=False, default=str)


def error_frame(code: str, message: str, thread_id: str | None = None,
                request_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "thread_id": thread_id, "request_id": request_id}


def new_request_id() -> str:
    return "r-" + uuid.uuid4().hex[:12]


def optional_id(frame: dict, name: str) -> str | None:
    """The frame's ``thread_id``/``request_id`` field, None when absent, or a ``bad_field`` error."""
    value = frame.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise ProtocolError("bad_field", f"\"{name}\" must be 1-64 characters of letters, digits and _.:-")
    return value


def ids_of(raw: Any) -> tuple[str | None, str | None]:
    """Best-effort thread/request ids of a frame, so an error can be matched to what caused it."""
    try:
        frame = json.loads(raw) if isinstance(raw, str) and len(raw) < 1_000_000 else None
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(frame, dict):
        return None, None
    ids = []
    for name in ("thread_id", "request_id"):
        value = frame.get(name)
        ids.append(value if isinstance(value, str) and ID_PATTERN.match(value) else None)
    return ids[0], ids[1]


def require_text(raw: str | bytes) -> str:
    """The frame as text; binary frames are refused before they cost a rate-limit token."""
    if isinstance(raw, (bytes, bytearray)):
        raise ProtocolError("binary_not_supported", "binary frames are not supported; send JSON text frames")
    return raw


def rate_limited(limits: Limits) -> ProtocolError:
    return ProtocolError("rate_limited", f"too many frames; the limit is {limits.rate_per_s:g} per second "
                                         f"(bursts of {limits.rate_burst})")


def parse_frame(text: str) -> dict[str, Any]:
    """A JSON object with a non-empty string ``"type"``, or the ``ProtocolError`` saying what is wrong."""
    try:
        frame = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"malformed JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise ProtocolError("bad_json", "a frame must be a JSON object with a \"type\"")
    kind = frame.get("type")
    if not isinstance(kind, str) or not kind:
        raise ProtocolError("missing_field", "missing field \"type\"")
    return frame


def handler_for(handlers: Mapping[str, Handler], frame: dict[str, Any]) -> Handler:
    """The table's handler for the frame's type; an unknown type names the known ones."""
    kind = frame["type"]
    handler = handlers.get(kind)
    if handler is None:
        raise ProtocolError("unknown_type", f"unknown type {kind!r}; expected one of {', '.join(sorted(handlers))}")
    return handler
