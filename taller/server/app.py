"""The :class:`TallerServer`: one port for the websocket protocol and the page, wired from the parts.

The parts, one concern each: :mod:`~taller.server.auth` (token, Origin, rate limit),
:mod:`~taller.server.http` (page, ``/files``), :mod:`~taller.server.protocol` (frames, limits,
errors), :mod:`~taller.server.handlers` (what each message type does),
:mod:`~taller.server.connection` (one client's loop and send queue), :mod:`~taller.server.requests`
(agent requests in flight) and :mod:`~taller.server.broadcast` (background progress). This class
owns their shared state and the websockets server, and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve as ws_serve
from websockets.http11 import Request, Response

from taller.config import Settings, get_settings
from taller.server.auth import load_or_create_token, refuse_handshake, token_ok
from taller.server.broadcast import ProgressBroadcast
from taller.server.connection import Connection, serve_connection
from taller.server.handlers import HANDLERS
from taller.server.http import HttpRoutes
from taller.server.protocol import SUBPROTOCOL, Limits, handler_for
from taller.server.requests import RequestTable

log = logging.getLogger(__name__)


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
        self.connections: set[Connection] = set()
        self.http = HttpRoutes(self.settings, self.limits, lambda request, query: token_ok(request, query, self.token))
        self.requests = RequestTable(self.limits, self.http.file_url)
        self.progress = ProgressBroadcast(self.connections)

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def agent(self) -> Any:
        with self._agent_lock:
            if self._agent is None:
                from taller.agent.session import Agent

                self._agent = Agent(settings=self.settings)
            return self._agent

    async def start(self) -> None:
        self.settings.ensure_dirs()
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
        self.progress.start(asyncio.get_running_loop())

    async def stop(self) -> None:
        self.progress.stop()
        for connection in list(self.connections):
            connection.cancel_requests()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        assert self._server is not None, "call start() first"
        await self._server.serve_forever()

    @property
    def url(self) -> str:
        """The websocket URL clients connect to."""
        return f"ws://{url_host(self.host)}:{self.port}/"

    @property
    def page_url(self) -> str:
        """The browser page, with the token in the fragment (never sent to any server)."""
        return f"http://{url_host(self.host)}:{self.port}/#token={self.token}"

    def stats(self) -> dict[str, int]:
        return {"connections": len(self.connections), "busy_threads": len(self.requests.busy),
                "paused_threads": len(self.requests.paused)}

    def allowed_file(self, raw: str) -> Path:
        """Resolve ``raw`` to an image file under ``outputs_dir`` or ``runs_dir``, or raise."""
        return self.http.allowed_file(raw)

    def file_url(self, path: str) -> str | None:
        """The relative ``/files`` URL of an image, or None when it would not be served."""
        return self.http.file_url(path)

    # --- wiring ------------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP (page, files) and check token and Origin before any websocket handshake."""
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        upgrade = ",".join(request.headers.get_all("Upgrade")).lower()
        if "websocket" in upgrade:
            return refuse_handshake(parts.path, request, query, self.token, self.host, self.port)
        return self.http.route(parts.path, request, query)

    async def _handler(self, websocket: ServerConnection) -> None:
        await serve_connection(websocket, self.limits, self.connections, self._dispatch)

    async def _dispatch(self, connection: Connection, frame: dict[str, Any]) -> None:
        await handler_for(HANDLERS, frame)(self, connection, frame)


def url_host(host: str) -> str:
    """The host to put in a URL: loopback for a wildcard bind, brackets around IPv6."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
