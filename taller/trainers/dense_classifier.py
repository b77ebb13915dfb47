"""Cats vs dogs with a dense network (no convolutions) on CIFAR-10 classes 3 (cat) and 5 (dog).

The workshop's seed model done carefully: a multilayer perceptron with batch norm and dropout,
AdamW with a one-cycle learning-rate schedule, horizontal-flip augmentation, early stopping on
validation accuracy, then the held-out test accuracy, a confusion matrix (PNG) and k-fold
cross-validation (mean ± std over ``folds`` folds of the training set, as in the seed).

Data: the official ``cifar-10-python.tar.gz`` (or the same-format CIFAR-10 subset). An MLP sees
pixels, not shapes: expect roughly 60–70 % test accuracy, which is the workshop's lesson about
why convolutions exist.

    python -m taller.trainers.dense_classifier --epochs 30
    python -m taller.trainers.dense_classifier --dry-run
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taller.data import resolve
from taller.trainers import engine
from taller.trainers.images import image_to_array, load_cifar10

MODEL_NAME = "dense_classifier"
CLASSES = ("cat", "dog")
CIFAR_LABELS = (3, 5)  # CIFAR-10's cat and dog


@dataclass
class Config:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    hidden: tuple = (1024, 512, 256)
    dropout: float = 0.3
    label_smoothing: float = 0.1
    val_fraction: float = 0.1
    patience: int = 6  # epochs without better validation accuracy before stopping
    folds: int = 5  # k-fold cross-validation on the training set (0 or 1 = skip)
    cv_epochs: int = 0  # epochs per fold (0 = same as epochs)
    train_limit: int = 0  # use only the first N training images (0 = all)
    data_path: str = ""  # explicit cifar-10-python.tar.gz (default: the data resolver)
    seed: int = 0
    device: str = "auto"
    dry_run: bool = False
    resume: bool = False


# --- data -----------------------------------------------------------------------------------------


def check_data(config: Config) -> None:
    """Raise DataNotFoundError (naming the tarball and where to put it) when CIFAR-10 is missing."""
    resolve("cifar10", explicit=config.data_path or None)


def load_data(config: Config) -> dict[str, torch.Tensor]:
    """Cat and dog images as (N, 3, 32, 32) uint8 tensors with labels 0 = cat, 1 = dog."""
    raw = load_cifar10(config.data_path or None, classes=CIFAR_LABELS)
    train_x = torch.from_numpy(raw["train_images"]).permute(0, 3, 1, 2).contiguous()
    train_y = torch.from_numpy(raw["train_labels"])
    if config.train_limit:
        train_x, train_y = train_x[: config.train_limit], train_y[: config.train_limit]
    test_x = torch.from_numpy(raw["test_images"]).permute(0, 3, 1, 2).contiguous()
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": torch.from_numpy(raw["test_labels"])}


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units (saved with the model)."""
    floats = images.float() / 255.0
    return floats.mean(dim=(0, 2, 3)).tolist(), floats.std(dim=(0, 2, 3)).tolist()


def split_indices(count: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    val_count = max(1, int(count * fraction))
    return order[val_count:], order[:val_count]


# --- model ----------------------------------------------------------------------------------------


class DenseClassifier(nn.Module):
    """Flatten → [Linear → BatchNorm → ReLU → Dropout] × len(hidden) → Linear(2).

    Normalisation by the training set's channel statistics is part of the model (buffers), so a
    checkpoint classifies raw [0, 1] pixels on its own.
    """

    def __init__(self, hidden: tuple = (1024, 512, 256), dropout: float = 0.3,
                 mean: list[float] | None = None, std: list[float] | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean or [0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std or [0.25, 0.25, 0.25]).view(1, 3, 1, 1))
        layers: list[nn.Module] = [nn.Flatten()]
        width = 3 * 32 * 32
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, len(CLASSES)))
        self.net = nn.Sequential(*layers)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels``: (N, 3, 32, 32) floats in [0, 1]; returns logits (N, 2)."""
        return self.net((pixels - self.mean) / self.std)


def build_model(config: Config, mean=None, std=None) -> DenseClassifier:
    return DenseClassifier(tuple(config.hidden), config.dropout, mean, std)


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0


def augment(pixels: torch.Tensor) -> torch.Tensor:
    """Random horizontal flips, drawn on the device (a cat facing left is still a cat)."""
    flip = torch.rand(pixels.shape[0], 1, 1, 1, device=pixels.device) < 0.5
    return torch.where(flip, pixels.flip(3), pixels)


def compute_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(model(augment(to_pixels(images))).float(), labels, label_smoothing=label_smoothing)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 1024) -> torch.Tensor:
    """Class probabilities (N, 2) for uint8 images."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = to_pixels(images[start : start + batch_size].to(device))
        with engine.autocast(device):
            out.append(model(batch).float().softmax(dim=1))
    model.train()
    return torch.cat(out)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    return (predict(model, images, device).argmax(1).cpu() == labels.cpu()).float().mean().item()


# --- train ----------------------------------------------------------------------------------------


def train_one_epoch(model, batches, optimizer, scheduler, run: engine.Run, epoch: int, epochs: int, device,
                    config: Config, label: str = "") -> float:
    """One pass over the training batches; returns the mean training loss."""
    running = torch.zeros((), device=device)  # summed on the device: no sync per step
    for step, (images, labels) in run.steps(batches):
        with engine.autocast(device):
            loss = compute_loss(model, images, labels, config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running += loss.detach()
        run.progress(epoch, epochs, step, len(batches), loss.detach(), metric_name="val_accuracy",
                     message=f"{label}epoch {epoch}/{epochs}")
    return running.item() / max(1, run.epoch_trained)


def fit(config: Config, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
        device: torch.device, run: engine.Run, epochs: int, checkpoints: bool,
        label: str = "") -> tuple[DenseClassifier, dict[str, Any]]:
    """Train one model, early-stopped on validation accuracy, and return it with its best weights.

    With ``checkpoints`` it is the run's model (last/best checkpoints, metrics, resume); without,
    a cross-validation fold that leaves no files.
    """
    model = build_model(config, *channel_stats(train_x)).to(device)
    batches = engine.make_batches([train_x, train_y], config.batch_size, device, shuffle=True,
                                  drop_last=len(train_x) > config.batch_size, seed=config.seed)
    val_x, val_y = val_x.to(device), val_y.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=epochs * len(batches), pct_start=0.15)
    stopper = engine.EarlyStopping(config.patience, mode="max")
    run.track(model, optimizer, stopper=stopper, scheduler=scheduler, classes=list(CLASSES),
              checkpoints=checkpoints, log_epochs=checkpoints)
    step_model = engine.prepare_model(model)

    for epoch in range(run.restore(), epochs + 1):
        train_loss = train_one_epoch(step_model, batches, optimizer, scheduler, run, epoch, epochs, device, config, label)
        val_accuracy = accuracy(model, val_x, val_y, device)
        metrics = {"train_loss": train_loss, "val_accuracy": val_accuracy, "lr": scheduler.get_last_lr()[0]}
        if run.end_epoch(epoch, epochs, metrics, monitor="val_accuracy",
                         message=f"{label}epoch {epoch}/{epochs}: val accuracy {val_accuracy:.3f}"):
            break
    run.load_best()
    return model, {"best_val_accuracy": stopper.best, "epochs_run": run.completed_epochs}


def cross_validate(config: Config, images: torch.Tensor, labels: torch.Tensor, device: torch.device, run: engine.Run) -> dict[str, Any]:
    """k-fold cross-validation on the training set: accuracy per fold, mean and std."""
    folds = min(config.folds, 2) if config.dry_run else config.folds
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed + 1))
    parts = order.chunk(folds)
    epochs = 1 if config.dry_run else (config.cv_epochs or config.epochs)
    scores = []
    for k in range(folds):
        held = parts[k]
        kept = torch.cat([p for i, p in enumerate(parts) if i != k])
        # Inside each fold, early stopping uses a slice of that fold's own training part.
        inner_train, inner_val = split_indices(len(kept), config.val_fraction, config.seed + k)
        model, _ = fit(config, images[kept[inner_train]], labels[kept[inner_train]], images[kept[inner_val]],
                       labels[kept[inner_val]], device, run, epochs, checkpoints=False, label=f"fold {k + 1}/{folds} ")
        scores.append(accuracy(model, images[held], labels[held], device))
    return {"cv_accuracy_mean": float(np.mean(scores)), "cv_accuracy_std": float(np.std(scores)), "cv_fold_accuracies": scores}


def train(config: Config, run: engine.Run | None = None, cancel_event=None, on_progress=None) -> dict[str, Any]:
    """Train on CIFAR cats and dogs; report test accuracy, confusion matrix PNG and k-fold CV."""
    run = engine.start_run(MODEL_NAME, config, run, cancel_event, on_progress, check=check_data)
    with run:
        engine.seed_everything(config.seed)
        device = run.use_device(config.device)
        data = load_data(config)
        if config.dry_run:
            keep = config.batch_size * 3
            data = {"train_x": data["train_x"][:keep], "train_y": data["train_y"][:keep],
                    "test_x": data["test_x"][:256], "test_y": data["test_y"][:256]}
        epochs = 1 if config.dry_run else config.epochs
        train_part, val_part = split_indices(len(data["train_x"]), config.val_fraction, config.seed)
        started = time.perf_counter()
        model, fitted = fit(config, data["train_x"][train_part], data["train_y"][train_part], data["train_x"][val_part],
                            data["train_y"][val_part], device, run, epochs, checkpoints=True)
        train_seconds = time.perf_counter() - started

        probabilities = predict(model, data["test_x"], device).cpu()
        predicted = probabilities.argmax(1)
        test_accuracy = (predicted == data["test_y"]).float().mean().item()
        matrix = confusion_matrix(data["test_y"], predicted)
        figure = save_confusion_matrix(matrix, run.dir / "confusion_matrix.png", test_accuracy)
        metrics: dict[str, Any] = {
            "test_accuracy": test_accuracy,
            "test_count": len(predicted),
            "confusion_matrix": matrix.tolist(),
            **fitted,
            "train_seconds": round(train_seconds, 2),
            "train_count": len(train_part),
            "device": str(device),
            "images": [str(figure)],
        }
        if config.folds and config.folds > 1:
            metrics.update(cross_validate(config, data["train_x"], data["train_y"], device, run))
        run.log_epoch(fitted["epochs_run"], {"test_accuracy": test_accuracy,
                                            **{k: v for k, v in metrics.items() if k.startswith("cv_accuracy")}})
        return run.finish(metrics)


# --- results --------------------------------------------------------------------------------------


def confusion_matrix(truth: torch.Tensor, predicted: torch.Tensor, classes: int = 2) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    for t, p in zip(truth.tolist(), predicted.tolist()):
        matrix[t, p] += 1
    return matrix


def save_confusion_matrix(matrix: np.ndarray, path: Path, accuracy_value: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window (background threads, servers)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3.6), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        ax.text(col, row, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black", fontsize=14)
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"cats vs dogs, test accuracy {accuracy_value:.1%}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- use a trained model -------------------------------------------------------------------------


def load(path: str | Path | None = None, device: str = "cpu") -> tuple[DenseClassifier, Config]:
    """The latest trained classifier (best checkpoint of the newest finished run) or ``path``."""
    checkpoint, config = engine.trained_checkpoint(MODEL_NAME, Config, path, "cats-vs-dogs classifier")
    model = build_model(config)
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), config


def classify(image_path: str | Path, model: DenseClassifier | None = None) -> dict[str, Any]:
    """Cat or dog for any image file (resized to 32×32 RGB), with both probabilities."""
    if model is None:
        model, _ = load()
    array = image_to_array(image_path, (32, 32), mode="RGB")
    images = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()
    probabilities = predict(model, images, torch.device("cpu"))[0]
    best = int(probabilities.argmax())
    return {"label": CLASSES[best], "probability": float(probabilities[best]),
            "probabilities": {name: float(p) for name, p in zip(CLASSES, probabilities)}}


if __name__ == "__main__":
    raise SystemExit(engine.cli(Config, train))
