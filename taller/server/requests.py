"""Agent requests in flight: one per thread at a time, threads paused at an interrupt, and the pump.

Every agent request (a ``message``, or an ``approve``/``reject`` that resumes one) runs in its own
worker thread; many threads run at once, but a thread runs one request at a time: a second one on a
busy thread is refused with ``thread_busy``, never queued. :meth:`RequestTable.pump` forwards a
request's events to its connection, tagged with its ``thread_id`` and ``request_id``, and makes
sure exactly one terminal event (``final``, ``error`` or ``interrupt``) goes out last.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from taller.server.connection import Connection
from taller.server.protocol import TERMINAL, Limits, ProtocolError, error_frame

log = logging.getLogger(__name__)

# Builds a request's event stream from its cancel flag (``agent.arun``/``agent.aresume``).
StreamFactory = Callable[[threading.Event], AsyncIterator[dict[str, Any]]]


@dataclass
class Request:
    request_id: str
    thread_id: str
    connection: Connection
    cancel_event: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task | None = None


class RequestTable:
    """Which thread is busy with which request, and which request each paused thread waits in.

    ``file_url(path)`` gives the ``/files`` URL added to ``image`` events (None when not served).
    """

    def __init__(self, limits: Limits, file_url: Callable[[str], str | None]) -> None:
        self.limits = limits
        self.file_url = file_url
        self.busy: dict[str, Request] = {}       # thread_id -> running request
        self.paused: dict[str, str] = {}         # thread_id -> request_id waiting at an interrupt

    def check_capacity(self, connection: Connection, thread_id: str, request_id: str | None) -> None:
        """Raise when the thread is busy, the id is taken on this connection, or it runs too many."""
        if thread_id in self.busy:
            running = self.busy[thread_id].request_id
            raise ProtocolError("thread_busy", f"thread {thread_id} is already answering request {running}; "
                                               "wait for its final event or cancel it")
        if request_id is not None and request_id in connection.requests:
            raise ProtocolError("duplicate_request", f"request_id {request_id} is already in use on this connection")
        if len(connection.requests) >= self.limits.max_active_requests:
            raise ProtocolError("too_many_requests", f"at most {self.limits.max_active_requests} requests "
                                                     "may run at once per connection")

    def begin(self, connection: Connection, thread_id: str, request_id: str, make_stream: StreamFactory) -> Request:
        """Mark the thread busy and start pumping the stream ``make_stream`` builds."""
        request = Request(request_id=request_id, thread_id=thread_id, connection=connection)
        self.busy[thread_id] = request
        connection.requests[request_id] = request
        request.task = asyncio.create_task(self.pump(request, make_stream(request.cancel_event)))
        return request

    def running(self, connection: Connection, thread_id: str | None, request_id: str | None) -> Request | None:
        """The running request a ``cancel`` names: by id on this connection, by thread, or by id anywhere."""
        request = connection.requests.get(request_id) if request_id else None
        if request is None and thread_id:
            request = self.busy.get(thread_id)
        if request is None and request_id:
            request = next((r for r in self.busy.values() if r.request_id == request_id), None)
        return request

    def paused_thread(self, thread_id: str | None, request_id: str | None) -> str | None:
        """The paused thread a ``cancel`` names, by thread or by the paused request's id."""
        if thread_id in self.paused:
            return thread_id
        if request_id:
            return next((thread for thread, paused in self.paused.items() if paused == request_id), None)
        return None

    async def pump(self, request: Request, stream: AsyncIterator[dict[str, Any]]) -> None:
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
                if kind in TERMINAL:
                    terminal = terminal or event
                    continue
                connection.send(event)
        except Exception as exc:
            log.exception("request %s failed", request.request_id)
            terminal = terminal or error_frame("internal", f"{type(exc).__name__}: {exc}", request.thread_id,
                                               request.request_id)
        finally:
            # The thread is free before the client hears the terminal event, so its next frame
            # (a new message, an approve) never meets a stale "thread_busy".
            if self.busy.get(request.thread_id) is request:
                del self.busy[request.thread_id]
            connection.requests.pop(request.request_id, None)
        if terminal is None:
            terminal = error_frame("internal", "the request ended without a result", request.thread_id,
                                   request.request_id)
        if terminal.get("type") == "interrupt":
            self.paused[request.thread_id] = request.request_id
        connection.send(terminal)
