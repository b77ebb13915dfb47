"""Helpers of the fault suite: a tiny real training in a subprocess, and waiting on its files.

The training is the real autoencoder on the real MNIST files, made tiny (600 images, batches of
16: 34 steps an epoch, 3 epochs) and slowed to a known pace by the engine's test hook
``TALLER_TEST_STEP_PAUSE_S``, so a test can kill it at a chosen moment on any machine. Every
wait polls the run's files with a deadline and fails with the process's stderr when it ends
early, never a fixed sleep that a slow machine would outrun.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import real_data

MODEL = "autoencoder"
EPOCHS = 3
STEPS_PER_EPOCH = 34  # 600 images, 10 % held out for validation: 540 in batches of 16
TRAIN_ARGS = ["--train-limit", "600", "--batch-size", "16", "--epochs", str(EPOCHS), "--patience", "0",
              "--device", "cpu"]


def training_env(home: Path, interval: float | None = None, step_pause: float | None = None,
                 save_pause: float | None = None) -> dict[str, str]:
    env = {**os.environ, "TALLER_HOME": str(home), "TALLER_DATA_DIR": str(real_data.require(("mnist",))),
           "OMP_NUM_THREADS": "1", "TALLER_OFFLINE": "1"}
    for name in ("TALLER_CHECKPOINT_INTERVAL_S", "TALLER_TEST_STEP_PAUSE_S", "TALLER_TEST_SAVE_PAUSE_S"):
        env.pop(name, None)
    if interval is not None:
        env["TALLER_CHECKPOINT_INTERVAL_S"] = str(interval)
    if step_pause is not None:
        env["TALLER_TEST_STEP_PAUSE_S"] = str(step_pause)
    if save_pause is not None:
        env["TALLER_TEST_SAVE_PAUSE_S"] = str(save_pause)
    return env


def start_training(home: Path, *extra: str, **env_options: Any) -> subprocess.Popen:
    """``python -m taller.trainers.autoencoder`` (tiny, see the module doc) in the background."""
    return subprocess.Popen([sys.executable, "-m", f"taller.trainers.{MODEL}", *TRAIN_ARGS, *extra],
                            env=training_env(home, **env_options), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def train(home: Path, *extra: str, timeout: float = 180, **env_options: Any) -> subprocess.CompletedProcess:
    """The same training, waited for."""
    return subprocess.run([sys.executable, "-m", f"taller.trainers.{MODEL}", *TRAIN_ARGS, *extra],
                          env=training_env(home, **env_options), capture_output=True, text=True, timeout=timeout)


def wait_for(condition: Callable[[], Any], what: str, process: subprocess.Popen | None = None,
             timeout: float = 120.0) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what`` (and the process's
    output when it ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            value = condition()
            if value:
                return value
            out, err = process.communicate()
            raise AssertionError(f"the training ended (code {process.returncode}) before {what}:\n{err[-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def kill(process: subprocess.Popen) -> float:
    """SIGKILL now; returns the time of the kill (``time.time()``)."""
    killed_at = time.time()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.communicate()
    return killed_at


def run_dirs(home: Path) -> list[Path]:
    root = home / "runs" / MODEL
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def the_run(home: Path) -> Path | None:
    dirs = run_dirs(home)
    return dirs[0] if len(dirs) == 1 else None


def status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def checkpoint_position(run_dir: Path) -> tuple[int, int]:
    """(epochs completed, steps of the next epoch) saved in ``last.pt``."""
    from taller.trainers.engine import load_checkpoint

    checkpoint = load_checkpoint(run_dir / "last.pt")
    return int(checkpoint["epoch"]), int(checkpoint["extra"].get("step", 0))


def logged_epochs(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()]


def orphans(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob(".*.tmp"))
