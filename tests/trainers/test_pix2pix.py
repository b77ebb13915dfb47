"""pix2pix on paired data built from real CIFAR-10 images (photo | palette label map), tiny."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch

from taller.data import DataNotFoundError
from taller.progress import CancelledError
from taller.trainers import engine, pix2pix
from trainers_helpers import cancel_after_epoch

TINY = dict(base_channels=8, batch_size=4, image_size=32, patience=0)


@pytest.fixture(scope="module")
def facades(tmp_path_factory, real_data_dir):
    """A facades-format folder {train,val,test}/N.jpg built once from the real CIFAR subset."""
    # (conftest is not importable as a module: tests/vision has a conftest too.)
    folder = real_data_dir
    target = tmp_path_factory.mktemp("facades") / "facades"
    pix2pix.build_paired_dataset(target, count=40, source=folder / "cifar-10-subset-python.tar.gz")
    return target


def test_built_pairs_follow_the_facades_layout(facades):
    from PIL import Image

    for split in ("train", "val", "test"):
        files = sorted((facades / split).glob("*.jpg"))
        assert files, split
        with Image.open(files[0]) as image:
            assert image.size == (64, 32)  # photo | label map, side by side
    data = pix2pix.load_data(pix2pix.Config(dataset="facades", data_path=str(facades), **TINY), ("train",))
    inputs, targets = data["train"]
    assert inputs.shape == targets.shape == (40, 3, 32, 32)
    # BtoA: the input is the right half, the palette label map, so it has few distinct colours.
    assert len(torch.unique(inputs[0].reshape(3, -1), dim=1).T) < len(torch.unique(targets[0].reshape(3, -1), dim=1).T)


def test_dry_run_reports_val_l1_and_saves_triptych(facades):
    metrics = pix2pix.train(pix2pix.Config(dataset="facades", data_path=str(facades), dry_run=True, **TINY))
    assert 0.0 < metrics["val_l1"] < 1.0 and metrics["identity_baseline_l1"] > 0
    picture = Path(metrics["images"][0])
    assert picture.name == "translations.png" and picture.is_file()
    checkpoint = engine.load_checkpoint(Path(metrics["run_dir"]) / "last.pt")
    assert "discriminator" in checkpoint["extra"] and "optimizer_d" in checkpoint["extra"]


def test_generator_l1_decreases_over_a_few_steps(facades):
    torch.manual_seed(0)
    config = pix2pix.Config(dataset="facades", data_path=str(facades), **TINY)
    inputs, targets = pix2pix.load_data(config, ("train",))["train"]
    generator, _ = pix2pix.build_models(config)
    optimizer = torch.optim.Adam(generator.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        loss = pix2pix.compute_loss(generator, inputs[:4], targets[:4])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < sum(losses[:3])


def test_save_load_identical_translation_and_cancel(facades):
    config = pix2pix.Config(dataset="facades", data_path=str(facades), **TINY)
    generator, _ = pix2pix.build_models(config)
    generator.eval()
    run = engine.Run.create("pix2pix", config)
    path = run.save_checkpoint(engine.cpu_state(generator), None, 1, 0.2, name="best.pt")
    loaded, _ = pix2pix.load(path)
    inputs = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(pix2pix.translate(generator, inputs), pix2pix.translate(loaded, inputs))

    event, on_progress = cancel_after_epoch(1)
    with pytest.raises(CancelledError):
        pix2pix.train(pix2pix.Config(dataset="facades", data_path=str(facades), epochs=2, train_limit=16, **TINY),
                      cancel_event=event, on_progress=on_progress)
    stopped = engine.list_runs("pix2pix")[0]
    assert stopped["state"] == "cancelled"
    assert "discriminator" in engine.load_checkpoint(Path(stopped["path"]) / "last.pt")["extra"]
    # Resuming restores both networks, both optimizers and both schedules, and finishes epoch 2.
    resumed = pix2pix.train(pix2pix.Config(dataset="facades", data_path=str(facades), epochs=2, train_limit=16,
                                           resume=True, **TINY))
    assert resumed["run_id"] == stopped["run_id"] and resumed["epochs_run"] == 2


def test_tarball_and_bad_inputs(facades, tmp_path, monkeypatch):
    archive = tmp_path / "facades.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(facades, arcname="facades")
    data = pix2pix.load_data(pix2pix.Config(data_path=str(archive), **TINY), ("val",))
    assert data["val"][0].shape[1:] == (3, 32, 32)
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="no train"):
        pix2pix.load_data(pix2pix.Config(data_path=str(empty), **TINY))
    monkeypatch.setenv("TALLER_DATA_DIR", str(tmp_path / "nothing"))
    with pytest.raises(DataNotFoundError, match="facades"):
        pix2pix.check_data(pix2pix.Config())
    with pytest.raises(ValueError, match="direction"):
        pix2pix.load_data(pix2pix.Config(direction="sideways", data_path=str(facades)))
