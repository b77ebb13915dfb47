"""Cats-vs-dogs MLP on the real CIFAR-10 subset, tiny: dry run, learning, checkpoints, CV, resume."""

from __future__ import annotations

import json
import pickle
import tarfile
from pathlib import Path

import pytest
import torch

from taller.data import DataNotFoundError
from taller.progress import CancelledError
from taller.trainers import dense_classifier as dc
from taller.trainers import engine
from taller.trainers.images import load_cifar10
from trainers_helpers import cancel_after_epoch

SMALL = dict(train_limit=256, batch_size=64, hidden=(64, 32), folds=0, patience=0)


def test_loader_keeps_only_cats_and_dogs(data_dir):
    data = load_cifar10(classes=(3, 5))
    assert data["train_images"].shape[1:] == (32, 32, 3)
    assert set(data["train_labels"].tolist()) == {0, 1}
    # The subset's README: 363 cats and 358 dogs in train, 75 and 73 in test.
    assert (data["train_labels"] == 0).sum() == 363 and (data["train_labels"] == 1).sum() == 358
    assert len(data["test_labels"]) == 148


def test_dry_run_reports_accuracy_confusion_matrix_and_cv(data_dir):
    metrics = dc.train(dc.Config(dry_run=True, batch_size=64, hidden=(64, 32), folds=5))
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["test_count"] == 148
    assert len(metrics["cv_fold_accuracies"]) == 2  # a dry run caps the folds
    assert Path(metrics["images"][0]).name == "confusion_matrix.png" and Path(metrics["images"][0]).is_file()


def test_loss_decreases_over_a_few_steps(data_dir):
    torch.manual_seed(0)
    data = dc.load_data(dc.Config(train_limit=128))
    model = dc.build_model(dc.Config(hidden=(64, 32)), *dc.channel_stats(data["train_x"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = dc.compute_loss(model, data["train_x"], data["train_y"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < sum(losses[:5])


def test_save_load_identical_predictions_and_classify(data_dir, tmp_path):
    config = dc.Config(hidden=(32,))
    model = dc.build_model(config, [0.4, 0.4, 0.4], [0.2, 0.2, 0.2]).eval()
    run = engine.Run.create("dense_classifier", config)
    path = run.save_checkpoint(engine.cpu_state(model), None, 1, 0.6, name="best.pt")
    loaded, _ = dc.load(path)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(dc.predict(model, images, torch.device("cpu")), dc.predict(loaded, images, torch.device("cpu")))
    from PIL import Image

    photo = tmp_path / "pet.png"
    Image.fromarray(load_cifar10(classes=(3, 5))["test_images"][0]).resize((97, 61)).save(photo)
    answer = dc.classify(photo, loaded)
    assert answer["label"] in ("cat", "dog")
    assert abs(sum(answer["probabilities"].values()) - 1.0) < 1e-5


def test_cancel_then_resume(data_dir):
    event, on_progress = cancel_after_epoch(1)
    with pytest.raises(CancelledError):
        dc.train(dc.Config(epochs=2, **SMALL), cancel_event=event, on_progress=on_progress)
    stopped = engine.list_runs("dense_classifier")[0]
    assert stopped["state"] == "cancelled"
    assert engine.load_checkpoint(Path(stopped["path"]) / "last.pt")["epoch"] == 1
    metrics = dc.train(dc.Config(epochs=2, resume=True, **SMALL))
    assert metrics["run_id"] == stopped["run_id"] and metrics["epochs_run"] == 2


def test_bad_tarballs_give_clear_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_cifar10(tmp_path / "cifar-10-python.tar.gz")
    not_tar = tmp_path / "broken.tar.gz"
    not_tar.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable CIFAR-10 tarball"):
        load_cifar10(not_tar)
    # A pickle that tries to run code is refused, not executed.
    evil = tmp_path / "evil.tar.gz"
    payload = pickle.dumps({"x": print})  # a global that is not a NumPy array constructor
    with tarfile.open(evil, "w:gz") as archive:
        for name in ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            import io

            archive.addfile(info, io.BytesIO(payload))
    with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
        load_cifar10(evil)


def test_lesson_dry_run_writes_the_lesson_and_no_checkpoints(data_dir):
    metrics = dc.train(dc.Config(lesson=True, dry_run=True))
    assert metrics["lesson"] and metrics["claim"] and isinstance(metrics["claim_held"], bool)
    figures = metrics["figures"]
    assert 0.0 <= figures["plain_train_accuracy"] <= 1.0 and figures["plain_loss_growth"] >= 1.0
    assert metrics["reading"] and metrics["reading_es"]
    (plot,) = metrics["images"]
    assert Path(plot).read_bytes().startswith(b"\x89PNG")
    run_dir = Path(metrics["run_dir"])
    lesson = json.loads((run_dir / "lesson.json").read_text())
    assert lesson["state"] == "finished"
    histories = {name: part["history"] for name, part in lesson["experiments"].items()}
    assert set(histories) == {"no regularisation", "dropout and early stopping"}
    assert all(len(history["val_loss"]) == len(history["train_accuracy"]) >= 1 for history in histories.values())
    assert not (run_dir / "best.pt").exists() and not (run_dir / "last.pt").exists()


def test_lesson_claim_needs_over_fitting_and_a_smaller_gap():
    plain = {"train_accuracy": 1.0, "val_accuracy": 0.6, "val_loss": 1.8, "min_val_loss": 0.68, "test_accuracy": 0.6,
             "kept_epoch": 60, "stopped_epoch": 60}
    regularised = {"train_accuracy": 0.7, "val_accuracy": 0.6, "val_loss": 0.69, "min_val_loss": 0.69,
                   "test_accuracy": 0.6, "kept_epoch": 3, "stopped_epoch": 11}
    figures = dc.lesson_figures(plain, regularised)
    assert abs(figures["gap_cut"] - 0.3) < 1e-9 and dc.lesson_claim_holds(figures)
    # The plain model did not learn its training set: no over-fitting to cure.
    assert not dc.lesson_claim_holds(dc.lesson_figures({**plain, "train_accuracy": 0.9}, regularised))
    # Its validation loss barely grew.
    assert not dc.lesson_claim_holds(dc.lesson_figures({**plain, "val_loss": 0.9}, regularised))
    # The regularised model's gap is only 0.1 smaller.
    assert not dc.lesson_claim_holds(dc.lesson_figures(plain, {**regularised, "train_accuracy": 0.9}))
