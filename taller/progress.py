"""One stream for progress: tools and background runs report here; interfaces listen.

``emit(event)`` sends each event exactly once:

* to the sink bound for the current call with :func:`reporting_to`, when there is one. The
  agent binds its run's stream around every tool call, so whoever streams that run (the TUI,
  the server, ``taller ask``) sees the tool's progress in order with the run's other events;
* otherwise (training runs in background threads, which outlive the request) on the
  process-wide :data:`bus`, which the TUI and the server subscribe to.

The same binding carries the run's cancel flag, which long library work polls with
:func:`cancel_requested`. This module is in the base layer: it knows no agent framework; the
binding is a :mod:`contextvars` variable, so a thread started by the tool (a background
training run) starts unbound and reports on the bus.

Events are plain JSON-able dicts with a ``"type"``; progress events look like::

    {"type": "progress", "source": "train_model", "run_id": "autoencoder-20261122-...",
     "epoch": 2, "epochs": 10, "step": 40, "total": 235, "loss": 0.031,
     "metric": 0.012, "metric_name": "val_mse", "eta_s": 41.0, "message": "epoch 2/10"}
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from typing import Any, Callable, Iterator

from taller.errors import CancelledError

__all__ = ["CancelledError", "EventBus", "bus", "cancel_requested", "emit", "reporting_to"]

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


_sink: contextvars.ContextVar[Listener | None] = contextvars.ContextVar("taller_progress_sink", default=None)
_cancel: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("taller_cancel_event", default=None)


@contextlib.contextmanager
def reporting_to(sink: Listener | None, cancel_event: threading.Event | None = None) -> Iterator[None]:
    """Within the block, :func:`emit` sends to ``sink`` and :func:`cancel_requested` reads
    ``cancel_event`` (the agent wraps each tool call in this)."""
    sink_token = _sink.set(sink)
    cancel_token = _cancel.set(cancel_event)
    try:
        yield
    finally:
        _sink.reset(sink_token)
        _cancel.reset(cancel_token)


def cancel_requested(cancel_event: threading.Event | None = None) -> bool:
    """Whether ``cancel_event`` (default: the one bound by :func:`reporting_to`) is set."""
    event = cancel_event if cancel_event is not None else _cancel.get()
    return bool(event is not None and event.is_set())


def emit(event: dict[str, Any]) -> None:
    """Report an event to the bound sink (the current agent run), else to every bus listener."""
    event = dict(event)
    event.setdefault("type", "progress")
    sink = _sink.get()
    if sink is not None:
        try:
            sink(event)
            return
        except Exception:  # a closed stream: fall back to the bus rather than lose the event
            pass
    bus.publish(event)
