"""Stacked autoencoder on MNIST: 784→512→256→128→64→128→256→512→784, MSE loss.

The workshop's seed model, trained properly: a validation split (the last 10 % of the training
set) for early stopping and the best checkpoint, a one-cycle learning-rate schedule, and the
test-set MSE reported at the end with a PNG grid of originals (top) against reconstructions
(bottom).

    python -m taller.trainers.autoencoder --epochs 10
    python -m taller.trainers.autoencoder --dry-run
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
    so training begins from the average digit instead of from grey.
    """

    def __init__(self, bottleneck: int = 64) -> None:
        super().__init__()
        sizes = [784, 512, 256, 128, bottleneck]
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


def train(config: Config, run: engine.Run | None = None, cancel_event=None, on_progress=None) -> dict[str, Any]:
    """Train, keep the best validation checkpoint, report test MSE and save the PNG grid."""
    run = engine.start_run(MODEL_NAME, config, run, cancel_event, on_progress, check=check_data)
    with run:
        engine.seed_everything(config.seed)
        device = run.use_device(config.device)
        data = load_data(config)
        if config.dry_run:
            data = {"train": data["train"][: config.batch_size * 3], "val": data["val"][:512], "test": data["test"][:512]}
        epochs = 1 if config.dry_run else config.epochs
        batches = engine.make_batches([data["train"]], config.batch_size, device, shuffle=True, seed=config.seed)
        val = data["val"].to(device)

        model = build_model(config).to(device)
        model.init_output_bias(data["train"].mean(0))
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=epochs * len(batches), pct_start=0.2
        )
        stopper = engine.EarlyStopping(config.patience, mode="min")
        run.track(model, optimizer, stopper=stopper, scheduler=scheduler)
        step_model = engine.prepare_model(model)

        started = time.perf_counter()
        for epoch in range(run.restore(), epochs + 1):
            train_mse = train_one_epoch(step_model, batches, optimizer, scheduler, run, epoch, epochs, device)
            metrics = {"train_mse": train_mse, "val_mse": evaluate(model, val, device), "lr": scheduler.get_last_lr()[0]}
            if run.end_epoch(epoch, epochs, metrics, monitor="val_mse", loss="train_mse"):
                break
        train_seconds = time.perf_counter() - started

        run.load_best()
        test_mse = evaluate(model, data["test"], device)
        grid = save_reconstructions(model, data["test"][:16], run.dir / "reconstructions.png", device)
        return run.finish({
            "test_mse": test_mse, "best_val_mse": stopper.best, "epochs_run": run.completed_epochs,
            "train_seconds": round(train_seconds, 2), "device": str(device), "images": [str(grid)],
        })


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
