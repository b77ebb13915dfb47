"""Autoencoder on real MNIST, tiny: dry run, learning, checkpoints, resume, cancellation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from taller.data import DataNotFoundError
from taller.progress import CancelledError
from taller.trainers import autoencoder, engine
from trainers_helpers import cancel_at_first_step

SMALL = dict(train_limit=640, batch_size=64, epochs=2, patience=0)


def test_dry_run_writes_metrics_checkpoints_and_grid(data_dir):
    metrics = autoencoder.train(autoencoder.Config(dry_run=True, batch_size=64))
    assert 0.0 < metrics["test_mse"] < 0.5
    run_dir = Path(metrics["run_dir"])
    for name in ("best.pt", "last.pt", "reconstructions.png", "metrics.jsonl", "status.json", "config.json"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    assert metrics["images"] == [str(run_dir / "reconstructions.png")]


def test_loss_decreases_over_a_few_steps(data_dir):
    torch.manual_seed(0)
    images = autoencoder.load_data(autoencoder.Config(train_limit=512))["train"][:128]
    model = autoencoder.build_model(autoencoder.Config())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        loss = autoencoder.compute_loss(model, images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8


def test_save_load_gives_identical_reconstructions(data_dir):
    config = autoencoder.Config(bottleneck=32)
    model = autoencoder.build_model(config)
    run = engine.Run.create("autoencoder", config)
    path = run.save_checkpoint(engine.cpu_state(model), None, 1, 0.5, name="best.pt")
    loaded, loaded_config = autoencoder.load(path)
    assert loaded_config == config
    sample = torch.rand(5, 784)
    model.eval()
    assert torch.equal(model(sample), loaded(sample))


def test_cancel_leaves_checkpoint_and_resume_finishes_the_run(data_dir):
    event, on_progress = cancel_at_first_step()
    config = autoencoder.Config(**SMALL)
    with pytest.raises(CancelledError):
        autoencoder.train(config, cancel_event=event, on_progress=on_progress)
    stopped = engine.list_runs("autoencoder")[0]
    assert stopped["state"] == "cancelled"
    checkpoint = engine.load_checkpoint(Path(stopped["path"]) / "last.pt")
    # Stopped inside epoch 1 after one step: no epoch finished, and resume skips that step.
    assert checkpoint["epoch"] == 0 and checkpoint["extra"]["step"] == 1
    assert checkpoint["config"]["train_limit"] == 640

    metrics = autoencoder.train(autoencoder.Config(**SMALL, resume=True))
    assert metrics["run_id"] == stopped["run_id"]  # the same run continued
    assert metrics["epochs_run"] == 2
    epochs = [json.loads(line)["epoch"] for line in (Path(metrics["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_missing_dataset_names_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TALLER_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="train-images-idx3-ubyte.gz"):
        autoencoder.train(autoencoder.Config(dry_run=True))
    with pytest.raises(ValueError, match="at least 1"):
        autoencoder.train(autoencoder.Config(epochs=0))
