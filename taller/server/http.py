"""Plain HTTP on the websocket's port: the chat page from ``taller/static/``, ``/files`` and ``/healthz``.

* ``/`` and ``/static/<name>``: only the files loaded from the package's static folder at start-up,
  so no path from the client ever reaches the file system; served with a strict
  Content-Security-Policy (no inline script) and ``X-Frame-Options: DENY``.
* ``/files?path=...``: image files tools wrote, only from ``outputs_dir`` and ``runs_dir``
  (symlinks resolved first) and only with the token; image events carry the URL (:meth:`file_url`).
* ``/healthz``: ``ok``.
"""

from __future__ import annotations

import http
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from taller.config import Settings
from taller.server.protocol import Limits, ProtocolError

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".ico": "image/x-icon"}
# Image files served under /files, by suffix (nothing else is served from disk).
FILE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
              ".webp": "image/webp", ".bmp": "image/bmp"}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def plain_response(status: int, body: bytes | str, content_type: str = "text/plain; charset=utf-8",
                   extra: list[tuple[str, str]] | None = None) -> Response:
    """An HTTP answer with the headers every answer of this server carries (no caching, no sniffing)."""
    body = body.encode("utf-8") if isinstance(body, str) else body
    headers = Headers([
        ("Content-Type", content_type), ("Content-Length", str(len(body))), ("Connection", "close"),
        ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
    ])
    for name, value in extra or []:
        headers[name] = value
    status_obj = http.HTTPStatus(status)
    return Response(status_obj.value, status_obj.phrase, headers, body)


def load_static(folder: Path = STATIC_DIR) -> dict[str, tuple[bytes, str]]:
    """``name → (bytes, content type)`` of the page's files, read once."""
    files: dict[str, tuple[bytes, str]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.suffix in STATIC_TYPES:
                files[path.name] = (path.read_bytes(), STATIC_TYPES[path.suffix])
    return files


class HttpRoutes:
    """The non-websocket requests. ``token_ok(request, query)`` says whether a request holds the token."""

    def __init__(self, settings: Settings, limits: Limits,
                 token_ok: Callable[[Request, dict[str, list[str]]], bool]) -> None:
        self.settings = settings
        self.limits = limits
        self.token_ok = token_ok
        self.static = load_static()

    def route(self, path: str, request: Request, query: dict[str, list[str]]) -> Response:
        if path in ("/", "/index.html"):
            return self.static_response("index.html")
        if path.startswith("/static/"):
            return self.static_response(path[len("/static/"):])
        if path == "/files":
            return self.file_response(request, query)
        if path == "/healthz":
            return plain_response(200, "ok\n")
        return plain_response(404, "not found\n")

    def static_response(self, name: str) -> Response:
        # Only files loaded from the package's static folder at start-up: no path from the client
        # ever reaches the file system here.
        entry = self.static.get(name)
        if entry is None:
            return plain_response(404, "not found\n")
        body, content_type = entry
        return plain_response(200, body, content_type, [("Content-Security-Policy", CONTENT_SECURITY_POLICY)])

    def file_response(self, request: Request, query: dict[str, list[str]]) -> Response:
        if not self.token_ok(request, query):
            return plain_response(401, "missing or wrong token\n")
        raw = (query.get("path") or [""])[0]
        try:
            path = self.allowed_file(raw)
        except ProtocolError as exc:
            return plain_response(404 if exc.code == "not_found" else 403, exc.message + "\n")
        size = path.stat().st_size
        if size > self.limits.max_file_bytes:
            return plain_response(413, "file too large to serve\n")
        return plain_response(200, path.read_bytes(), FILE_TYPES[path.suffix.lower()])

    def allowed_file(self, raw: str) -> Path:
        """Resolve ``raw`` to an image file under ``outputs_dir`` or ``runs_dir``, or raise."""
        if not raw or "\x00" in raw:
            raise ProtocolError("forbidden", "no file path given")
        try:
            resolved = Path(raw).expanduser().resolve(strict=False)
        except (OSError, RuntimeError, ValueError):
            raise ProtocolError("forbidden", "bad file path") from None
        roots = [self.settings.outputs_dir.resolve(), self.settings.runs_dir.resolve()]
        # resolve() has followed symlinks, so a link inside outputs_dir pointing out is refused too.
        if not any(resolved.is_relative_to(root) for root in roots):
            raise ProtocolError("forbidden", "only files under the outputs and runs folders are served")
        if resolved.suffix.lower() not in FILE_TYPES:
            raise ProtocolError("forbidden", "only image files are served")
        if not resolved.is_file():
            raise ProtocolError("not_found", "file not found")
        return resolved

    def file_url(self, path: str) -> str | None:
        """The relative ``/files`` URL of an image, or None when it would not be served."""
        try:
            self.allowed_file(path)
        except ProtocolError:
            return None
        return "/files?path=" + quote(str(Path(path).resolve()), safe="")
