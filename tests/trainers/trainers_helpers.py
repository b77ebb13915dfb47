"""Helpers shared by the trainer tests: stop a run at a point that does not depend on timing.

Progress events are throttled (~4 a second), so only two kinds always arrive: the run's very
first step and every epoch's end. Cancelling at one of those is deterministic.
"""

from __future__ import annotations

import threading


def cancel_at_first_step():
    """A cancel event set by the first step's progress event: the run stops at step 2 of epoch 1."""
    event = threading.Event()

    def on_progress(progress: dict) -> None:
        if progress.get("step") is not None:
            event.set()

    return event, on_progress


def cancel_after_epoch(epoch: int):
    """A cancel event set when ``epoch`` ends: the run stops at the first step of the next one."""
    event = threading.Event()

    def on_progress(progress: dict) -> None:
        if progress.get("epoch") == epoch and progress.get("step") == progress.get("total"):
            event.set()

    return event, on_progress
