"""Run tracking (taller/ui/runs.py): progress events folded into one state per run, no Textual."""

from __future__ import annotations

import math

import pytest

from taller.ui.runs import (
    SPARKLINE_POINTS,
    RunState,
    RunTracker,
    ended_states,
    progress_fraction,
    request_cancel,
)


def event(**fields):
    return {"type": "progress", "source": "train_model", "run_id": "vae-20261122", "model": "vae", **fields}


def test_progress_fraction_counts_steps_within_epochs():
    assert progress_fraction({"epoch": 2, "epochs": 4, "step": 5, "total": 10}) == pytest.approx(0.375)
    assert progress_fraction({"epoch": 3, "epochs": 4}) == pytest.approx(0.75)  # no step: whole epochs
    assert progress_fraction({"epoch": 9, "epochs": 4}) == 1.0  # clamped
    assert progress_fraction({"epoch": 1}) is None and progress_fraction({"epoch": 1, "epochs": 0}) is None


def test_events_merge_into_one_state_per_run():
    tracker = RunTracker()
    assert tracker.update({"type": "progress", "message": "indexing"}) is None  # no run id: not a run
    run, created = tracker.update(event(epoch=1, epochs=4, step=10, total=10, loss=0.9, metric=0.5,
                                        metric_name="val_loss", eta_s=90.0))
    assert created and run.state == "running"
    same, created = tracker.update(event(epoch=2, loss=0.6, metric=0.25, eta_s=60.0, metric_name=None))
    assert same is run and not created and len(tracker) == 1
    # Fields an event leaves out (or sends as None) keep their last value.
    assert run.last_event["epochs"] == 4 and run.last_event["metric_name"] == "val_loss"
    assert run.losses == [0.9, 0.6]
    assert run.details() == ["epoch 2/4", "loss 0.6000", "val_loss 0.2500", "ETA 1:00"]
    assert run.fraction() == pytest.approx(0.5)


def test_losses_are_finite_and_capped_for_the_sparkline():
    run = RunState("rnn-1")
    assert run.model == "rnn"  # named after its run id until an event says otherwise
    for step in range(SPARKLINE_POINTS + 5):
        run.update({"loss": float(step)})
    run.update({"loss": math.nan})
    run.update({"loss": math.inf})
    assert len(run.losses) == SPARKLINE_POINTS and run.losses[0] == 5.0 and run.losses[-1] == SPARKLINE_POINTS + 4


def test_how_a_run_ended_changes_what_it_says():
    tracker = RunTracker()
    run, _ = tracker.update(event(epoch=1, epochs=3, eta_s=30.0))
    tracker.update(event(state="cancelled", message="cancelled; last checkpoint kept"))
    assert run.state == "cancelled" and not run.active
    assert run.details() == ["epoch 1/3"]  # no ETA for a run that stopped
    assert tracker.set_state("vae-20261122", "cancelled") is False  # nothing changed
    assert tracker.set_state("nope-1", "finished") is False  # not tracked
    other, _ = tracker.update({"run_id": "rnn-2", "epoch": 1, "epochs": 5})
    assert tracker.set_state("rnn-2", "finished") is True
    assert other.fraction() == 1.0  # a finished run is complete whatever its last event said
    assert tracker.set_state("rnn-2", "cancelling") and other.active


def test_prune_forgets_the_oldest_runs_that_no_longer_run():
    tracker = RunTracker()
    for run_id in ["a-1", "b-1", "c-1", "d-1", "e-1"]:
        tracker.update({"run_id": run_id})
    tracker.set_state("a-1", "finished")
    tracker.set_state("c-1", "cancelling")
    tracker.set_state("d-1", "failed")
    assert tracker.prune(3) == ["a-1", "c-1"]
    assert [run.run_id for run in tracker] == ["b-1", "d-1", "e-1"]
    assert tracker.prune(1) == ["d-1"]  # running ones stay, even beyond the limit
    assert tracker.running_ids() == ["b-1", "e-1"]


def test_ended_states_read_the_runs_registry(monkeypatch):
    from taller.errors import ToolError
    from taller.trainers import runs

    registry = {"vae-1": "running", "rnn-1": "finished", "seq2seq-1": "failed", "pix2pix-1": "cancelling"}

    def get(run_id):
        if run_id not in registry:
            raise ToolError(f"no training run called {run_id!r}")
        return {"run_id": run_id, "state": registry[run_id]}

    monkeypatch.setattr(runs, "get", get)
    assert ended_states(["vae-1", "rnn-1", "seq2seq-1", "pix2pix-1", "gone-1"]) == {
        "rnn-1": "finished", "seq2seq-1": "failed"}


def test_request_cancel_says_what_happened(monkeypatch):
    from taller.trainers import runs

    answers = {"vae-1": True, "rnn-1": False}

    def cancel(run_id):
        if run_id not in answers:
            raise OSError("status file unreadable")
        return answers[run_id]

    monkeypatch.setattr(runs, "cancel", cancel)
    stopped, idle, broken = request_cancel("vae-1"), request_cancel("rnn-1"), request_cancel("x-1")
    assert stopped.stopped and stopped.message == "Cancelling vae-1; its last checkpoint is kept."
    assert not idle.stopped and idle.severity == "warning" and idle.message == "rnn-1 is not running."
    assert not broken.stopped and broken.severity == "error" and "status file unreadable" in broken.message


def test_run_tracking_needs_no_interface_framework():
    """A server can reuse it: the module imports neither Textual nor Rich."""
    import ast
    from pathlib import Path

    import taller.ui.formatting
    import taller.ui.runs

    for module in (taller.ui.runs, taller.ui.formatting):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name for name in imported if name.split(".")[0] in ("textual", "rich")}, module.__name__
