"""Cats vs dogs with a dense network (no convolutions) on CIFAR-10 classes 3 (cat) and 5 (dog).

The workshop's seed model done carefully: a multilayer perceptron with batch norm and dropout,
AdamW with a one-cycle learning-rate schedule, horizontal-flip augmentation, early stopping on
validation accuracy, then the held-out test accuracy, a confusion matrix (PNG) and k-fold
cross-validation (mean ± std over ``folds`` folds of the training set, as in the seed).

Data: the official ``cifar-10-python.tar.gz`` (or the same-format CIFAR-10 subset). An MLP sees
pixels, not shapes: expect roughly 60–70 % test accuracy, which is the workshop's lesson about
why convolutions exist.

The lesson (``--lesson``) is dropout and early stopping against over-fitting: the same MLP
trained once with no regularisation at all (no dropout, weight decay, flips or label smoothing,
no early stopping) until it learns the small training set by heart, and once with dropout and
early stopping on the validation loss, with the training and validation curves of both
(``lesson.png``).

    python -m taller.trainers.dense_classifier --epochs 30
    python -m taller.trainers.dense_classifier --dry-run
    python -m taller.trainers.dense_classifier --lesson
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taller.data import resolve
from taller.trainers import engine, lessons
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
    flips: bool = True  # random horizontal flips of the training images (augmentation)
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
    lesson: bool = False  # run the lesson (dropout and early stopping against over-fitting) instead of one training


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


def compute_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0,
                 flips: bool = True) -> torch.Tensor:
    pixels = to_pixels(images)
    return F.cross_entropy(model(augment(pixels) if flips else pixels).float(), labels, label_smoothing=label_smoothing)


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


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> dict[str, float]:
    """Cross-entropy loss and accuracy on ``images`` (eval mode: no dropout, no flips)."""
    probabilities = predict(model, images, device)
    labels = labels.to(probabilities.device)
    loss = F.nll_loss(probabilities.clamp_min(1e-12).log(), labels).item()
    return {"loss": loss, "accuracy": (probabilities.argmax(1) == labels).float().mean().item()}


# --- train ----------------------------------------------------------------------------------------


def train_one_epoch(model, batches, optimizer, scheduler, run: engine.Run, epoch: int, epochs: int, device,
                    config: Config, label: str = "") -> float:
    """One pass over the training batches; returns the mean training loss."""
    running = torch.zeros((), device=device)  # summed on the device: no sync per step
    for step, (images, labels) in run.steps(batches):
        with engine.autocast(device):
            loss = compute_loss(model, images, labels, config.label_smoothing, config.flips)
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
        label: str = "", monitor: str | None = "val_accuracy",
        history: list[dict[str, float]] | None = None) -> tuple[DenseClassifier, dict[str, Any]]:
    """Train one model, early-stopped on ``monitor`` (``val_accuracy`` or ``val_loss``), and return
    it with its best weights (``monitor=None``: no early stopping, the last epoch's weights).

    With ``checkpoints`` it is the run's model (last/best checkpoints, metrics, resume); without,
    a cross-validation fold or a lesson's training that leaves no files. A ``history`` list gets
    each epoch's metrics, with the training set's loss and accuracy measured in eval mode.
    """
    model = build_model(config, *channel_stats(train_x)).to(device)
    batches = engine.make_batches([train_x, train_y], config.batch_size, device, shuffle=True,
                                  drop_last=len(train_x) > config.batch_size, seed=config.seed)
    val_x, val_y = val_x.to(device), val_y.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=epochs * len(batches), pct_start=0.15)
    stopper = engine.EarlyStopping(config.patience, mode="min" if monitor.endswith("loss") else "max") if monitor else None
    run.track(model, optimizer, stopper=stopper, scheduler=scheduler, classes=list(CLASSES),
              checkpoints=checkpoints, log_epochs=checkpoints)
    step_model = engine.prepare_model(model)

    for epoch in range(run.restore(), epochs + 1):
        train_loss = train_one_epoch(step_model, batches, optimizer, scheduler, run, epoch, epochs, device, config, label)
        val = evaluate(model, val_x, val_y, device)
        metrics = {"train_loss": train_loss, "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                   "lr": scheduler.get_last_lr()[0]}
        if history is not None:
            seen = evaluate(model, train_x, train_y, device)
            history.append({"epoch": epoch, **metrics, "train_eval_loss": seen["loss"], "train_accuracy": seen["accuracy"]})
        if run.end_epoch(epoch, epochs, metrics, monitor=monitor,
                         message=f"{label}epoch {epoch}/{epochs}: val accuracy {val['accuracy']:.3f}"):
            break
    best_epoch = run.load_best()
    best = {f"best_{monitor}": stopper.best} if stopper is not None else {}
    return model, {**best, "best_epoch": best_epoch, "epochs_run": run.completed_epochs}


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
    if config.lesson:
        check_data(config)
        return lessons.run_lesson(MODEL_NAME, config, teach, run, cancel_event, on_progress, experiments=2,
                                  settings=LESSON_DRY_RUN if config.dry_run else LESSON)
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


# --- lesson: dropout and early stopping against over-fitting --------------------------------


@dataclass(frozen=True)
class LessonSettings:
    epochs: int = 60  # enough for the plain MLP to learn the ~580 training images by heart
    val_fraction: float = 0.2  # ~145 validation images: small, so the claim is about gaps and curves
    dropout: float = 0.5
    patience: int = 8  # epochs without a lower validation loss before the regularised model stops
    train_images: int = 0  # the first N training images (0 = all)


LESSON = LessonSettings()
LESSON_DRY_RUN = LessonSettings(epochs=2, patience=1, train_images=256)
# What the claim asks (see lesson_claim_holds).
LESSON_MIN_TRAIN_ACCURACY = 0.95  # the plain MLP learns its training set (almost) by heart…
LESSON_MIN_LOSS_GROWTH = 1.5  # …while its validation loss ends at least this many times its minimum
LESSON_MIN_GAP_CUT = 0.15  # dropout + early stopping: a train–validation accuracy gap this much smaller


def teach(config: Config, notebook: lessons.Notebook, device: torch.device) -> lessons.Lesson:
    """Train the same MLP without any regularisation and with dropout + early stopping; compare."""
    settings = LESSON_DRY_RUN if config.dry_run else LESSON
    data = load_data(dataclasses.replace(config, train_limit=settings.train_images))
    train_part, val_part = split_indices(len(data["train_x"]), settings.val_fraction, config.seed)
    # Nothing else that fights over-fitting: no weight decay, flips or label smoothing in either.
    plain = dataclasses.replace(config, dropout=0.0, weight_decay=0.0, label_smoothing=0.0, flips=False, patience=0)
    regularised = dataclasses.replace(plain, dropout=settings.dropout, patience=settings.patience)

    def experiment(kind: str, kind_config: Config, monitor: str | None) -> dict[str, Any]:
        engine.seed_everything(config.seed)  # both start from the same random state
        history: list[dict[str, float]] = []
        started = time.perf_counter()
        model, fitted = fit(kind_config, data["train_x"][train_part], data["train_y"][train_part],
                            data["train_x"][val_part], data["train_y"][val_part], device, notebook.run,
                            settings.epochs, checkpoints=False, label=f"{kind}: ", monitor=monitor,
                            history=history)
        # The plain model is judged at its last epoch (nothing stops or picks it); the regularised
        # one at the epoch early stopping keeps (its weights are the ones load_best put back).
        kept = next((h for h in history if h["epoch"] == fitted["best_epoch"]), history[-1])
        return {"history": {name: [h[name] for h in history] for name in history[0]},
                "kept_epoch": kept["epoch"], "stopped_epoch": history[-1]["epoch"],
                "train_accuracy": kept["train_accuracy"], "val_accuracy": kept["val_accuracy"],
                "val_loss": kept["val_loss"], "min_val_loss": min(h["val_loss"] for h in history),
                "test_accuracy": accuracy(model, data["test_x"], data["test_y"], device),
                "train_seconds": round(time.perf_counter() - started, 1)}

    no_regularisation = notebook.experiment("no regularisation", lambda: experiment("no regularisation", plain, None))
    with_dropout = notebook.experiment("dropout and early stopping",
                                       lambda: experiment("dropout + early stopping", regularised, "val_loss"))
    figures = lesson_figures(no_regularisation, with_dropout)
    figures.update(epochs=settings.epochs, dropout=settings.dropout, patience=settings.patience,
                   train_images=len(train_part), val_images=len(val_part), test_images=len(data["test_y"]))
    held = lesson_claim_holds(figures)
    plot_lesson(figures, no_regularisation["history"], with_dropout["history"], notebook.plot_path)
    return lessons.Lesson(
        title="Dropout and early stopping against over-fitting",
        claim=(f"without regularisation the MLP reaches ≥ {LESSON_MIN_TRAIN_ACCURACY:g} training accuracy while "
               f"its validation loss ends ≥ {LESSON_MIN_LOSS_GROWTH:g}× its minimum (over-fitting); with dropout "
               f"and early stopping the train–validation accuracy gap is at least {LESSON_MIN_GAP_CUT:g} smaller"),
        held=held, figures=figures, reading=lesson_reading(figures, held), plot=notebook.plot_path)


def lesson_figures(plain: dict[str, Any], regularised: dict[str, Any]) -> dict[str, Any]:
    """The numbers the claim and the reading use, from the two experiments' results."""
    figures: dict[str, Any] = {}
    for prefix, part in (("plain", plain), ("regularised", regularised)):
        figures.update({
            f"{prefix}_train_accuracy": part["train_accuracy"], f"{prefix}_val_accuracy": part["val_accuracy"],
            f"{prefix}_gap": part["train_accuracy"] - part["val_accuracy"], f"{prefix}_val_loss": part["val_loss"],
            f"{prefix}_min_val_loss": part["min_val_loss"], f"{prefix}_test_accuracy": part["test_accuracy"],
            f"{prefix}_kept_epoch": part["kept_epoch"], f"{prefix}_stopped_epoch": part["stopped_epoch"],
        })
    figures["plain_loss_growth"] = plain["val_loss"] / max(plain["min_val_loss"], 1e-12)
    figures["gap_cut"] = figures["plain_gap"] - figures["regularised_gap"]
    return figures


def lesson_claim_holds(figures: dict[str, Any]) -> bool:
    """The plain MLP over-fits (learns the training set, validation loss grows) and dropout with
    early stopping cuts the train–validation accuracy gap by at least LESSON_MIN_GAP_CUT."""
    return over_fits(figures) and figures["gap_cut"] >= LESSON_MIN_GAP_CUT


def over_fits(figures: dict[str, Any]) -> bool:
    """The plain MLP learned its training set while its validation loss grew from its minimum."""
    return (figures["plain_train_accuracy"] >= LESSON_MIN_TRAIN_ACCURACY
            and figures["plain_loss_growth"] >= LESSON_MIN_LOSS_GROWTH)


def lesson_reading(figures: dict[str, Any], held: bool) -> dict[str, str]:
    """Two sentences per language, made of the measured figures."""
    f = figures
    first_en = (f"Without any regularisation the MLP reached {f['plain_train_accuracy']:.0%} training accuracy "
                f"but {f['plain_val_accuracy']:.0%} on validation after {f['plain_stopped_epoch']} epochs, and its "
                f"validation loss ended {f['plain_loss_growth']:.1f}× its minimum"
                + (": it learned the training images, not cats and dogs." if over_fits(f) else "."))
    first_es = (f"Sin ninguna regularización el MLP llegó a un {f['plain_train_accuracy']:.0%} de acierto en "
                f"entrenamiento pero a un {f['plain_val_accuracy']:.0%} en validación tras {f['plain_stopped_epoch']} "
                f"épocas, y su pérdida de validación terminó en {f['plain_loss_growth']:.1f} veces su mínimo"
                + (": aprendió las imágenes de entrenamiento, no gatos y perros." if over_fits(f) else "."))
    second_en = (f"With dropout {f['dropout']:g} and early stopping (kept epoch {f['regularised_kept_epoch']}, stopped "
                 f"at {f['regularised_stopped_epoch']}) the train–validation gap was {f['regularised_gap']:.2f} "
                 f"({f['regularised_train_accuracy']:.0%} against {f['regularised_val_accuracy']:.0%}) instead of "
                 f"{f['plain_gap']:.2f}")
    second_es = (f"Con dropout {f['dropout']:g} y parada temprana (época guardada {f['regularised_kept_epoch']}, "
                 f"parada en la {f['regularised_stopped_epoch']}) la diferencia entre entrenamiento y validación "
                 f"fue {f['regularised_gap']:.2f} ({f['regularised_train_accuracy']:.0%} frente a "
                 f"{f['regularised_val_accuracy']:.0%}) en vez de {f['plain_gap']:.2f}")
    if held:
        second_en += f", {f['gap_cut']:.2f} smaller, as claimed."
        second_es += f", {f['gap_cut']:.2f} menor, como se afirmaba."
    else:
        second_en += f"; the claim did not hold ({', '.join(failed_parts(f))})."
        second_es += f"; la afirmación no se cumplió ({', '.join(failed_parts(f, 'es'))})."
    return {"en": f"{first_en} {second_en}", "es": f"{first_es} {second_es}"}


def failed_parts(figures: dict[str, Any], language: str = "en") -> list[str]:
    """Which parts of the claim failed, in words."""
    parts = []
    if figures["plain_train_accuracy"] < LESSON_MIN_TRAIN_ACCURACY:
        parts.append({"en": "the plain MLP did not learn its training set",
                      "es": "el MLP sin regularizar no aprendió su conjunto de entrenamiento"}[language])
    if figures["plain_loss_growth"] < LESSON_MIN_LOSS_GROWTH:
        parts.append({"en": "its validation loss did not grow enough",
                      "es": "su pérdida de validación no creció lo bastante"}[language])
    if figures["gap_cut"] < LESSON_MIN_GAP_CUT:
        parts.append({"en": f"the gap shrank by less than {LESSON_MIN_GAP_CUT:g}",
                      "es": f"la diferencia bajó menos de {LESSON_MIN_GAP_CUT:g}"}[language])
    return parts


def plot_lesson(figures: dict[str, Any], plain: dict[str, list[float]], regularised: dict[str, list[float]],
                path: Path) -> Path:
    """Left: training and validation accuracy per epoch for both; right: the losses, early stop marked."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window (background threads, servers)
    import matplotlib.pyplot as plt

    fig, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(9, 4), dpi=110)
    curves = ((plain, "no regularisation", "tab:red"), (regularised, "dropout + early stopping", "tab:blue"))
    for history, name, color in curves:  # dashed: the training set, solid: validation
        epochs = history["epoch"]
        accuracy_axis.plot(epochs, history["train_accuracy"], color=color, linestyle="--", label=f"{name}, train")
        accuracy_axis.plot(epochs, history["val_accuracy"], color=color, label=f"{name}, validation")
        loss_axis.plot(epochs, history["train_eval_loss"], color=color, linestyle="--", label=f"{name}, train")
        loss_axis.plot(epochs, history["val_loss"], color=color, label=f"{name}, validation")
    for axis in (accuracy_axis, loss_axis):
        axis.axvline(figures["regularised_kept_epoch"], color="tab:blue", linestyle=":", label="early stopping keeps")
        axis.set_xlabel("epoch")
        axis.grid(True, alpha=0.3)
    accuracy_axis.set_ylabel("accuracy")
    accuracy_axis.set_title("accuracy")
    loss_axis.set_ylabel("cross-entropy loss")
    loss_axis.set_yscale("log")
    loss_axis.set_title("loss")
    accuracy_axis.legend(fontsize=7, loc="lower right")
    fig.suptitle("Cats vs dogs MLP: over-fitting, and dropout with early stopping against it")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


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
