"""One websocket client: its bounded send queue and writer task, and the loop that reads its frames.

Each connection has its own queue and writer task, so a slow reader only delays itself: background
progress is skipped for it once its queue is half full, and a client that stops reading altogether
is closed (1008) when the queue is full, which keeps the server's memory bounded. :func:`serve_connection`
reads frames, rate-limits them, parses them and hands them to the server's dispatch; a bad frame
becomes an ``error`` frame and never ends the connection. When the client goes, its requests are
cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from taller.server.auth import TokenBucket
from taller.server.protocol import (Limits, ProtocolError, error_frame, frame_text, hello_frame, ids_of,
                                    parse_frame, rate_limited, require_text)

if TYPE_CHECKING:
    from taller.server.requests import Request

log = logging.getLogger(__name__)


class Connection:
    """One websocket client: a bounded send queue drained by its own writer task."""

    def __init__(self, websocket: ServerConnection, limits: Limits) -> None:
        self.websocket = websocket
        self.id = uuid.uuid4().hex[:8]
        self.limits = limits
        self.queue: asyncio.Queue = asyncio.Queue()
        self.requests: dict[str, Request] = {}
        self.bucket = TokenBucket(limits.rate_per_s, limits.rate_burst)
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
                await self.websocket.send(frame_text(event, self.limits.max_send_bytes))
        except ConnectionClosed:
            pass
        finally:
            self.closed = True

    def cancel_requests(self) -> None:
        """Ask every running request of this client to stop (each ends with ``final`` cancelled)."""
        for request in list(self.requests.values()):
            request.cancel_event.set()


Dispatch = Callable[[Connection, dict[str, Any]], Awaitable[None]]


async def serve_connection(websocket: ServerConnection, limits: Limits, connections: set[Connection],
                           dispatch: Dispatch) -> None:
    """Greet the client, then read its frames until it goes; ``connections`` holds it meanwhile."""
    connection = Connection(websocket, limits)
    connections.add(connection)
    writer = asyncio.create_task(connection.writer())
    connection.send(hello_frame(connection.id, limits))
    try:
        async for raw in websocket:
            try:
                text = require_text(raw)
                if not connection.bucket.take():
                    raise rate_limited(limits)
                await dispatch(connection, parse_frame(text))
            except ProtocolError as exc:
                connection.send(error_frame(exc.code, exc.message, *ids_of(raw)))
            except Exception as exc:  # never let one bad frame end the connection
                log.exception("frame handling failed")
                connection.send(error_frame("internal", f"{type(exc).__name__}: {exc}", *ids_of(raw)))
    except ConnectionClosed:
        pass  # abrupt disconnects and oversized frames (close 1009) end up here
    finally:
        connections.discard(connection)
        connection.closed = True
        # The client is gone: stop its answer streams. Background training runs are not
        # requests; they keep going and report on the bus for whoever connects next.
        connection.cancel_requests()
        connection.queue.put_nowait(None)
        writer.cancel()
