"""The local websocket server behind ``taller serve``: the agent for scripts, editors and a web page.

One process, one port (default ``127.0.0.1:8765``):

* ``ws://host:port/`` (or ``/ws``): the JSON protocol of ``docs/protocol.md``. A client sends
  ``message`` / ``approve`` / ``reject`` / ``cancel`` / ``ping`` (and ``runs`` / ``threads`` /
  ``history`` / ``subscribe``); the server streams the agent's events back, each tagged with the
  ``thread_id`` and ``request_id`` it belongs to.
* ``http://host:port/``: a single static chat page (``taller/static/``), plain JavaScript.
* ``http://host:port/files?path=...``: image files tools wrote, only from ``outputs_dir`` and
  ``runs_dir`` and only with the token.

Security: loopback by default; a token (``$TALLER_HOME/server_token``, mode 0600, created on first
start, or the ``server_token`` setting) is required for the websocket and for ``/files``; the
``Origin`` header of a websocket handshake must be absent (scripts) or a loopback page on this
port (browsers), which stops other web sites and DNS rebinding; frames are capped at
``max_frame_bytes``; each connection has a token-bucket rate limit.

Concurrency: every agent request runs in its own worker thread (``Agent.arun``), so many clients
and many threads per client run at once; a thread runs one request at a time (a second message
on a busy thread gets an ``error`` with code ``thread_busy``). Each connection has its own send
queue and writer task, so a slow reader only delays itself. Background training runs report on
``taller.progress.bus``; the server forwards those ``progress`` events to every connection that
follows them (all, by default), so a client that reconnects sees the runs that are still going.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import http
import json
import logging
import os
import re
import secrets
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from taller.config import Settings, get_settings
from taller.paths import server_token_path

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
# Browsers cannot set headers on a WebSocket, so the page offers the subprotocols
# ``["taller", "taller.token.<TOKEN>"]``; the server answers with ``taller`` (never the token).
SUBPROTOCOL = "taller"
TOKEN_SUBPROTOCOL_PREFIX = "taller.token."
STATIC_DIR = Path(__file__).resolve().parent / "static"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".ico": "image/x-icon"}
# Image files served under /files, by suffix (nothing else is served from disk).
_FILE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".bmp": "image/bmp"}
# Uploaded images are accepted by their first bytes, not by what the client claims.
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF87a", ".gif"),
                (b"GIF89a", ".gif"), (b"BM", ".bmp"))
# Events that end a request (``interrupt`` pauses it; see docs/protocol.md).
_TERMINAL = {"final", "error", "interrupt"}


@dataclass
class Limits:
    """Per-connection and per-message limits (the defaults suit one user on one machine)."""

    max_frame_bytes: int = 16 * 1024 * 1024      # a frame can carry a few base64 images
    max_upload_bytes: int = 8 * 1024 * 1024      # one decoded image attachment
    max_attachments: int = 4
    max_text_chars: int = 20000
    rate_per_s: float = 20.0                     # sustained frames per second per connection
    rate_burst: int = 60                         # frames allowed at once before limiting
    max_active_requests: int = 8                 # agent requests one connection may run at once
    send_queue: int = 4096                       # events waiting for a slow reader before it is dropped
    max_file_bytes: int = 32 * 1024 * 1024       # largest image served by /files


class ProtocolError(Exception):
    """A frame the server cannot act on; becomes an ``error`` frame with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- token ---------------------------------------------------------------------------------------

def load_or_create_token(settings: Settings | None = None) -> tuple[str, Path | None]:
    """The server token and the file it lives in (None when it comes from the config).

    The file is created with mode 0600 on first use; an existing file readable by others is
    tightened to 0600, because anyone holding the token can drive the agent.
    """
    settings = settings or get_settings()
    if settings.server_token:
        return settings.server_token, None
    path = server_token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token, path
        path.unlink()
    token = secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, path


# --- per-connection state ------------------------------------------------------------------------

class _TokenBucket:
    """``rate`` frames per second on average, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class _Request:
    request_id: str
    thread_id: str
    connection: "_Connection"
    cancel_event: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task | None = None


class _Connection:
    """One websocket client: a bounded send queue drained by its own writer task."""

    def __init__(self, websocket: ServerConnection, limits: Limits) -> None:
        self.websocket = websocket
        self.id = uuid.uuid4().hex[:8]
        self.limits = limits
        self.queue: asyncio.Queue = asyncio.Queue()
        self.requests: dict[str, _Request] = {}
        self.bucket = _TokenBucket(limits.rate_per_s, limits.rate_burst)
        self.follow_progress = True
        self.closed = False
        self.dropped = 0

    def send(self, event: dict[str, Any], droppable: bool = False) -> None:
        """Queue an event; never blocks the caller (other clients, the agent threads)."""
        if self.closed:
            return
        size = self.queue.qsize()
        if droppable and size >= self.limits.send_queue // 2:
            self.dropped += 1  # progress snapshots can be skipped; the next one supersedes them
            return
        if size >= self.limits.send_queue:
            # This client stopped reading; dropping it keeps the server's memory bounded.
            self.closed = True
            asyncio.ensure_future(self.websocket.close(1008, "client too slow: send queue full"))
            return
        self.queue.put_nowait(event)

    async def writer(self) -> None:
        try:
            while True:
                event = await self.queue.get()
                if event is None:
                    return
                await self.websocket.send(json.dumps(event, ensure_ascii=False, default=str))
        except ConnectionClosed:
            pass
        finally:
            self.closed = True


# --- the server ----------------------------------------------------------------------------------

class TallerServer:
    """The websocket + HTTP server. ``await start()``, then ``await serve_forever()`` or ``stop()``.

    ``agent`` defaults to ``taller.agent.session.Agent()`` (tests inject one with a fake model);
    ``port=0`` binds any free port (read it from :attr:`port`).
    """

    def __init__(self, agent: Any = None, settings: Settings | None = None, host: str | None = None,
                 port: int | None = None, token: str | None = None, limits: Limits | None = None) -> None:
        self.settings = settings or get_settings()
        self.host = host or self.settings.server_host or "127.0.0.1"
        self.requested_port = self.settings.server_port if port is None else port
        self.port: int | None = None
        if token:
            self.token, self.token_file = token, None
        else:
            self.token, self.token_file = load_or_create_token(self.settings)
        self.limits = limits or Limits()
        self._agent = agent
        self._agent_lock = threading.Lock()
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[_Connection] = set()
        self._busy: dict[str, _Request] = {}             # thread_id -> running request
        self._paused: dict[str, str] = {}                # thread_id -> request_id waiting at an interrupt
        self._latest_progress: dict[str, dict] = {}      # run_id -> last progress event
        self._unsubscribe: Callable[[], None] | None = None
        self._static = self._load_static()

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def agent(self) -> Any:
        with self._agent_lock:
            if self._agent is None:
                from taller.agent.session import Agent

                self._agent = Agent(settings=self.settings)
            return self._agent

    async def start(self) -> None:
        from taller.progress import bus

        self.settings.ensure_dirs()
        self._loop = asyncio.get_running_loop()
        # Build the agent (SQLite checkpointer, compiled graph) now, off the event loop, so the
        # first message does not stall every connection; the LLM itself still loads on first use.
        await asyncio.to_thread(lambda: self.agent)
        self._server = await ws_serve(
            self._handler, self.host, self.requested_port,
            process_request=self._process_request,
            select_subprotocol=lambda connection, offered: SUBPROTOCOL if SUBPROTOCOL in offered else None,
            # Loopback traffic gains nothing from compression, and it costs ~100 KB per connection.
            compression=None,
            max_size=self.limits.max_frame_bytes,
            max_queue=32,
            # After a plain HTTP answer the server waits for the client to hang up; loopback
            # clients do that at once, and a sloppy one should not hold a slot for long.
            close_timeout=2,
            logger=log,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._unsubscribe = bus.subscribe(self._on_bus_event)

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        for connection in list(self._connections):
            for request in connection.requests.values():
                request.cancel_event.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        assert self._server is not None, "call start() first"
        await self._server.serve_forever()

    @property
    def url(self) -> str:
        """The websocket URL clients connect to."""
        return f"ws://{_url_host(self.host)}:{self.port}/"

    @property
    def page_url(self) -> str:
        """The browser page, with the token in the fragment (never sent to any server)."""
        return f"http://{_url_host(self.host)}:{self.port}/#token={self.token}"

    def stats(self) -> dict[str, int]:
        return {"connections": len(self._connections), "busy_threads": len(self._busy),
                "paused_threads": len(self._paused)}

    # --- HTTP side ---------------------------------------------------------------------------
    def _load_static(self) -> dict[str, tuple[bytes, str]]:
        files: dict[str, tuple[bytes, str]] = {}
        if STATIC_DIR.is_dir():
            for path in STATIC_DIR.iterdir():
                if path.is_file() and path.suffix in _STATIC_TYPES:
                    files[path.name] = (path.read_bytes(), _STATIC_TYPES[path.suffix])
        return files

    def _http(self, status: int, body: bytes | str, content_type: str = "text/plain; charset=utf-8",
              extra: list[tuple[str, str]] | None = None) -> Response:
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

    def _origin_allowed(self, origin: str | None) -> bool:
        """No Origin (a script) or a page served from a loopback name (or our host) on our port."""
        if origin is None:
            return True
        try:
            parts = urlsplit(origin)
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or port != self.port:
            return False
        hostname = (parts.hostname or "").lower()
        allowed = set(LOOPBACK_HOSTS)
        if self.host not in ("0.0.0.0", "::", ""):
            allowed.add(self.host.lower().strip("[]"))
        return hostname in allowed

    def _token_ok(self, request: Request, query: dict[str, list[str]]) -> bool:
        offered: list[str] = list(query.get("token", []))
        for value in request.headers.get_all("Authorization"):
            scheme, _, credential = value.partition(" ")
            if scheme.lower() == "bearer":
                offered.append(credential.strip())
        for value in request.headers.get_all("Sec-WebSocket-Protocol"):
            for item in value.split(","):
                item = item.strip()
                if item.startswith(TOKEN_SUBPROTOCOL_PREFIX):
                    offered.append(item[len(TOKEN_SUBPROTOCOL_PREFIX):])
        expected = self.token.encode("utf-8")
        return any(hmac.compare_digest(candidate.encode("utf-8"), expected) for candidate in offered)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP (page, files) and check token and Origin before any websocket handshake."""
        parts = urlsplit(request.path)
        path = parts.path
        query = parse_qs(parts.query)
        upgrade = ",".join(request.headers.get_all("Upgrade")).lower()
        if "websocket" in upgrade:
            if path not in ("/", "/ws"):
                return self._http(404, "no websocket endpoint here; connect to / or /ws\n")
            origins = request.headers.get_all("Origin")
            if len(origins) > 1 or not self._origin_allowed(origins[0] if origins else None):
                log.warning("refused websocket from origin %r", origins)
                return self._http(403, "origin not allowed: open the page served by this server\n")
            if not self._token_ok(request, query):
                return self._http(401, "missing or wrong token: see `taller serve` output "
                                       "(?token=, Authorization: Bearer, or the taller.token.* subprotocol)\n")
            return None  # go on with the handshake
        if path in ("/", "/index.html"):
            return self._static_response("index.html")
        if path.startswith("/static/"):
            return self._static_response(path[len("/static/"):])
        if path == "/files":
            return self._file_response(request, query)
        if path == "/healthz":
            return self._http(200, "ok\n")
        return self._http(404, "not found\n")

    def _static_response(self, name: str) -> Response:
        # Only files loaded from the package's static folder at start-up: no path from the client
        # ever reaches the file system here.
        entry = self._static.get(name)
        if entry is None:
            return self._http(404, "not found\n")
        body, content_type = entry
        csp = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
               "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        return self._http(200, body, content_type, [("Content-Security-Policy", csp)])

    def _file_response(self, request: Request, query: dict[str, list[str]]) -> Response:
        if not self._token_ok(request, query):
            return self._http(401, "missing or wrong token\n")
        raw = (query.get("path") or [""])[0]
        try:
            path = self.allowed_file(raw)
        except ProtocolError as exc:
            return self._http(404 if exc.code == "not_found" else 403, exc.message + "\n")
        size = path.stat().st_size
        if size > self.limits.max_file_bytes:
            return self._http(413, "file too large to serve\n")
        return self._http(200, path.read_bytes(), _FILE_TYPES[path.suffix.lower()])

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
        if resolved.suffix.lower() not in _FILE_TYPES:
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

    # --- websocket side ----------------------------------------------------------------------
    async def _handler(self, websocket: ServerConnection) -> None:
        connection = _Connection(websocket, self.limits)
        self._connections.add(connection)
        writer = asyncio.create_task(connection.writer())
        connection.send({"type": "hello", "protocol": PROTOCOL_VERSION, "connection_id": connection.id,
                         "limits": {"max_frame_bytes": self.limits.max_frame_bytes,
                                    "max_upload_bytes": self.limits.max_upload_bytes,
                                    "rate_per_s": self.limits.rate_per_s,
                                    "max_active_requests": self.limits.max_active_requests}})
        try:
            async for raw in websocket:
                try:
                    await self._dispatch(connection, raw)
                except ProtocolError as exc:
                    connection.send(_error(exc.code, exc.message, *_ids_of(raw)))
                except Exception as exc:  # never let one bad frame end the connection
                    log.exception("frame handling failed")
                    connection.send(_error("internal", f"{type(exc).__name__}: {exc}", *_ids_of(raw)))
        except ConnectionClosed:
            pass  # abrupt disconnects and oversized frames (close 1009) end up here
        finally:
            self._connections.discard(connection)
            connection.closed = True
            # The client is gone: stop its answer streams. Background training runs are not
            # requests; they keep going and report on the bus for whoever connects next.
            for request in list(connection.requests.values()):
                request.cancel_event.set()
            connection.queue.put_nowait(None)
            writer.cancel()

    async def _dispatch(self, connection: _Connection, raw: str | bytes) -> None:
        if isinstance(raw, (bytes, bytearray)):
            raise ProtocolError("binary_not_supported", "binary frames are not supported; send JSON text frames")
        if not connection.bucket.take():
            raise ProtocolError("rate_limited", f"too many frames; the limit is {self.limits.rate_per_s:g} per second "
                                                f"(bursts of {self.limits.rate_burst})")
        try:
            frame = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ProtocolError("bad_json", f"malformed JSON: {exc}") from None
        if not isinstance(frame, dict):
            raise ProtocolError("bad_json", "a frame must be a JSON object with a \"type\"")
        kind = frame.get("type")
        if not isinstance(kind, str) or not kind:
            raise ProtocolError("missing_field", "missing field \"type\"")
        handler = self._handlers().get(kind)
        if handler is None:
            raise ProtocolError("unknown_type", f"unknown type {kind!r}; expected one of {', '.join(sorted(self._handlers()))}")
        await handler(connection, frame)

    def _handlers(self) -> dict[str, Callable]:
        return {"message": self._on_message, "approve": self._on_approve, "reject": self._on_reject,
                "cancel": self._on_cancel, "ping": self._on_ping, "subscribe": self._on_subscribe,
                "runs": self._on_runs, "threads": self._on_threads, "history": self._on_history}

    # --- requests ----------------------------------------------------------------------------
    def _check_capacity(self, connection: _Connection, thread_id: str, request_id: str | None) -> None:
        if thread_id in self._busy:
            running = self._busy[thread_id].request_id
            raise ProtocolError("thread_busy", f"thread {thread_id} is already answering request {running}; "
                                               "wait for its final event or cancel it")
        if request_id is not None and request_id in connection.requests:
            raise ProtocolError("duplicate_request", f"request_id {request_id} is already in use on this connection")
        if len(connection.requests) >= self.limits.max_active_requests:
            raise ProtocolError("too_many_requests", f"at most {self.limits.max_active_requests} requests "
                                                     "may run at once per connection")

    def _begin(self, connection: _Connection, thread_id: str, request_id: str, make_stream: Callable) -> _Request:
        request = _Request(request_id=request_id, thread_id=thread_id, connection=connection)
        self._busy[thread_id] = request
        connection.requests[request_id] = request
        request.task = asyncio.create_task(self._pump(request, make_stream(request.cancel_event)))
        return request

    async def _pump(self, request: _Request, stream: Any) -> None:
        """Forward one request's events to its connection; make sure exactly one terminal event goes out."""
        connection = request.connection
        terminal: dict[str, Any] | None = None
        try:
            # Drain the stream to its end: the agent thread writes the thread's checkpoint after
            # its last event, and an approve that arrived before that would find nothing to resume.
            async for event in stream:
                event = dict(event)
                event["thread_id"] = request.thread_id
                event["request_id"] = request.request_id
                kind = event.get("type")
                if kind == "image" and event.get("path"):
                    event["url"] = self.file_url(str(event["path"]))
                if kind in _TERMINAL:
                    terminal = terminal or event
                    continue
                connection.send(event)
        except Exception as exc:
            log.exception("request %s failed", request.request_id)
            terminal = terminal or _error("internal", f"{type(exc).__name__}: {exc}", request.thread_id,
                                          request.request_id)
        finally:
            # The thread is free before the client hears the terminal event, so its next frame
            # (a new message, an approve) never meets a stale "thread_busy".
            if self._busy.get(request.thread_id) is request:
                del self._busy[request.thread_id]
            connection.requests.pop(request.request_id, None)
        if terminal is None:
            terminal = _error("internal", "the request ended without a result", request.thread_id, request.request_id)
        if terminal.get("type") == "interrupt":
            self._paused[request.thread_id] = request.request_id
        connection.send(terminal)

    async def _on_message(self, connection: _Connection, frame: dict) -> None:
        from taller.agent.session import new_thread_id

        text = frame.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ProtocolError("missing_field", "a message needs a non-empty \"text\" string")
        if len(text) > self.limits.max_text_chars:
            raise ProtocolError("too_large", f"text has {len(text)} characters; the limit is {self.limits.max_text_chars}")
        thread_id = _optional_id(frame, "thread_id") or new_thread_id()
        request_id = _optional_id(frame, "request_id") or _new_request_id()
        self._check_capacity(connection, thread_id, request_id)
        attachments = await self._attachments(frame.get("attachments"))
        # Re-check: saving uploads awaited, another frame may have taken the thread meanwhile.
        self._check_capacity(connection, thread_id, request_id)
        # A new message on a thread waiting for approval supersedes that question.
        self._paused.pop(thread_id, None)
        agent = self.agent
        self._begin(connection, thread_id, request_id,
                    lambda cancel: agent.arun(text, thread_id=thread_id, cancel_event=cancel,
                                              attachments=attachments or None))

    async def _on_approve(self, connection: _Connection, frame: dict) -> None:
        await self._resume(connection, frame, True)

    async def _on_reject(self, connection: _Connection, frame: dict) -> None:
        await self._resume(connection, frame, False)

    async def _resume(self, connection: _Connection, frame: dict, approve: bool) -> None:
        thread_id = _optional_id(frame, "thread_id")
        if not thread_id:
            raise ProtocolError("missing_field", f"{frame['type']} needs the \"thread_id\" of the interrupt")
        # The resumed run's events carry the frame's request_id: clients send the interrupted
        # request's id to continue it; without one, the server continues the paused request's id.
        request_id = _optional_id(frame, "request_id") or self._paused.get(thread_id) or _new_request_id()
        self._check_capacity(connection, thread_id, request_id)
        self._paused.pop(thread_id, None)
        agent = self.agent
        self._begin(connection, thread_id, request_id,
                    lambda cancel: agent.aresume(thread_id, approve, cancel_event=cancel))

    async def _on_cancel(self, connection: _Connection, frame: dict) -> None:
        request_id = _optional_id(frame, "request_id")
        thread_id = _optional_id(frame, "thread_id")
        request = connection.requests.get(request_id) if request_id else None
        if request is None and thread_id:
            request = self._busy.get(thread_id)
        if request is None and request_id:
            request = next((r for r in self._busy.values() if r.request_id == request_id), None)
        if request is not None:
            request.cancel_event.set()  # the request ends with final {cancelled: true}
            return
        paused_thread = thread_id if thread_id in self._paused else None
        if paused_thread is None and request_id:
            paused_thread = next((t for t, r in self._paused.items() if r == request_id), None)
        if paused_thread:
            # Cancelling a request that waits for approval answers it with "no".
            await self._resume(connection, {"type": "reject", "thread_id": paused_thread}, False)
            return
        raise ProtocolError("not_running", "nothing to cancel: no running request with that request_id/thread_id")

    async def _on_ping(self, connection: _Connection, frame: dict) -> None:
        connection.send({"type": "pong", "time": time.time(), "request_id": frame.get("request_id"),
                         "thread_id": frame.get("thread_id")})

    async def _on_subscribe(self, connection: _Connection, frame: dict) -> None:
        follow = frame.get("progress", True)
        if not isinstance(follow, bool):
            raise ProtocolError("bad_field", "\"progress\" must be true or false")
        connection.follow_progress = follow
        connection.send({"type": "subscribed", "progress": follow, "request_id": frame.get("request_id"),
                         "thread_id": None})

    async def _on_runs(self, connection: _Connection, frame: dict) -> None:
        def collect() -> list[dict]:
            runs_dir = self.settings.runs_dir
            # Every run (active ones included) has a folder; with none, skip importing the
            # trainers (they pull in torch, seconds of start-up).
            if not runs_dir.is_dir() or not any(runs_dir.iterdir()):
                return []
            try:
                from taller.trainers import runs

                return runs.list_all()
            except Exception as exc:  # the run registry is optional for the protocol
                log.warning("cannot list runs: %s", exc)
                return []

        listed = await asyncio.to_thread(collect)
        connection.send({"type": "runs", "runs": listed, "latest_progress": list(self._latest_progress.values()),
                         "request_id": frame.get("request_id"), "thread_id": None})

    async def _on_threads(self, connection: _Connection, frame: dict) -> None:
        threads = await asyncio.to_thread(self.agent.threads)
        connection.send({"type": "threads", "threads": threads, "request_id": frame.get("request_id"),
                         "thread_id": None})

    async def _on_history(self, connection: _Connection, frame: dict) -> None:
        thread_id = _optional_id(frame, "thread_id")
        if not thread_id:
            raise ProtocolError("missing_field", "history needs a \"thread_id\"")
        messages = await asyncio.to_thread(self.agent.history, thread_id)
        pending = await asyncio.to_thread(self.agent.pending_interrupt, thread_id)
        connection.send({"type": "history", "thread_id": thread_id, "messages": messages, "pending_interrupt": pending,
                         "busy": thread_id in self._busy, "request_id": frame.get("request_id")})

    # --- attachments -------------------------------------------------------------------------
    async def _attachments(self, raw: Any) -> list[str]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise ProtocolError("bad_attachment", "\"attachments\" must be a list")
        if len(raw) > self.limits.max_attachments:
            raise ProtocolError("bad_attachment", f"at most {self.limits.max_attachments} attachments per message")
        paths = []
        for item in raw:
            paths.append(await asyncio.to_thread(self._attachment, item))
        return paths

    def _attachment(self, item: Any) -> str:
        """A local path (checked like any user path) or a base64 image saved under outputs/uploads."""
        from taller.tools.base import ToolError, check_input_path

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
        if len(data) > self.limits.max_upload_bytes * 4 // 3 + 8:
            raise ProtocolError("bad_attachment", f"attachment larger than {self.limits.max_upload_bytes // (1024 * 1024)} MB")
        try:
            blob = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("bad_attachment", "attachment data is not valid base64") from None
        suffix = _image_suffix(blob)
        if suffix is None:
            raise ProtocolError("bad_attachment", "attachment is not a PNG, JPEG, GIF, WebP or BMP image")
        try:
            from PIL import Image
            import io

            with Image.open(io.BytesIO(blob)) as image:
                image.verify()  # catches truncated or corrupt files before a tool chokes on them
        except ImportError:
            pass
        except Exception as exc:
            raise ProtocolError("bad_attachment", f"attachment is a corrupt image ({type(exc).__name__})") from None
        folder = self.settings.outputs_dir / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"upload-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}{suffix}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        return str(path)

    # --- background progress -----------------------------------------------------------------
    def _on_bus_event(self, event: dict[str, Any]) -> None:
        """Called from training threads: hand the event to the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._broadcast, dict(event))
        except RuntimeError:  # the loop is shutting down
            pass

    def _broadcast(self, event: dict[str, Any]) -> None:
        event.setdefault("type", "progress")
        event.setdefault("thread_id", None)
        event["request_id"] = None  # background work belongs to no request
        run_id = event.get("run_id")
        if run_id:
            self._latest_progress[str(run_id)] = event
            while len(self._latest_progress) > 200:
                self._latest_progress.pop(next(iter(self._latest_progress)))
        for connection in list(self._connections):
            if connection.follow_progress:
                connection.send(event, droppable=True)


# --- helpers -------------------------------------------------------------------------------------

def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _new_request_id() -> str:
    return "r-" + uuid.uuid4().hex[:12]


def _optional_id(frame: dict, name: str) -> str | None:
    value = frame.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        raise ProtocolError("bad_field", f"\"{name}\" must be 1-64 characters of letters, digits and _.:-")
    return value


def _ids_of(raw: Any) -> tuple[str | None, str | None]:
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
        ids.append(value if isinstance(value, str) and _ID_PATTERN.match(value) else None)
    return ids[0], ids[1]


def _error(code: str, message: str, thread_id: str | None = None, request_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "thread_id": thread_id, "request_id": request_id}


def _image_suffix(blob: bytes) -> str | None:
    for magic, suffix in _IMAGE_MAGIC:
        if blob.startswith(magic):
            return suffix
    if len(blob) > 12 and blob[:4] == b"RIFF" and blob[8:12] == b"WEBP":
        return ".webp"
    return None


# --- running it ----------------------------------------------------------------------------------

class BackgroundServer:
    """A :class:`TallerServer` on its own event loop in a daemon thread (tests, benchmarks, embedding).

    ``with BackgroundServer(agent=...) as server: server.url, server.token, server.page_url``.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("port", 0)
        self.server = TallerServer(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="taller-server", daemon=True)

    def start(self) -> "BackgroundServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the server's loop and return its result (for inspecting state)."""
        async def wrapper() -> Any:
            return function()
        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout=10)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)


def serve(host: str | None = None, port: int | None = None, token: str | None = None) -> None:
    """Run the server until Ctrl-C / SIGTERM (``taller serve``). Prints the URLs and the token file."""

    async def main() -> None:
        server = TallerServer(host=host, port=port, token=token)
        try:
            await server.start()
        except OSError as exc:  # port taken, address not on this machine, no permission
            raise SystemExit(f"taller serve: cannot listen on {server.host}:{server.requested_port}: "
                             f"{exc.strerror or exc} (try --port 0 for any free port)") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):  # not on this platform / thread
                pass
        print(f"Taller server listening on {server.url}")
        print(f"Open the chat page: {server.page_url}")
        if server.token_file is not None:
            print(f"Token file: {server.token_file} (clients read it; keep it private)")
        else:
            print("Token: from the command line or the server_token setting")
        if server.host not in LOOPBACK_HOSTS:
            print(f"warning: bound to {server.host}, reachable from other machines; the token is the only guard")
        print("Ctrl-C stops the server.", flush=True)
        await stop.wait()
        print("stopping…", flush=True)
        await server.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
