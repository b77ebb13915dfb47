"""Run a call in a thread with a time limit, so a regression that blocks fails instead of hanging.

Used where the failure being guarded against is a hang: a FIFO opened for reading, a 400 MB SQL
value copied around. The worker is a daemon thread, so a stuck call cannot keep the suite alive.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable


def within(function: Callable[..., Any], *args: Any, limit_s: float = 60.0, **kwargs: Any) -> tuple[Any, float]:
    """(what ``function(*args, **kwargs)`` returned, seconds it took); its exception is raised
    here, and the test fails when it has not returned after ``limit_s`` seconds."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(limit_s)
    assert not worker.is_alive(), f"{getattr(function, '__name__', function)} did not return within {limit_s} s"
    if "error" in box:
        raise box["error"]
    return box["value"], time.monotonic() - started
