"""Stacked autoencoder on MNIST: 784→512→256→128→64→128→256→512→784, MSE loss.

The workshop's seed model, trained properly: a validation split (the last 10 % of the training
set) for early stopping and the best checkpoint, a one-cycle learning-rate schedule, and the
test-set MSE reported at the end with a PNG grid of originals (top) against reconstructions
(bottom).

The lesson (``--lesson``) is the bottleneck size against reconstruction: one autoencoder
with codes of 2, 4, 8, 16, 32 and 64 numbers, each trained alike, and the test MSE of each with
the same test digits reconstructed by every size (``lesson.png``). It uses one hidden layer
(784→256→code→256→784): the seed's deep stack needs many more epochs before a wide code pays
(with 4 epochs each on all of MNIST its 16-, 32- and 64-number codes all stopped near test MSE
0.018; the one-layer model reaches 0.0076 with 64 numbers in 3 epochs).

    python -m taller.trainers.autoencoder --epochs 10
    python -m taller.trainers.autoencoder --dry-run
    python -m taller.trainers.autoencoder --lesson
"""

from __future__ import annotations

import base64
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
from taller.trainers.images import image_to_array, load_idx_dataset, save_grid

MODEL_NAME = "autoencoder"


@dataclass
class Config:
    epochs: int = 10
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-5
    bottleneck: int = 64
    val_fraction: float = 0.1
    patience: int = 3  # epochs without a better validation MSE before stopping
    train_limit: int = 0  # use only the first N training images (0 = all 60,000)
    dataset: str = "mnist"  # or "fashion-mnist"
    data_path: str = ""  # explicit folder with the four IDX files (default: the data resolver)
    seed: int = 0
    device: str = "auto"
    dry_run: bool = False  # one epoch of a few batches, to check that everything runs
    resume: bool = False
    lesson: bool = False  # run the lesson (bottleneck size against reconstruction) instead of one training


# --- data -----------------------------------------------------------------------------------------


def check_data(config: Config) -> None:
    """Raise DataNotFoundError (naming the files and where to put them) when MNIST is missing."""
    resolve(config.dataset, explicit=config.data_path or None)


def load_data(config: Config) -> dict[str, torch.Tensor]:
    """MNIST as float tensors in [0, 1], flattened to 784: train / val / test splits."""
    raw = load_idx_dataset(config.dataset, config.data_path or None)
    train = torch.from_numpy(raw["train_images"].reshape(-1, 784).astype(np.float32) / 255.0)
    test = torch.from_numpy(raw["test_images"].reshape(-1, 784).astype(np.float32) / 255.0)
    if config.train_limit:
        train = train[: config.train_limit]
    # A fixed split (no shuffle) so a resumed run validates on the same images.
    val_count = max(1, int(len(train) * config.val_fraction))
    return {"train": train[:-val_count], "val": train[-val_count:], "test": test}


# --- model ----------------------------------------------------------------------------------------


class Autoencoder(nn.Module):
    """The seed's symmetric stack of dense layers; sigmoid output for pixels in [0, 1].

    Two small choices help it leave the "average digit" plateau sooner than the seed's all-ReLU
    version (a quick check is in docs/trainers.md): the 64-number code is linear (a ReLU there
    lets code units die), and the output bias starts at the logit of the mean training image,
    so training begins from the average digit instead of from grey. ``hidden`` are the widths
    between the pixels and the code (the lesson uses a shallower one, see ``LessonSettings``).
    """

    def __init__(self, bottleneck: int = 64, hidden: tuple[int, ...] = (512, 256, 128)) -> None:
        super().__init__()
        sizes = [784, *hidden, bottleneck]
        encoder: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            encoder.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                encoder.append(nn.ReLU())
        decoder: list[nn.Module] = []
        back = sizes[::-1]
        for i, (a, b) in enumerate(zip(back[:-1], back[1:])):
            decoder += [nn.Linear(a, b), nn.Sigmoid() if i == len(back) - 2 else nn.ReLU()]
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)

    def init_output_bias(self, mean_image: torch.Tensor) -> None:
        """Start the decoder at the average training image (sigmoid⁻¹ of its pixels)."""
        mean = mean_image.detach().float().clamp(1e-3, 1 - 1e-3).to(self.decoder[-2].bias.device)
        with torch.no_grad():
            self.decoder[-2].bias.copy_(torch.log(mean / (1 - mean)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def build_model(config: Config) -> Autoencoder:
    return Autoencoder(config.bottleneck)


def compute_loss(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error per pixel, computed in float32 even under bf16 autocast."""
    return F.mse_loss(model(images).float(), images)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 2048) -> float:
    """Mean squared error per pixel over ``images`` (exact mean, whatever the batch size)."""
    model.eval()
    total = torch.zeros((), device=device)
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        with engine.autocast(device):
            out = model(batch)
        total += F.mse_loss(out.float(), batch, reduction="sum")
    model.train()
    return total.item() / (len(images) * images.shape[1])


# --- train ----------------------------------------------------------------------------------------


def train_one_epoch(model, batches, optimizer, scheduler, run: engine.Run, epoch: int, epochs: int, device) -> float:
    """One pass over the training batches; returns the mean training MSE."""
    running = torch.zeros((), device=device)  # summed on the device: no sync per step
    for step, (images,) in run.steps(batches):
        with engine.autocast(device):
            loss = compute_loss(model, images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running += loss.detach()
        run.progress(epoch, epochs, step, len(batches), loss.detach(), metric_name="val_mse")
    return running.item() / max(1, run.epoch_trained)


def fit(model: Autoencoder, data: dict[str, torch.Tensor], config: Config, run: engine.Run, device: torch.device,
        epochs: int, checkpoints: bool = True, label: str = "") -> engine.EarlyStopping:
    """Train ``model`` on ``data["train"]``, keep the best validation epoch's weights; returns the stopper.

    With ``checkpoints`` it is the run's model (last/best checkpoints, metrics, resume); without,
    a side training of the lesson that leaves no files.
    """
    batches = engine.make_batches([data["train"]], config.batch_size, device, shuffle=True, seed=config.seed)
    val = data["val"].to(device)
    model.init_output_bias(data["train"].mean(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=epochs * len(batches), pct_start=0.2
    )
    stopper = engine.EarlyStopping(config.patience, mode="min")
    run.track(model, optimizer, stopper=stopper, scheduler=scheduler, checkpoints=checkpoints, log_epochs=checkpoints)
    step_model = engine.prepare_model(model)

    for epoch in range(run.restore(), epochs + 1):
        train_mse = train_one_epoch(step_model, batches, optimizer, scheduler, run, epoch, epochs, device)
        metrics = {"train_mse": train_mse, "val_mse": evaluate(model, val, device), "lr": scheduler.get_last_lr()[0]}
        if run.end_epoch(epoch, epochs, metrics, monitor="val_mse", loss="train_mse",
                         message=f"{label}epoch {epoch}/{epochs}: val MSE {metrics['val_mse']:.4f}"):
            break
    run.load_best()
    return stopper


def train(config: Config, run: engine.Run | None = None, cancel_event=None, on_progress=None) -> dict[str, Any]:
    """Train, keep the best validation checkpoint, report test MSE and save the PNG grid."""
    if config.lesson:
        check_data(config)
        return lessons.run_lesson(MODEL_NAME, config, teach, run, cancel_event, on_progress,
                                  experiments=len(LESSON.bottlenecks),
                                  settings=LESSON_DRY_RUN if config.dry_run else LESSON)
    run = engine.start_run(MODEL_NAME, config, run, cancel_event, on_progress, check=check_data)
    with run:
        engine.seed_everything(config.seed)
        device = run.use_device(config.device)
        data = load_data(config)
        if config.dry_run:
            data = {"train": data["train"][: config.batch_size * 3], "val": data["val"][:512], "test": data["test"][:512]}
        epochs = 1 if config.dry_run else config.epochs

        model = build_model(config).to(device)
        started = time.perf_counter()
        stopper = fit(model, data, config, run, device, epochs)
        train_seconds = time.perf_counter() - started

        test_mse = evaluate(model, data["test"], device)
        grid = save_reconstructions(model, data["test"][:16], run.dir / "reconstructions.png", device)
        return run.finish({
            "test_mse": test_mse, "best_val_mse": stopper.best, "epochs_run": run.completed_epochs,
            "train_seconds": round(train_seconds, 2), "device": str(device), "images": [str(grid)],
        })


# --- lesson: the bottleneck size against reconstruction ---------------------------------------


@dataclass(frozen=True)
class LessonSettings:
    bottlenecks: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
    # One hidden layer: it learns in a few epochs what the seed's 512-256-128 stack needs many
    # for, so every code size gets to show what it can keep (measured: with the deep stack and
    # 4 epochs, the 16-, 32- and 64-number codes all stopped near MSE 0.018).
    hidden: tuple[int, ...] = (256,)
    train_images: int = 0  # the first N MNIST training images (0 = all 60,000, 10 % of them for validation)
    epochs: int = 3  # the same for every size, no early stopping: each code gets the same training
    test_images: int = 10_000
    shown_digits: int = 8  # test digits reconstructed by every size in the plot


LESSON = LessonSettings()
# The same path on three batches per size, for tests and a quick check.
LESSON_DRY_RUN = LessonSettings(train_images=256 * 3 + 85, epochs=1, test_images=512)
# What the claim asks: the test MSE falls at every larger code, and the largest code
# reconstructs at least this many times better than the smallest.
LESSON_MIN_RATIO = 3.0


def teach(config: Config, notebook: lessons.Notebook, device: torch.device) -> lessons.Lesson:
    """Train the same autoencoder with each bottleneck size alike; compare their test MSE."""
    settings = LESSON_DRY_RUN if config.dry_run else LESSON
    data = load_data(dataclasses.replace(config, train_limit=settings.train_images))
    test = data["test"][: settings.test_images]
    shown = data["test"][: settings.shown_digits]

    def experiment(size: int) -> dict[str, Any]:
        engine.seed_everything(config.seed)  # every size starts from the same random state
        # No early stopping: each size trains for the same epochs (patience 0 only keeps the best epoch).
        size_config = dataclasses.replace(config, bottleneck=size, patience=0)
        model = Autoencoder(size, settings.hidden).to(device)
        started = time.perf_counter()
        fit(model, data, size_config, notebook.run, device, settings.epochs, checkpoints=False,
            label=f"bottleneck {size}: ")
        model.eval()
        with torch.no_grad():
            pictures = model(shown.to(device)).float().cpu()
        return {"bottleneck": size, "test_mse": evaluate(model, test, device),
                "train_seconds": round(time.perf_counter() - started, 1),
                "reconstructions": pixels_to_text(pictures)}

    parts = [notebook.experiment(f"bottleneck {size}", lambda size=size: experiment(size))
             for size in settings.bottlenecks]
    figures = {"bottlenecks": [part["bottleneck"] for part in parts],
               "test_mse": [part["test_mse"] for part in parts],
               "epochs": settings.epochs, "train_images": len(data["train"]), "test_images": len(test)}
    figures["ratio"] = figures["test_mse"][0] / max(figures["test_mse"][-1], 1e-12)
    held = lesson_claim_holds(figures)
    plot_lesson(figures, shown, [text_to_pixels(part["reconstructions"]) for part in parts], notebook.plot_path)
    smallest, largest = figures["bottlenecks"][0], figures["bottlenecks"][-1]
    return lessons.Lesson(
        title="The bottleneck size against reconstruction",
        claim=(f"the test MSE falls at every larger bottleneck ({', '.join(map(str, figures['bottlenecks']))}) "
               f"and the {largest}-number code reconstructs at least {LESSON_MIN_RATIO:g}× better than the "
               f"{smallest}-number code"),
        held=held, figures=figures, reading=lesson_reading(figures, held), plot=notebook.plot_path)


def lesson_claim_holds(figures: dict[str, Any]) -> bool:
    """Whether the test MSE falls at every larger code and the largest beats the smallest ≥ 3×."""
    errors = figures["test_mse"]
    falls = all(later < earlier for earlier, later in zip(errors, errors[1:]))
    return falls and errors[0] >= LESSON_MIN_RATIO * errors[-1]


def lesson_reading(figures: dict[str, Any], held: bool) -> dict[str, str]:
    """Two sentences per language, made of the measured figures."""
    sizes, errors = figures["bottlenecks"], figures["test_mse"]
    rises = [f"{a}→{b}" for a, b, earlier, later in zip(sizes, sizes[1:], errors, errors[1:]) if later >= earlier]
    first_en = (f"Squeezed through {sizes[0]} numbers, a digit comes back with a test MSE of {errors[0]:.4f}; "
                f"through {sizes[-1]} numbers, {errors[-1]:.4f}, {figures['ratio']:.1f}× lower.")
    first_es = (f"Comprimido en {sizes[0]} números, un dígito vuelve con un MSE de prueba de {errors[0]:.4f}; "
                f"con {sizes[-1]} números, {errors[-1]:.4f}, {figures['ratio']:.1f} veces menos.")
    if held:
        second_en = ("The error fell at every larger bottleneck: a wider code keeps more of each digit, "
                     f"from its rough shape at {sizes[0]} numbers to the stroke details at {sizes[-1]}.")
        second_es = ("El error bajó con cada cuello de botella más ancho: un código mayor guarda más de cada "
                     f"dígito, desde su forma general con {sizes[0]} números hasta los detalles del trazo con {sizes[-1]}.")
    elif rises:
        epochs = figures["epochs"]
        second_en = (f"The claim did not hold: the error did not fall at {', '.join(rises)}, so after "
                     f"{epochs} epoch{'s' if epochs != 1 else ''} the wider codes were not all used.")
        second_es = (f"La afirmación no se cumplió: el error no bajó en {', '.join(rises)}, así que tras "
                     f"{epochs} época{'s' if epochs != 1 else ''} los códigos más anchos no se aprovecharon del todo.")
    else:
        second_en = (f"The claim did not hold: the error fell at every size, but by less than "
                     f"{LESSON_MIN_RATIO:g}× from the smallest code to the largest.")
        second_es = (f"La afirmación no se cumplió: el error bajó con cada tamaño, pero menos de "
                     f"{LESSON_MIN_RATIO:g} veces del código más pequeño al mayor.")
    return {"en": f"{first_en} {second_en}", "es": f"{first_es} {second_es}"}


def pixels_to_text(images: torch.Tensor) -> str:
    """Images in [0, 1] as base64 bytes (one byte a pixel): a few kB in lesson.json, not 100 kB of floats."""
    data = (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()
    return base64.b64encode(data).decode("ascii")


def text_to_pixels(text: str) -> np.ndarray:
    """The inverse of :func:`pixels_to_text`: (N, 28, 28) floats in [0, 1]."""
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(-1, 28, 28).astype(np.float32) / 255.0


def plot_lesson(figures: dict[str, Any], originals: torch.Tensor, reconstructions: list[np.ndarray], path: Path) -> Path:
    """Left: test MSE against bottleneck size; right: the same test digits reconstructed by each size."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window (background threads, servers)
    import matplotlib.pyplot as plt

    sizes = figures["bottlenecks"]
    fig, (curve, grid) = plt.subplots(1, 2, figsize=(9, 4), dpi=110, gridspec_kw={"width_ratios": [1, 1.1]})
    curve.plot(sizes, figures["test_mse"], marker="o")
    curve.set_xscale("log", base=2)
    curve.set_yscale("log")
    curve.set_xticks(sizes, [str(size) for size in sizes])
    curve.set_xlabel("bottleneck size (numbers in the code)")
    curve.set_ylabel("test MSE per pixel")
    curve.set_title("reconstruction error")
    curve.grid(True, which="both", alpha=0.3)

    rows = [originals.reshape(-1, 28, 28).numpy()] + reconstructions
    picture = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    grid.imshow(picture, cmap="gray", vmin=0, vmax=1)
    grid.set_yticks([28 * i + 14 for i in range(len(rows))], ["original"] + [str(size) for size in sizes])
    grid.set_xticks([])
    grid.set_ylabel("bottleneck size")
    grid.set_title("the same test digits")
    fig.suptitle(f"Autoencoder on MNIST: bottleneck size against reconstruction ({figures['epochs']} epochs each)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- use a trained model -------------------------------------------------------------------------


@torch.no_grad()
def save_reconstructions(model: nn.Module, images: torch.Tensor, path: Path, device: torch.device | str = "cpu") -> Path:
    """PNG with the originals on the top row and their reconstructions below."""
    model.eval()
    out = model(images.to(device)).float().cpu()
    return save_grid(
        [images.reshape(-1, 28, 28).numpy(), out.reshape(-1, 28, 28).numpy()],
        path,
        scale=3,
        labels=["original", "reconstructed"],
    )


def load(path: str | Path | None = None, device: str = "cpu") -> tuple[Autoencoder, Config]:
    """The latest trained autoencoder (best checkpoint of the newest finished run) or ``path``."""
    checkpoint, config = engine.trained_checkpoint(MODEL_NAME, Config, path, "autoencoder")
    model = build_model(config)
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), config


def prepare_image(path: str | Path) -> torch.Tensor:
    """Any image file → one MNIST-like 784 vector: grey, 28×28, white strokes on black."""
    array = image_to_array(path, (28, 28), mode="L").astype(np.float32) / 255.0
    if array.mean() > 0.5:  # dark ink on light paper: invert to MNIST's light-on-dark
        array = 1.0 - array
    return torch.from_numpy(array.reshape(1, 784))


def generate(count: int = 8, image_path: str | Path | None = None, output: Path | None = None) -> dict[str, Any]:
    """Reconstruct ``count`` test digits (or the given image) with the latest trained model."""
    model, config = load()
    if image_path is not None:
        images = prepare_image(image_path)
    else:
        raw = load_idx_dataset(config.dataset, config.data_path or None)
        pick = np.random.default_rng().choice(len(raw["test_images"]), size=count, replace=False)
        images = torch.from_numpy(raw["test_images"][pick].reshape(-1, 784).astype(np.float32) / 255.0)
    output = output or engine.outputs_folder() / f"autoencoder-{engine.new_run_id('recon')}.png"
    path = save_reconstructions(model, images, output)
    with torch.no_grad():
        mse = F.mse_loss(model(images), images).item()
    return {"images": [str(path)], "count": len(images), "mse": mse}


if __name__ == "__main__":
    raise SystemExit(engine.cli(Config, train))
