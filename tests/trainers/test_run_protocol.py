"""The run's checkpoint / resume / cancel protocol on a small deterministic model.

A run cancelled mid-epoch or between epochs and then resumed must end with exactly the weights
of a run that was never interrupted: that needs the model, the optimizer's momentum, the
per-step learning-rate schedule, the early stopper, the step reached and the random generators
(the shuffled batch order, dropout) all saved and restored.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from dataclasses import dataclass

import pytest
import torch

from taller.progress import CancelledError
from taller.trainers import engine

EPOCHS = 3


@dataclass
class ToyConfig:
    epochs: int = EPOCHS
    resume: bool = False


def toy_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=generator)
    return x, x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3


def toy_train(run: engine.Run, stop_at: tuple[int, int] | None = None, sampler: str = "seeded") -> torch.nn.Module:
    """Train a linear model with dropout on shuffled batches; ``stop_at=(epoch, step)`` sets the
    cancel flag after that step. ``sampler``: the batch order comes from the batches' own seeded
    generator ("seeded") or from torch's global one ("global")."""
    x, y = toy_data()
    # Shuffled: a resumed run must meet the batches in the same order as an uninterrupted one.
    batches = engine.DeviceBatches([x, y], batch_size=8, device="cpu", shuffle=True,
                                   generator_seed=7 if sampler == "seeded" else None)
    with run:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(3, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=EPOCHS * len(batches))
        stopper = engine.EarlyStopping(patience=0, mode="min")
        run.track(model, optimizer, stopper=stopper, scheduler=scheduler, names=["x1", "x2", "x3"])
        for epoch in range(run.restore(), EPOCHS + 1):
            for step, (inputs, targets) in run.steps(batches):
                loss = torch.nn.functional.mse_loss(model(inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                if (epoch, step) == stop_at:
                    run.cancel_event.set()
            with torch.no_grad():
                val_loss = torch.nn.functional.mse_loss(model(x), y).item()
            if run.end_epoch(epoch, EPOCHS, {"train_loss": loss.item(), "val_loss": val_loss}, monitor="val_loss"):
                break
        run.finish({"val_loss": val_loss})
    return model


def uninterrupted_weights(sampler: str = "seeded") -> dict[str, torch.Tensor]:
    toy_train(engine.Run.create("toy", ToyConfig()), sampler=sampler)
    return engine.load_checkpoint(Path(engine.list_runs("toy")[0]["path"]) / "last.pt")["model"]


@pytest.mark.parametrize("sampler", ["seeded", "global"])
@pytest.mark.parametrize("stop_at,saved", [((2, 3), (1, 3)), ((1, 5), (1, 0))], ids=["mid-epoch", "after-epoch"])
def test_cancel_then_resume_gives_the_uninterrupted_weights(stop_at, saved, sampler):
    expected = uninterrupted_weights(sampler)
    events = []
    with pytest.raises(CancelledError):
        toy_train(engine.Run.create("toy", ToyConfig(), on_progress=events.append), stop_at=stop_at, sampler=sampler)
    stopped = engine.list_runs("toy")[0]
    assert stopped["state"] == "cancelled"
    checkpoint = engine.load_checkpoint(Path(stopped["path"]) / "last.pt")
    # Epochs fully trained, then the steps of the next one: 5 batches of 8 make an epoch.
    assert (checkpoint["epoch"], checkpoint["extra"]["step"]) == saved
    assert set(checkpoint["extra"]) == {"scheduler", "stopper", "names", "step", "rng"}
    assert checkpoint["optimizer"]["state"]  # the momentum buffers travel too

    resumed_events = []
    run = engine.Run.create("toy", ToyConfig(resume=True), resume=True, on_progress=resumed_events.append)
    assert run.run_id == stopped["run_id"]
    torch.manual_seed(1234)  # a new process: the global generators start elsewhere
    toy_train(run, sampler=sampler)
    final = engine.load_checkpoint(run.dir / "last.pt")
    assert final["epoch"] == EPOCHS
    for name, tensor in expected.items():
        assert torch.allclose(final["model"][name], tensor, atol=1e-6), name
    assert any("resumed" in (event.get("message") or "") for event in resumed_events)
    assert json.loads((run.dir / "status.json").read_text())["resumed_from"] == {"epoch": saved[0], "step": saved[1]}
    logged = [json.loads(line)["epoch"] for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, EPOCHS + 1))  # each epoch logged once across both processes


def test_best_checkpoint_and_load_best_follow_the_monitored_metric():
    run = engine.Run.create("toy", ToyConfig())
    model = torch.nn.Linear(2, 1)
    stopper = engine.EarlyStopping(patience=5, mode="max")
    run.track(model, stopper=stopper, classes=["cat", "dog"])
    weights = {}
    for epoch, accuracy in enumerate([0.5, 0.9, 0.7], start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        weights[epoch] = model.weight.clone()
        run.end_epoch(epoch, 3, {"val_accuracy": accuracy}, monitor="val_accuracy")
    best = engine.load_checkpoint(run.dir / "best.pt")
    assert best["epoch"] == 2 and best["best_metric"] == pytest.approx(0.9)
    assert torch.equal(best["model"]["weight"], weights[2])
    assert best["extra"] == {"classes": ["cat", "dog"]}  # what load() needs, no training state
    assert run.load_best() == 2 and torch.equal(model.weight, weights[2])


def test_early_stop_ends_the_loop_and_writes_last():
    run = engine.Run.create("toy", ToyConfig(epochs=10))
    run.track(torch.nn.Linear(2, 1), stopper=engine.EarlyStopping(patience=1, mode="min"))
    assert not run.end_epoch(1, 10, {"val_loss": 1.0}, monitor="val_loss")
    assert run.end_epoch(2, 10, {"val_loss": 2.0}, monitor="val_loss")  # worse once: stop
    assert engine.load_checkpoint(run.dir / "last.pt")["epoch"] == 2


def test_side_training_writes_no_files_but_keeps_its_best_in_memory():
    run = engine.Run.create("toy", ToyConfig())
    model = torch.nn.Linear(2, 1)
    run.track(model, torch.optim.SGD(model.parameters(), lr=0.1), stopper=engine.EarlyStopping(0, "min"),
              checkpoints=False, log_epochs=False)
    assert run.restore() == 1
    for epoch, loss in enumerate([3.0, 1.0, 2.0], start=1):
        with torch.no_grad():
            model.bias.fill_(loss)
        run.end_epoch(epoch, 3, {"val_loss": loss}, monitor="val_loss")
    assert run.load_best() == 2 and model.bias.item() == 1.0
    event = threading.Event()
    event.set()
    run.cancel_event = event
    with pytest.raises(CancelledError):
        with run:
            list(run.steps([1, 2]))
    assert not list(run.dir.glob("*.pt")) and not (run.dir / "metrics.jsonl").exists()


def test_resume_with_missing_state_names_the_checkpoint():
    run = engine.Run.create("toy", ToyConfig())
    model = torch.nn.Linear(2, 1)
    run.save_checkpoint(engine.cpu_state(model), None, 1, None)
    run.mark_cancelled()
    again = engine.Run.create("toy", ToyConfig(resume=True), resume=True)
    scheduler_model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(scheduler_model.parameters(), lr=0.1)
    again.track(scheduler_model, optimizer)
    with pytest.raises(ValueError, match="last.pt.*no optimizer state"):
        again.restore()
