"""A training process killed with SIGKILL at several moments, then resumed.

What the engine promises (docs/trainers.md, "What survives a crash"): ``last.pt`` is written at
least every ``checkpoint_interval_s`` seconds, inside epochs too, atomically, so a kill loses at
most about that much training; ``status.json`` never says more than ``last.pt`` holds;
``--resume`` continues the newest interrupted run from the step reached, says so, cuts
``metrics.jsonl`` back to the checkpoint and cleans the temporary files a killed save left; with
nothing to resume it says so instead of starting from zero.
"""

from __future__ import annotations

import time

from faults_helpers import (
    EPOCHS,
    STEPS_PER_EPOCH,
    checkpoint_position,
    kill,
    logged_epochs,
    orphans,
    start_training,
    status,
    the_run,
    train,
    wait_for,
)

INTERVAL = 0.3  # seconds between checkpoints in these tests (30 s by default)
STEP_PAUSE = 0.03  # a step of the tiny training takes at least this long: ~1 s an epoch
# A kill may come just before a save was due, and a step or a save in flight on a loaded CI box
# takes a while: the work lost is bounded by the interval plus this.
SLACK_S = 8.0


def saved_at(run_dir) -> tuple[int | None, int]:
    """(epoch, step) of the checkpoint status.json reports, (None, 0) before the first."""
    checkpoint = status(run_dir).get("checkpoint") or {}
    return checkpoint.get("epoch"), checkpoint.get("step") or 0


def assert_consistent_after_kill(run_dir, killed_at):
    """After a kill: the listing says interrupted, status.json is not ahead of last.pt, and at
    most the interval (plus slack) of training is lost."""
    from taller.trainers.engine import list_runs

    listed = {row["run_id"]: row for row in list_runs("autoencoder")}[run_dir.name]
    assert listed["state"] == "interrupted"
    epoch, step = checkpoint_position(run_dir)
    saved = status(run_dir)
    assert (saved["epoch"], saved["step"]) == (epoch, step)  # never ahead of the checkpoint
    assert saved["checkpoint"]["epoch"] == epoch and saved["checkpoint"]["step"] == step
    # metrics.jsonl may hold the epochs trained since the checkpoint (resume cuts them), no more.
    assert logged_epochs(run_dir) == list(range(1, len(logged_epochs(run_dir)) + 1))
    assert len(logged_epochs(run_dir)) <= epoch + 1
    lost = killed_at - (run_dir / "last.pt").stat().st_mtime
    assert lost <= INTERVAL + SLACK_S, f"{lost:.1f} s of training lost"
    return epoch, step


def assert_resumed_to_the_end(taller_home, run_dir, epoch, step):
    done = train(taller_home, "--resume", interval=INTERVAL)
    assert done.returncode == 0, done.stderr[-3000:]
    where = f"from epoch {epoch + 1}, step {step}" if step else f"from the end of epoch {epoch}"
    assert f"resumed run {run_dir.name} {where}" in done.stderr
    final = status(run_dir)
    assert final["state"] == "finished" and final["resumed_from"] == {"epoch": epoch, "step": step}
    assert final["epoch"] == EPOCHS and checkpoint_position(run_dir) == (EPOCHS, 0)
    assert logged_epochs(run_dir) == list(range(1, EPOCHS + 1))  # each epoch once, across both processes
    assert not orphans(run_dir)


def test_kill_before_the_first_checkpoint_then_resume_says_there_is_nothing(taller_home):
    # The default interval (30 s): the kill comes before any last.pt exists.
    process = start_training(taller_home, step_pause=STEP_PAUSE)
    run_dir = wait_for(lambda: the_run(taller_home), "the run folder", process)
    wait_for(lambda: status(run_dir).get("device"), "training to start", process)
    time.sleep(0.5)
    kill(process)
    assert not (run_dir / "last.pt").exists()
    from taller.trainers.engine import list_runs

    assert list_runs("autoencoder")[0]["state"] == "interrupted"
    refused = train(taller_home, "--resume")
    assert refused.returncode == 2
    assert (f"nothing to resume: run {run_dir.name} stopped before its first checkpoint" in refused.stderr
            and "without resume" in refused.stderr)
    assert "Traceback" not in refused.stderr and [p for p in (taller_home / "runs" / "autoencoder").iterdir()
                                                 if p.is_dir()] == [run_dir]  # no new run started


def test_kill_mid_epoch_loses_at_most_the_interval(taller_home):
    process = start_training(taller_home, interval=INTERVAL, step_pause=STEP_PAUSE)
    run_dir = wait_for(lambda: the_run(taller_home), "the run folder", process)
    # A checkpoint inside epoch 2 (its step > 0): written by the time-based cadence, not an epoch end.
    wait_for(lambda: saved_at(run_dir)[0] == 1 and saved_at(run_dir)[1] > 0, "a checkpoint inside epoch 2", process)
    killed_at = kill(process)
    epoch, step = assert_consistent_after_kill(run_dir, killed_at)
    assert epoch >= 1 and 0 <= step < STEPS_PER_EPOCH
    assert_resumed_to_the_end(taller_home, run_dir, epoch, step)


def test_kill_during_a_save_keeps_the_previous_checkpoint_and_cleans_the_orphan(taller_home):
    # Every save sleeps 1 s between writing its temporary file and renaming it (the test hook).
    process = start_training(taller_home, interval=INTERVAL, step_pause=STEP_PAUSE, save_pause=1.0)
    run_dir = wait_for(lambda: the_run(taller_home), "the run folder", process)
    wait_for(lambda: (run_dir / "last.pt").is_file(), "the first checkpoint", process)
    first = checkpoint_position(run_dir)
    wait_for(lambda: [p for p in orphans(run_dir) if p.name.startswith(".last.pt.") and p.stat().st_size > 0],
             "the next save's temporary file", process)
    killed_at = kill(process)
    assert [p.name for p in orphans(run_dir)]  # the kill did land inside a save
    epoch, step = assert_consistent_after_kill(run_dir, killed_at)
    assert (epoch, step) >= first  # the checkpoint before the interrupted save, whole
    assert_resumed_to_the_end(taller_home, run_dir, epoch, step)  # ...and the orphan is gone


def test_kill_after_an_epoch(taller_home):
    process = start_training(taller_home, interval=INTERVAL, step_pause=STEP_PAUSE)
    run_dir = wait_for(lambda: the_run(taller_home), "the run folder", process)
    wait_for(lambda: logged_epochs(run_dir)[:1] == [1], "the end of epoch 1", process)
    killed_at = kill(process)
    # The end of an epoch is saved when the interval has passed, so the checkpoint is that end or
    # a step of epoch 1 or 2 at most the interval earlier; metrics.jsonl may be ahead of it.
    epoch, step = assert_consistent_after_kill(run_dir, killed_at)
    assert epoch in (0, 1, 2)
    assert_resumed_to_the_end(taller_home, run_dir, epoch, step)
