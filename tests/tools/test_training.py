"""The training tools through the registry: result shapes, background runs, bad input."""

from __future__ import annotations

import threading
from pathlib import Path

from taller import progress
from taller.tools import run_tool
from taller.trainers import autoencoder, engine, runs


def _finished_run(model: str, module, config, state_dict) -> Path:
    """A finished run with a real (untrained) checkpoint, as a trained run would leave it."""
    run = engine.Run.create(model, config)
    path = run.save_checkpoint(state_dict, None, 1, 0.0, name="best.pt")
    run.finish({"note": 1.0})
    return path


def test_train_model_starts_in_background_then_cancels(data_dir):
    """Cancelled at a point that does not depend on timing: after the run's first step.

    Background runs report on the process-wide bus. A listener there, called by the training
    thread itself, holds the first step until the test has checked that a second start is
    refused (so the run is certainly still alive then), and only then cancels.
    """
    first_step, may_cancel, cancelled = threading.Event(), threading.Event(), []

    def on_event(event: dict) -> None:
        if event.get("model") == "autoencoder" and event.get("step") is not None and not first_step.is_set():
            first_step.set()
            may_cancel.wait(60)
            cancelled.append(runs.cancel(event["run_id"]))

    unsubscribe = progress.bus.subscribe(on_event)
    out = run_tool("train_model", {"model": "autoencoder", "epochs": 3})
    try:
        assert "error" not in out, out
        assert out["status"] == "started" and out["model"] == "autoencoder" and out["epochs"] == 3
        assert out["run_id"].startswith("autoencoder-") and out["summary"]
        again = run_tool("train_model", {"model": "autoencoder"})
        assert f"autoencoder is already training (run {out['run_id']})" in again["error"]
        assert first_step.wait(120), "the run never reached its first step"
    finally:
        may_cancel.set()
        if "run_id" in out and not first_step.is_set():  # a failed check must not leave a run training
            runs.cancel(out["run_id"])
        final = runs.wait(out["run_id"], timeout=120) if "run_id" in out else None
        unsubscribe()
    assert cancelled == [True]
    assert final["state"] == "cancelled" and final["error"] is None, final
    # It stopped at step 2 of epoch 1 of 3: no epoch finished, no best model, and last.pt
    # holds the weights after exactly one step, which load back into the model.
    assert final["epoch"] == 0 and final["epochs"] == 3
    folder = Path(final["path"])
    assert not (folder / "best.pt").exists() and not (folder / "metrics.jsonl").exists()
    checkpoint = engine.load_checkpoint(folder / "last.pt")
    assert checkpoint["run_id"] == out["run_id"]
    assert checkpoint["epoch"] == 0 and checkpoint["extra"]["step"] == 1
    config = engine.config_from_checkpoint(autoencoder.Config, checkpoint)
    assert config.epochs == 3
    autoencoder.build_model(config).load_state_dict(checkpoint["model"])

    listed = run_tool("list_models", {})
    assert listed["runs"][0]["run_id"] == out["run_id"] and listed["runs"][0]["state"] == "cancelled"
    assert set(listed["runs"][0]) >= {"model", "state", "metrics", "checkpoints", "epoch", "epochs"}
    assert "1 run(s)" in listed["summary"]


def test_train_model_bad_arguments():
    out = run_tool("train_model", {"model": "resnet"})
    assert out["error"].startswith("bad arguments for train_model: model: Input should be 'dense_classifier'")
    for epochs in (0, -2):
        out = run_tool("train_model", {"model": "vae", "epochs": epochs})
        assert "epochs: Input should be greater than or equal to 1" in out["error"]
    assert runs.list_all() == []  # nothing was started


def test_missing_dataset_is_reported_before_starting(tmp_path, monkeypatch):
    monkeypatch.setenv("TALLER_DATA_DIR", str(tmp_path))
    out = run_tool("train_model", {"model": "dense_classifier", "epochs": 1})
    assert "cifar-10-python.tar.gz" in out["error"] and str(tmp_path) in out["error"]
    assert runs.list_all("dense_classifier") == []


def test_list_models_when_nothing_trained():
    out = run_tool("list_models", {})
    assert out["runs"] == [] and "No models" in out["summary"]


def test_classify_pet_without_a_model_offers_training(tmp_path):
    from PIL import Image

    photo = tmp_path / "cat.png"
    Image.new("RGB", (40, 30), (200, 120, 60)).save(photo)
    out = run_tool("classify_pet", {"image_path": str(photo)})
    assert out["trained"] is False and out["offer"]["tool"] == "train_model"
    assert "label" not in out  # no made-up answer


def test_classify_pet_with_a_trained_model_and_bad_files(data_dir, tmp_path):
    from PIL import Image

    from taller.trainers import dense_classifier
    from taller.trainers.images import load_cifar10

    metrics = dense_classifier.train(dense_classifier.Config(dry_run=True, batch_size=64, hidden=(32,), folds=0))
    test = load_cifar10(classes=(3, 5))
    photo = tmp_path / "pet.jpg"
    Image.fromarray(test["test_images"][3]).resize((120, 90)).save(photo)
    out = run_tool("classify_pet", {"image_path": str(photo)})
    assert out["label"] in ("cat", "dog") and 0.5 <= out["probability"] <= 1.0
    assert metrics["run_id"] in out["checkpoint"]

    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(photo.read_bytes()[:40])
    assert "not a readable image" in run_tool("classify_pet", {"image_path": str(corrupt)})["error"]
    text = tmp_path / "notes.png"
    text.write_text("hello, I am not a picture")
    assert "not a readable image" in run_tool("classify_pet", {"image_path": str(text)})["error"]
    assert "not found" in run_tool("classify_pet", {"image_path": str(tmp_path / "missing.jpg")})["error"]
    assert "system folders are off limits" in run_tool("classify_pet", {"image_path": "/etc/passwd"})["error"]


def test_generate_images_for_each_model(data_dir, tmp_path):
    from PIL import Image

    from taller.trainers import autoencoder, pix2pix, vae

    for model in ("autoencoder", "vae", "pix2pix"):
        out = run_tool("generate_images", {"model": model})
        assert out["trained"] is False and model in out["summary"]

    _finished_run("autoencoder", autoencoder, autoencoder.Config(), engine.cpu_state(autoencoder.build_model(autoencoder.Config())))
    out = run_tool("generate_images", {"model": "autoencoder", "count": 5})
    assert out["count"] == 5 and Path(out["images"][0]).is_file() and out["images"][0].endswith(".png")
    digit = tmp_path / "digit.png"
    Image.new("L", (50, 50), 255).save(digit)
    out = run_tool("generate_images", {"model": "autoencoder", "image_path": str(digit)})
    assert out["count"] == 1 and "your image" in out["summary"]

    _finished_run("vae", vae, vae.Config(hidden=64, latent_dim=4), engine.cpu_state(vae.build_model(vae.Config(hidden=64, latent_dim=4))))
    out = run_tool("generate_images", {"model": "vae", "count": 3})
    assert out["count"] == 3 and Path(out["images"][0]).is_file()

    config = pix2pix.Config(base_channels=8, image_size=32)
    generator, _ = pix2pix.build_models(config)
    _finished_run("pix2pix", pix2pix, config, engine.cpu_state(generator))
    labels = tmp_path / "labels.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(labels)
    out = run_tool("generate_images", {"model": "pix2pix", "image_path": str(labels)})
    assert Path(out["images"][0]).is_file()
    with Image.open(out["images"][0]) as picture:
        assert picture.width > picture.height  # input | generated side by side

    wrong_model = run_tool("generate_images", {"model": "dense_classifier"})["error"]
    assert "model: Input should be 'autoencoder', 'vae' or 'pix2pix'" in wrong_model
    assert "count: Input should be greater than or equal to 1" in run_tool("generate_images", {"model": "vae", "count": 0})["error"]
