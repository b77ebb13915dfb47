"""VAE on real MNIST, tiny: dry run, learning, checkpoints, cancellation, sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from taller.progress import CancelledError
from taller.trainers import engine, vae
from trainers_helpers import cancel_after_epoch

SMALL = dict(train_limit=640, batch_size=64, hidden=64, latent_dim=4, patience=0)


def test_dry_run_reports_elbo_terms_and_pictures(data_dir):
    metrics = vae.train(vae.Config(dry_run=True, **SMALL))
    assert metrics["test_reconstruction"] > 0 and metrics["test_kl"] >= 0
    assert abs(metrics["test_elbo"] + metrics["test_reconstruction"] + metrics["test_kl"]) < 1e-3
    names = sorted(Path(p).name for p in metrics["images"])
    assert names == ["latent_traversal.png", "samples.png"]
    assert all(Path(p).stat().st_size > 0 for p in metrics["images"])


def test_loss_decreases_over_a_few_steps(data_dir):
    torch.manual_seed(0)
    images = vae.load_data(vae.Config(train_limit=512))["train"][:128]
    model = vae.build_model(vae.Config(hidden=128, latent_dim=4))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss = vae.compute_loss(model, images, beta=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])


def test_save_load_identical_decoder_and_samples(data_dir):
    config = vae.Config(hidden=64, latent_dim=3, beta=4.0)
    model = vae.build_model(config).eval()
    run = engine.Run.create("vae", config)
    path = run.save_checkpoint(engine.cpu_state(model), None, 1, -100.0, name="best.pt")
    loaded, loaded_config = vae.load(path)
    assert loaded_config.beta == 4.0
    assert torch.equal(vae.sample(model, 5, seed=3), vae.sample(loaded, 5, seed=3))
    digits = torch.rand(2, 784)
    assert torch.equal(model.encode(digits)[0], loaded.encode(digits)[0])


def test_cancellation_leaves_a_loadable_checkpoint(data_dir):
    event, on_progress = cancel_after_epoch(1)
    with pytest.raises(CancelledError):
        vae.train(vae.Config(epochs=2, **SMALL), cancel_event=event, on_progress=on_progress)
    stopped = engine.list_runs("vae")[0]
    assert stopped["state"] == "cancelled"
    model, _ = vae.load(Path(stopped["path"]) / "last.pt")
    assert vae.sample(model, 2).shape == (2, 28, 28)


def test_beta_and_dataset_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="latent_dim"):
        vae.train(vae.Config(latent_dim=1))
    monkeypatch.setenv("TALLER_DATA_DIR", str(tmp_path))
    from taller.data import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="Fashion-MNIST"):
        vae.check_data(vae.Config(dataset="fashion-mnist"))


def test_lesson_dry_run_writes_the_lesson_and_no_checkpoints(data_dir):
    metrics = vae.train(vae.Config(lesson=True, dry_run=True))
    assert metrics["lesson"] and metrics["claim"] and isinstance(metrics["claim_held"], bool)
    figures = metrics["figures"]
    assert figures["betas"] == list(vae.LESSON.betas)
    assert len(figures["kl"]) == len(figures["reconstruction"]) == len(vae.LESSON.betas)
    assert metrics["reading"] and metrics["reading_es"]
    (plot,) = metrics["images"]
    assert Path(plot).read_bytes().startswith(b"\x89PNG")
    run_dir = Path(metrics["run_dir"])
    lesson = json.loads((run_dir / "lesson.json").read_text())
    assert lesson["state"] == "finished" and len(lesson["experiments"]) == len(vae.LESSON.betas)
    assert not (run_dir / "best.pt").exists() and not (run_dir / "last.pt").exists()


def test_lesson_claim_needs_every_step_to_trade_kl_for_reconstruction():
    betas = [0.25, 0.5, 1.0, 2.0, 4.0]
    figures = {"betas": betas, "kl": [40.0, 32.0, 25.0, 18.0, 12.0], "reconstruction": [70.0, 76.0, 85.0, 98.0, 115.0]}
    assert vae.lesson_claim_holds(figures)
    assert not vae.lesson_claim_holds({**figures, "kl": [40.0, 32.0, 33.0, 18.0, 12.0]})  # KL rose at 0.5→1
    assert not vae.lesson_claim_holds({**figures, "reconstruction": [70.0, 76.0, 85.0, 98.0, 97.0]})  # fell at 2→4
    reading = vae.lesson_reading({**figures, "kl": [40.0, 32.0, 33.0, 18.0, 12.0], "elbo": [0] * 5,
                                  "active_dimensions": [9, 8, 7, 5, 3], "latent_dim": 16}, held=False)
    assert "0.5→1" in reading["en"] and "0.5→1" in reading["es"]
