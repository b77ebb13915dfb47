"""Helpers shared by the trainer tests: stop a run part-way, read a run's files."""

from __future__ import annotations

import threading


def cancel_at(epoch: int, step: int = 1):
    """A cancel event plus an on_progress callback that sets it once (epoch, step) is reached."""
    event = threading.Event()

    def on_progress(progress: dict) -> None:
        if (progress.get("epoch") or 0, progress.get("step") or 0) >= (epoch, step):
            event.set()

    return event, on_progress
