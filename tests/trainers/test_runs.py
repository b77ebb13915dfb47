"""The background runs registry, exercised with a tiny real trainer that follows the contract."""

from __future__ import annotations

import textwrap

import pytest

from taller.tools.base import ToolError
from taller.trainers import TRAINERS, runs

TOY = textwrap.dedent(
    '''
    """A tiny trainer that follows the engine contract (linear regression, a few hundred steps)."""
    from dataclasses import dataclass

    import torch

    from taller.trainers.engine import Run

    @dataclass
    class Config:
        epochs: int = 2
        steps: int = 50
        seed: int = 0
        resume: bool = False
        gate: str = ""  # name of a threading.Event in GATES that each step waits on (tests)

    GATES = {}

    def train(config, run=None, cancel_event=None, on_progress=None):
        run = run or Run.create("toy_model", config, cancel_event=cancel_event, on_progress=on_progress)
        with run:
            torch.manual_seed(config.seed)
            model = torch.nn.Linear(1, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            x = torch.linspace(-1, 1, 32).unsqueeze(1)
            y = 3 * x + 1
            run.track(model, optimizer)
            for epoch in range(run.restore(), config.epochs + 1):
                for step, _ in run.steps(range(config.steps)):
                    if config.gate:
                        GATES[config.gate].wait(5)
                    loss = torch.nn.functional.mse_loss(model(x), y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    run.progress(epoch, config.epochs, step, config.steps, loss.detach())
                run.end_epoch(epoch, config.epochs, {"loss": loss.item()}, loss="loss")
            return run.finish({"loss": loss.item()})
    '''
)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_trainer_mod.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(TRAINERS, "toy_model", "toy_trainer_mod")
    import importlib

    module = importlib.import_module("toy_trainer_mod")
    return module


def test_start_returns_at_once_and_finishes(toy):
    run_id = runs.start("toy_model", epochs=2)
    assert run_id.startswith("toy_model-")
    result = runs.wait(run_id, timeout=60)
    assert result["state"] == "finished"
    assert result["metrics"]["loss"] < 0.1  # the line was actually fitted
    listed = runs.list_all()
    assert listed[0]["run_id"] == run_id and "last.pt" in listed[0]["checkpoints"]
    assert runs.get(run_id)["epoch"] == 2


def test_second_start_of_a_training_model_is_refused_and_cancel_works(toy):
    import threading

    gate = threading.Event()
    toy.GATES["hold"] = gate
    run_id = runs.start("toy_model", epochs=50, gate="hold")
    try:
        with pytest.raises(ToolError, match="already training"):
            runs.start("toy_model", epochs=1)
        assert runs.get(run_id)["state"] == "running"
        assert runs.cancel(run_id)
    finally:
        gate.set()
    result = runs.wait(run_id, timeout=60)
    assert result["state"] == "cancelled"
    assert "last.pt" in runs.list_all("toy_model")[0]["checkpoints"]
    assert not runs.cancel(run_id)  # nothing left to cancel


def test_bad_requests_give_clear_errors(toy):
    with pytest.raises(ToolError, match="unknown model"):
        runs.start("resnet9000")
    for bad in (0, -3):
        with pytest.raises(ToolError, match="at least 1"):
            runs.start("toy_model", epochs=bad)
    with pytest.raises(ToolError, match="no setting"):
        runs.start("toy_model", epochs=1, warp_speed=9)
    with pytest.raises(ToolError, match="no training run"):
        runs.get("nope-123")
