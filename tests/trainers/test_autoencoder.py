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


def test_lesson_dry_run_writes_the_lesson_and_no_checkpoints(data_dir):
    metrics = autoencoder.train(autoencoder.Config(lesson=True, dry_run=True))
    assert metrics["lesson"] and metrics["claim"] and isinstance(metrics["claim_held"], bool)
    assert metrics["figures"]["bottlenecks"] == list(autoencoder.LESSON.bottlenecks)
    assert len(metrics["figures"]["test_mse"]) == len(autoencoder.LESSON.bottlenecks)
    assert metrics["reading"] and metrics["reading_es"]
    (plot,) = metrics["images"]
    assert Path(plot).read_bytes().startswith(b"\x89PNG")
    run_dir = Path(metrics["run_dir"])
    lesson = json.loads((run_dir / "lesson.json").read_text())
    assert lesson["state"] == "finished" and len(lesson["experiments"]) == len(autoencoder.LESSON.bottlenecks)
    assert not (run_dir / "best.pt").exists() and not (run_dir / "last.pt").exists()


def test_lesson_claim_needs_a_falling_error_and_a_threefold_gain():
    sizes = [2, 4, 8, 16, 32, 64]
    assert autoencoder.lesson_claim_holds({"bottlenecks": sizes, "test_mse": [0.05, 0.04, 0.03, 0.02, 0.015, 0.01]})
    # A rise at one step breaks it, however large the overall gain.
    assert not autoencoder.lesson_claim_holds({"bottlenecks": sizes, "test_mse": [0.05, 0.04, 0.03, 0.02, 0.01, 0.011]})
    # Falling everywhere but only 2× from the smallest code to the largest.
    assert not autoencoder.lesson_claim_holds({"bottlenecks": sizes, "test_mse": [0.02, 0.018, 0.016, 0.014, 0.012, 0.01]})


def test_lesson_pixels_survive_the_text_round_trip():
    images = torch.rand(3, 784)
    back = autoencoder.text_to_pixels(autoencoder.pixels_to_text(images))
    assert back.shape == (3, 28, 28) and abs(back.reshape(3, 784) - images.numpy()).max() <= 0.5 / 255 + 1e-6
