"""Background progress to every connection that follows it (all, by default).

Training runs report on ``taller.progress.bus`` from their own threads; :meth:`ProgressBroadcast.on_bus_event`
hands each event to the event loop, which sends it to the following connections as a droppable
``progress`` event of no request. The last event of each run is kept, so a client that reconnects
(and asks ``runs``) sees the runs that are still going.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from taller.progress import bus
from taller.server.connection import Connection

# Runs whose last progress event is remembered; the oldest are forgotten first.
KEEP_RUNS = 200


class ProgressBroadcast:
    """Subscribed to the bus between :meth:`start` and :meth:`stop`; ``connections`` is the server's live set."""

    def __init__(self, connections: set[Connection]) -> None:
        self.connections = connections
        self.latest: dict[str, dict] = {}        # run_id -> last progress event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._unsubscribe = bus.subscribe(self.on_bus_event)

    def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None

    def on_bus_event(self, event: dict[str, Any]) -> None:
        """Called from training threads: hand the event to the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self.broadcast, dict(event))
        except RuntimeError:  # the loop is shutting down
            pass

    def broadcast(self, event: dict[str, Any]) -> None:
        event.setdefault("type", "progress")
        event.setdefault("thread_id", None)
        event["request_id"] = None  # background work belongs to no request
        run_id = event.get("run_id")
        if run_id:
            self.latest[str(run_id)] = event
            while len(self.latest) > KEEP_RUNS:
                self.latest.pop(next(iter(self.latest)))
        for connection in list(self.connections):
            if connection.follow_progress:
                connection.send(event, droppable=True)
