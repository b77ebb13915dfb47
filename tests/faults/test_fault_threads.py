"""Two processes on one chat thread: the second waits for the first (or, past the
``thread_wait_s`` setting, is refused naming the other process); never a lost turn."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from faults_helpers import wait_for
from taller.config import get_settings
from taller.locks import FileLock, holder_of

THREAD = "shared-thread"


def ask(tmp_path, name: str, answer: str, **env: str) -> subprocess.Popen:
    script = tmp_path / f"{name}.json"
    script.write_text(json.dumps([{"tool": "none"}, answer]))
    return subprocess.Popen(
        [sys.executable, "-m", "taller", "ask", "--backend", "fake", "--thread", THREAD, f"{name}: hello"],
        env={**os.environ, "TALLER_FAKE_SCRIPT": str(script), **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def history() -> list[tuple[str, str]]:
    from taller.agent.session import Agent

    agent = Agent()
    try:
        return [(m["role"], m["content"]) for m in agent.history(THREAD)]
    finally:
        agent.close()


def lock_path():
    from taller.agent.session import thread_lock_path

    return thread_lock_path(get_settings(), THREAD)


def test_a_second_process_on_a_busy_thread_waits_and_no_turn_is_lost(tmp_path):
    words = " ".join(f"w{i}" for i in range(40))
    # 40 tokens 0.05 s apart: the first answer takes 2 s, long enough to start the second meanwhile.
    first = ask(tmp_path, "first", f"first answer {words}", TALLER_FAKE_TOKEN_DELAY="0.05")
    wait_for(lambda: (holder_of(lock_path()) or {}).get("pid") == first.pid, "the first process to take the thread",
             first, timeout=60)
    second = ask(tmp_path, "second", "second answer", TALLER_THREAD_WAIT_S="120")
    out_first, err_first = first.communicate(timeout=120)
    out_second, err_second = second.communicate(timeout=120)
    assert first.returncode == 0, err_first[-2000:]
    assert second.returncode == 0, err_second[-2000:]
    assert f"thread {THREAD} is busy in another process (pid {first.pid}); waiting" in err_second
    assert history() == [("user", "first: hello"), ("assistant", f"first answer {words}"),
                         ("user", "second: hello"), ("assistant", "second answer")]


def test_past_the_wait_the_second_process_is_refused_clearly_and_adds_nothing(tmp_path):
    holder = FileLock(lock_path())  # this test process plays the TUI answering on the thread
    assert holder.acquire(note=f"thread {THREAD}")
    try:
        refused = ask(tmp_path, "late", "never said", TALLER_THREAD_WAIT_S="0.5")
        _, err = refused.communicate(timeout=120)
    finally:
        holder.release()
    assert refused.returncode == 1
    assert (f"thread {THREAD} is busy in another process (pid {os.getpid()}); nothing was added to it" in err), err
    assert "Traceback" not in err
    assert history() == []
