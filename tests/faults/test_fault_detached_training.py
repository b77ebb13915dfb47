"""``taller tool train_model`` from a shell: the run outlives the command.

The command starts the training in a detached process of its own (a new session, its output in
the run folder's ``train.log``) and returns once that process holds the run; the run keeps
training after the command exits, a second request for the same model is refused while it
does, and ``cancel`` from any other process stops it with a checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from faults_helpers import status, training_env, wait_for
from taller.trainers import runs
from taller.trainers.engine import list_runs


def tool_train(home) -> subprocess.CompletedProcess:
    # Full MNIST, one epoch of 211 steps slowed to >= 0.2 s each: it trains for over 40 s unless cancelled.
    env = training_env(home, interval=0.5, step_pause=0.2)
    return subprocess.run([sys.executable, "-m", "taller", "tool", "train_model", "--args",
                           json.dumps({"model": "autoencoder", "epochs": 1})],
                          env=env, capture_output=True, text=True, timeout=240)


def test_a_cli_started_training_outlives_the_command_and_can_be_cancelled(taller_home):
    started = tool_train(taller_home)
    assert started.returncode == 0, started.stderr[-3000:]
    result = json.loads(started.stdout)
    pid, run_id = result["pid"], result["run_id"]
    try:
        assert result["status"] == "started" and isinstance(pid, int) and pid != os.getpid()
        assert "keeps training after this command ends" in result["summary"]
        run_dir = taller_home / "runs" / "autoencoder" / run_id
        assert result["log"] == str(run_dir / "train.log")
        assert os.getsid(pid) != os.getsid(0)  # its own session: a closed terminal does not stop it
        # The command has exited; the run goes on: a checkpoint appears and the listing says running.
        wait_for(lambda: (run_dir / "last.pt").is_file(), "a checkpoint after the command exited", timeout=120)
        assert {row["run_id"]: row for row in list_runs("autoencoder")}[run_id]["state"] == "running"

        second = tool_train(taller_home)
        assert second.returncode == 1
        error = json.loads(second.stdout)["error"]
        assert f"autoencoder is already training in another process (pid {pid}, run {run_id})" in error

        assert runs.cancel(run_id)  # SIGTERM to the detached process: it stops with a checkpoint
        wait_for(lambda: status(run_dir).get("state") == "cancelled", "the run to stop", timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}") and _alive(pid):
            time.sleep(0.05)
        assert not _alive(pid)
        assert (run_dir / "last.pt").is_file() and status(run_dir)["checkpoint"]["step"] > 0
        assert "cancelled" in (run_dir / "train.log").read_text()
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False
