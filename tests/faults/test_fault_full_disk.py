"""A full disk: one clear line, the run marked failed (when even that cannot be written, by its
lock file), never a run left ``running``, never a temporary file left behind.

The real thing on a small tmpfs when this machine lets the test mount one (root, and a kernel
that allows it); the same failures simulated in-process (a write raising ENOSPC) everywhere.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from dataclasses import dataclass

import pytest
import torch

from faults_helpers import orphans, status, the_run, train
from taller.trainers import engine


@dataclass
class ToyConfig:
    epochs: int = 2
    resume: bool = False


def toy_train(run: engine.Run) -> None:
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    batches = engine.DeviceBatches([x, 3 * x + 1], batch_size=8, device="cpu", shuffle=False)
    with run:
        model = torch.nn.Linear(1, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        run.track(model, optimizer)
        for epoch in range(run.restore(), 3):
            for _, (inputs, targets) in run.steps(batches):
                loss = torch.nn.functional.mse_loss(model(inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            run.end_epoch(epoch, 2, {"train_loss": loss.item()})
        run.finish({"loss": loss.item()})


@pytest.fixture
def every_step_saves(monkeypatch):
    monkeypatch.setenv("TALLER_CHECKPOINT_INTERVAL_S", "0")
    from taller.config import get_settings

    get_settings(reload=True)


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_saving_fails_the_run_with_a_clear_message(every_step_saves, monkeypatch):
    run = engine.Run.create("toy", ToyConfig())
    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(OSError) as caught:
        toy_train(run)
    message = f"no space left on device while saving the checkpoint to {run.dir / 'last.pt'}"
    assert str(caught.value) == message and caught.value.errno == errno.ENOSPC
    saved = json.loads((run.dir / "status.json").read_text())
    assert saved["state"] == "failed" and saved["error"] == message and "traceback" not in saved
    assert engine.list_runs("toy")[0]["state"] == "failed"
    assert not orphans(run.dir) and not (run.dir / "last.pt").exists()
    monkeypatch.undo()
    # The model is free again: the lock went with the failed run.
    engine.Run.create("toy", ToyConfig()).close()


def test_when_not_even_the_status_can_be_written_the_lock_file_says_failed(every_step_saves, monkeypatch):
    from taller.trainers import records

    run = engine.Run.create("toy", ToyConfig())
    monkeypatch.setattr(torch, "save", no_space)
    monkeypatch.setattr(records, "write_json_atomic", no_space)
    monkeypatch.setattr(records.RunRecord, "_write_status_in_place", no_space)
    with pytest.raises(OSError, match="no space left on device while saving the checkpoint"):
        toy_train(run)
    assert json.loads((run.dir / "status.json").read_text())["state"] == "running"  # could not be changed
    listed = engine.list_runs("toy")[0]
    assert listed["state"] == "failed"  # never "running" forever
    assert listed["error"].startswith("no space left on device while saving the checkpoint to")


def test_a_running_status_whose_lock_is_free_is_listed_interrupted():
    run = engine.Run.create("toy", ToyConfig())
    assert engine.list_runs("toy")[0]["state"] == "running"
    run.release_locks()  # what the kernel does when the process dies
    assert engine.list_runs("toy")[0]["state"] == "interrupted"


def test_a_cut_metrics_line_is_removed_and_a_resume_cuts_metrics_back(every_step_saves, monkeypatch):
    run = engine.Run.create("toy", ToyConfig())
    model = torch.nn.Linear(1, 1)
    run.track(model, torch.optim.SGD(model.parameters(), lr=0.1))
    run.end_epoch(1, 3, {"train_loss": 1.0})  # checkpoint at the end of epoch 1
    monkeypatch.setenv("TALLER_CHECKPOINT_INTERVAL_S", "1000")
    from taller.config import get_settings

    get_settings(reload=True)
    run._checkpoint_interval = 1000.0
    run.end_epoch(2, 3, {"train_loss": 0.5})  # logged, not saved: metrics.jsonl is ahead
    with (run.dir / "metrics.jsonl").open("a") as out:
        out.write('{"epoch": 3, "train_lo')  # a line that a full disk cut short
    run.release_locks()  # the process dies
    saved = json.loads((run.dir / "status.json").read_text())
    assert (saved["epoch"], saved["step"]) == (1, 0)  # status.json is not ahead of last.pt
    again = engine.Run.create("toy", ToyConfig(resume=True), resume=True)
    assert again.run_id == run.run_id
    assert [record["epoch"] for record in again.read_metrics()] == [1]
    assert again.status["metrics"]["train_loss"] == 1.0 and again.status["epoch"] == 1
    again.close()


def _mount_tmpfs(folder, size: str) -> str | None:
    """Mount a tmpfs of ``size`` on ``folder``; the reason when this machine does not allow it."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"mount -t tmpfs failed: {done.stderr.strip() or done.returncode}"
    return None


def test_a_real_full_disk_on_a_small_tmpfs(tmp_path, monkeypatch):
    home = tmp_path / "small"
    reason = _mount_tmpfs(home, "6m")  # the tiny autoencoder's last.pt is ~14 MB
    if reason:
        pytest.skip(f"no small file system to fill: {reason}")
    try:
        done = train(home, interval=0.3, step_pause=0.02)
        assert done.returncode == 1, done.stderr[-3000:]
        run_dir = the_run(home)
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert lines and lines[-1].startswith("error: no space left on device while saving the checkpoint to "
                                              f"{run_dir}/"), done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        saved = status(run_dir)
        assert saved["state"] == "failed" and saved["error"].startswith("no space left on device")
        assert not orphans(run_dir)
        monkeypatch.setenv("TALLER_HOME", str(home))
        from taller.config import get_settings

        get_settings(reload=True)
        assert engine.list_runs("autoencoder")[0]["state"] == "failed"
    finally:
        subprocess.run(["umount", str(home)], capture_output=True)
