"""One stream for progress: tools and background runs report here; interfaces listen.

``emit(event)`` sends each event exactly once:

* inside a LangGraph run (a tool called by the agent), to LangGraph's custom stream
  (``stream_mode="custom"``), so the caller of that run sees it in order with the run's other
  events (``Agent.run`` yields it);
* outside one (training runs in background threads, which outlive the request), on the
  process-wide :data:`bus`, which the TUI and the server subscribe to.

Events are plain JSON-able dicts with a ``"type"``; progress events look like::

    {"type": "progress", "source": "train_model", "run_id": "autoencoder-20261122-...",
     "epoch": 2, "epochs": 10, "step": 40, "total": 235, "loss": 0.031,
     "metric": 0.012, "metric_name": "val_mse", "eta_s": 41.0, "message": "epoch 2/10"}
"""

from __future__ import annotations

import threading
from typing import Any, Callable

Listener = Callable[[dict[str, Any]], None]


class EventBus:
    """Thread-safe publish/subscribe; a failing listener never breaks the publisher."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken UI must not stop a training run
                pass


bus = EventBus()


def _stream_writer() -> Callable[[Any], None] | None:
    """LangGraph's custom-stream writer when called from inside a graph run, else None."""
    try:
        from langgraph.config import get_stream_writer

        return get_stream_writer()
    except Exception:  # outside a runnable context LangGraph raises; that is the normal case
        return None


def emit(event: dict[str, Any]) -> None:
    """Report an event to the current agent run (if any) and to every bus listener."""
    event = dict(event)
    event.setdefault("type", "progress")
    writer = _stream_writer()
    if writer is not None:
        try:
            writer(event)
            return
        except Exception:
            pass
    bus.publish(event)


class CancelledError(Exception):
    """Raised by long work when its cancel flag was set; the work left a valid state."""
