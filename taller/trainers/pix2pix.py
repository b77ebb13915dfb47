"""pix2pix: image-to-image translation with a conditional GAN (Isola et al., 2017).

Generator: a U-Net (encoder–decoder with skip connections, down to 1×1, dropout in the three
innermost decoder blocks). Discriminator: a PatchGAN that judges overlapping patches of the
(input, output) pair. Loss: adversarial (binary cross-entropy on logits) + λ·L1 to the target,
Adam with β1 = 0.5 and separate learning rates for G and D, constant then linearly decaying.

Data: CMP Facades in the standard paired format — ``facades/{train,val,test}/*.jpg``, each image
two 256×256 halves side by side — from the user's folder or ``facades.tar.gz`` (found by
``taller.data.resolve("facades")``). In the published files the left half is the photo and the
right half the label map, so the default ``direction="BtoA"`` translates label map → photo.

Facades cannot be downloaded on machines without internet, so ``dataset="cifar10-labels"``
builds a paired set in the same format from real CIFAR-10 images: the "label map" is the image
quantised to a fixed 8-colour palette with no dithering (flat colour regions, like facade labels),
and the model learns to paint the photo back. Tests and benchmarks use that set.

    python -m taller.trainers.pix2pix --data-path ~/data/facades --epochs 200
    python -m taller.trainers.pix2pix --dataset cifar10-labels --epochs 5
    python -m taller.trainers.pix2pix --dataset cifar10-labels --dry-run
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taller.config import get_settings
from taller.data import DataNotFoundError, resolve
from taller.trainers import engine
from taller.trainers.images import image_to_array, load_cifar10, open_image, save_grid

MODEL_NAME = "pix2pix"
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Eight flat colours for the synthetic label maps (the facade labels are flat colours too).
LABEL_PALETTE = [(0, 0, 0), (255, 255, 255), (200, 40, 40), (40, 160, 40), (40, 60, 200),
                 (230, 200, 40), (120, 120, 120), (140, 80, 30)]


@dataclass
class Config:
    epochs: int = 20
    batch_size: int = 4
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    l1_weight: float = 100.0  # λ in G's loss: adversarial + λ·L1
    base_channels: int = 64
    d_layers: int = 3  # PatchGAN depth: 3 gives 70×70 patches at 256×256
    image_size: int = 0  # 0 = the data set's own size (256 for facades, 32 for cifar10-labels)
    direction: str = "BtoA"  # BtoA: input = right half (facades: label map), target = left half
    dataset: str = "facades"  # or "cifar10-labels" (built from CIFAR-10, see the module docstring)
    data_path: str = ""  # facades folder or facades.tar.gz (default: the data resolver)
    synthetic_count: int = 2000  # cifar10-labels: training pairs to build
    patience: int = 0  # early stopping on validation L1 (0 = off: GAN losses wander)
    train_limit: int = 0
    seed: int = 0
    device: str = "auto"
    dry_run: bool = False
    resume: bool = False


# --- data -----------------------------------------------------------------------------------------


def _split_pair(array: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """A side-by-side pair (H, 2W, 3) → (input, target) following ``direction``."""
    width = array.shape[1] // 2
    left, right = array[:, :width], array[:, width : 2 * width]
    return (right, left) if direction == "BtoA" else (left, right)


def _decode_pair(data: bytes | Path, size: int, direction: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    image = open_image(io.BytesIO(data) if isinstance(data, bytes) else data, "RGB")
    if image.width < 2 * image.height - 2 or image.width > 2 * image.height + 2:
        raise ValueError(f"{name} is not a paired image (expected width = 2 × height, got {image.width}×{image.height})")
    image = image.resize((2 * size, size), Image.BICUBIC)
    return _split_pair(np.array(image, dtype=np.uint8), direction)


def _pair_files(source: Path) -> dict[str, list[tuple[str, bytes | Path]]]:
    """Paired image files per split from a facades folder or tarball (sorted by name)."""
    found: dict[str, list[tuple[str, bytes | Path]]] = {split: [] for split in SPLITS}
    if source.is_dir():
        root = source / "facades" if (source / "facades" / "train").is_dir() else source
        for split in SPLITS:
            if (root / split).is_dir():
                found[split] = [(p.name, p) for p in sorted((root / split).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        try:
            with tarfile.open(source, "r:*") as archive:
                for member in archive.getmembers():
                    parts = member.name.split("/")
                    if member.isfile() and len(parts) >= 2 and parts[-2] in SPLITS and member.name.lower().endswith(IMAGE_SUFFIXES):
                        handle = archive.extractfile(member)
                        if handle is not None:
                            found[parts[-2]].append((member.name, handle.read()))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ValueError(f"{source} is not a readable facades tarball: {exc}") from exc
        for split in SPLITS:
            found[split].sort(key=lambda item: item[0])
    if not found["train"]:
        raise DataNotFoundError(f"{source} holds no train/*.jpg paired images (expected facades/{{train,val,test}}/*.jpg)")
    return found


def build_paired_dataset(target: Path, count: int = 2000, source: str | Path | None = None) -> Path:
    """Write a facades-format paired set from real CIFAR-10 images: ``target/{train,val,test}/N.jpg``,
    each photo | palette-quantised label map (32×32 halves). Returns ``target``."""
    from PIL import Image

    raw = load_cifar10(source)
    palette_image = Image.new("P", (1, 1))
    flat = [value for colour in LABEL_PALETTE for value in colour]
    palette_image.putpalette(flat + flat[:3] * (256 - len(LABEL_PALETTE)))
    train_count = min(count, len(raw["train_images"]) * 9 // 10)
    val_count = min(max(16, count // 10), len(raw["train_images"]) - train_count)
    splits = {
        "train": raw["train_images"][:train_count],
        "val": raw["train_images"][train_count : train_count + val_count],
        "test": raw["test_images"][: max(16, count // 10)],
    }
    for split, images in splits.items():
        folder = target / split
        folder.mkdir(parents=True, exist_ok=True)
        for index, array in enumerate(images):
            photo = Image.fromarray(array)
            labels = photo.quantize(palette=palette_image, dither=Image.Dither.NONE).convert("RGB")
            pair = Image.new("RGB", (64, 32))
            pair.paste(photo, (0, 0))
            pair.paste(labels, (32, 0))
            pair.save(folder / f"{index}.jpg", quality=95)
    return target


def resolve_source(config: Config) -> Path:
    """The facades folder/tarball, or the synthetic CIFAR pairs (built into the cache once)."""
    if config.dataset == "facades":
        return resolve("facades", explicit=config.data_path or None)
    if config.dataset == "cifar10-labels":
        target = get_settings().cache_dir / f"pix2pix-cifar10-labels-{config.synthetic_count}"
        if not (target / "test").is_dir():
            # One folder per builder: the processes of a torchrun launch build it at the same time.
            partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
            build_paired_dataset(partial, config.synthetic_count, config.data_path or None)
            try:
                partial.rename(target)
            except OSError:  # another process renamed its copy first: keep that one
                if not (target / "test").is_dir():
                    raise
                shutil.rmtree(partial, ignore_errors=True)
        return target
    raise ValueError(f"unknown pix2pix dataset {config.dataset!r}: use facades or cifar10-labels")


def native_size(config: Config) -> int:
    if config.image_size:
        return config.image_size
    return 32 if config.dataset == "cifar10-labels" else 256


def check_data(config: Config) -> None:
    """Raise DataNotFoundError when facades (or, for cifar10-labels, CIFAR-10) is missing."""
    if config.dataset == "cifar10-labels":
        resolve("cifar10", explicit=config.data_path or None)
    elif config.dataset == "facades":
        resolve("facades", explicit=config.data_path or None)
    else:
        raise ValueError(f"unknown pix2pix dataset {config.dataset!r}: use facades or cifar10-labels")


def load_data(config: Config, splits: tuple[str, ...] = SPLITS, limit: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per split: (inputs, targets) as uint8 tensors (N, 3, S, S)."""
    if config.direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be AtoB or BtoA, got {config.direction!r}")
    size = native_size(config)
    if size < 8 or size & (size - 1):
        raise ValueError(f"image_size must be a power of two of at least 8, got {size}")
    files = _pair_files(resolve_source(config))
    if not files["val"]:  # some copies only ship train/test
        files["val"] = files["test"]
    out = {}
    for split in splits:
        items = files[split][:limit] if limit else files[split]
        if not items:
            continue
        pairs = [_decode_pair(data, size, config.direction, name) for name, data in items]
        inputs = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).contiguous()
        targets = torch.from_numpy(np.stack([p[1] for p in pairs])).permute(0, 3, 1, 2).contiguous()
        out[split] = (inputs, targets)
    return out


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 → floats in [-1, 1] (the generator ends in tanh)."""
    return images.float() / 127.5 - 1.0


def to_unit(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() + 1.0) / 2.0).clamp(0, 1)


# --- model ----------------------------------------------------------------------------------------


class UNetGenerator(nn.Module):
    """U-Net from size×size down to 1×1 and back, with skip connections between mirrored levels."""

    def __init__(self, image_size: int = 256, base: int = 64, max_channels: int = 512) -> None:
        super().__init__()
        depth = int(math.log2(image_size))
        channels = [min(base * 2**i, max_channels) for i in range(depth)]
        self.downs = nn.ModuleList()
        for i in range(depth):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(3 if i == 0 else channels[i - 1], channels[i], 4, 2, 1, bias=i in (0, depth - 1)))
            if 0 < i < depth - 1:  # no norm on the input layer or the 1×1 bottleneck
                layers.append(nn.BatchNorm2d(channels[i]))
            self.downs.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList()
        for j in range(depth):
            in_channels = channels[j] if j == depth - 1 else 2 * channels[j]
            if j == 0:
                block = [nn.ReLU(), nn.ConvTranspose2d(in_channels, 3, 4, 2, 1), nn.Tanh()]
            else:
                block = [nn.ReLU(), nn.ConvTranspose2d(in_channels, channels[j - 1], 4, 2, 1, bias=False),
                         nn.BatchNorm2d(channels[j - 1])]
                if j >= depth - 3 and depth > 4:  # pix2pix: dropout in the innermost decoder blocks
                    block.append(nn.Dropout(0.5))
            self.ups.append(nn.Sequential(*block))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        h = skips[-1]
        for j in reversed(range(len(self.ups))):
            if j < len(self.ups) - 1:
                h = torch.cat([h, skips[j]], dim=1)
            h = self.ups[j](h)
        return h


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, each judging one receptive-field patch of (input, image)."""

    def __init__(self, base: int = 64, layers: int = 3) -> None:
        super().__init__()
        modules: list[nn.Module] = [nn.Conv2d(6, base, 4, 2, 1), nn.LeakyReLU(0.2)]
        channels = base
        for n in range(1, layers + 1):
            out = min(base * 2**n, 512)
            stride = 2 if n < layers else 1
            modules += [nn.Conv2d(channels, out, 4, stride, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            channels = out
        modules.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.net = nn.Sequential(*modules)

    def forward(self, inputs: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([inputs, images], dim=1))


def build_models(config: Config) -> tuple[UNetGenerator, PatchDiscriminator]:
    size = native_size(config)
    # A small image leaves room for fewer PatchGAN layers (each halves the patch grid).
    layers = min(config.d_layers, max(1, int(math.log2(size)) - 3))
    return UNetGenerator(size, config.base_channels), PatchDiscriminator(config.base_channels, layers)


def discriminator_loss(discriminator: nn.Module, inputs, targets, fakes) -> torch.Tensor:
    real = discriminator(inputs, targets).float()
    fake = discriminator(inputs, fakes.detach()).float()
    # Halved as in pix2pix, so D learns at half the pace of G.
    return 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                  + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def generator_loss(discriminator: nn.Module, inputs, targets, fakes, l1_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    judged = discriminator(inputs, fakes).float()
    l1 = F.l1_loss(fakes.float(), targets)
    return F.binary_cross_entropy_with_logits(judged, torch.ones_like(judged)) + l1_weight * l1, l1


def compute_loss(generator: nn.Module, inputs_u8: torch.Tensor, targets_u8: torch.Tensor) -> torch.Tensor:
    """The L1 part of G's objective on uint8 batches (used by tests to watch G learn)."""
    return F.l1_loss(generator(to_signed(inputs_u8)).float(), to_signed(targets_u8))


@torch.no_grad()
def evaluate(generator: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device, batch_size: int = 64) -> float:
    """Mean absolute error per pixel on the [0, 1] scale between generated and target images."""
    generator.eval()
    total = torch.zeros((), device=device)
    for start in range(0, len(inputs), batch_size):
        x = to_signed(inputs[start : start + batch_size].to(device))
        y = to_signed(targets[start : start + batch_size].to(device))
        with engine.autocast(device):
            fake = generator(x)
        total += (fake.float() - y).abs().sum() / 2.0
    generator.train()
    return total.item() / inputs.numel()


# --- train ----------------------------------------------------------------------------------------


def linear_decay(epochs: int):
    """pix2pix's learning-rate factor per epoch: constant for the first half, then linearly to zero."""
    half = epochs / 2
    return lambda epoch_index: 1.0 if epoch_index < half else max(0.0, 1.0 - (epoch_index - half) / (half + 1))


def train_one_epoch(generator, discriminator, batches, optimizer_g, optimizer_d, run: engine.Run, epoch: int,
                    epochs: int, device, l1_weight: float) -> dict[str, float]:
    """One pass: a D step then a G step per batch; returns the mean D loss, G loss and L1 (on [0, 1])."""
    sums = torch.zeros(3, device=device)  # D loss, G loss, L1 — summed on the device
    for step, (inputs_u8, targets_u8) in run.steps(batches):
        inputs, targets = to_signed(inputs_u8), to_signed(targets_u8)
        flip = torch.rand(inputs.shape[0], 1, 1, 1, device=device) < 0.5  # same flip for both halves
        inputs = torch.where(flip, inputs.flip(3), inputs)
        targets = torch.where(flip, targets.flip(3), targets)
        with engine.autocast(device):
            fakes = generator(inputs)
            loss_d = discriminator_loss(discriminator, inputs, targets, fakes)
        optimizer_d.zero_grad(set_to_none=True)
        loss_d.backward()
        optimizer_d.step()
        with engine.autocast(device):
            loss_g, l1 = generator_loss(discriminator, inputs, targets, fakes, l1_weight)
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        sums += torch.stack([loss_d.detach(), loss_g.detach(), l1.detach()])
        run.progress(epoch, epochs, step, len(batches), loss_g.detach(), metric_name="val_l1")
    loss_d, loss_g, l1 = (sums / max(1, run.epoch_trained)).tolist()
    return {"loss_d": loss_d, "loss_g": loss_g, "train_l1": l1 / 2.0}


def train(config: Config, run: engine.Run | None = None, cancel_event=None, on_progress=None) -> dict[str, Any]:
    """Train G and D; keep the best validation L1; save a PNG of input | generated | target."""
    run = engine.start_run(MODEL_NAME, config, run, cancel_event, on_progress, check=check_data)
    with run:
        engine.seed_everything(config.seed)
        device = run.use_device(config.device)
        limit = config.batch_size * 3 if config.dry_run else config.train_limit
        data = load_data(config, ("train", "val"), limit=limit)
        epochs = 1 if config.dry_run else config.epochs
        train_inputs, train_targets = data["train"]
        val_inputs, val_targets = data["val"]
        if config.dry_run:
            val_inputs, val_targets = val_inputs[:16], val_targets[:16]
        # uint8 on the device (4× smaller than floats); converted per batch, which is cheap on a GPU.
        batches = engine.make_batches([train_inputs, train_targets], config.batch_size, device, shuffle=True, seed=config.seed)

        generator, discriminator = (m.to(device) for m in build_models(config))
        optimizer_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=(config.beta1, 0.999))
        optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
        scheduler_g = torch.optim.lr_scheduler.LambdaLR(optimizer_g, linear_decay(epochs))
        scheduler_d = torch.optim.lr_scheduler.LambdaLR(optimizer_d, linear_decay(epochs))
        stopper = engine.EarlyStopping(config.patience, mode="min")
        run.track(generator, optimizer_g, stopper=stopper, discriminator=discriminator, optimizer_d=optimizer_d,
                  scheduler_g=scheduler_g, scheduler_d=scheduler_d)
        step_g, step_d = engine.prepare_model(generator), engine.prepare_model(discriminator)

        started = time.perf_counter()
        for epoch in range(run.restore(), epochs + 1):
            losses = train_one_epoch(step_g, step_d, batches, optimizer_g, optimizer_d, run, epoch, epochs, device,
                                     config.l1_weight)
            scheduler_g.step()
            scheduler_d.step()
            metrics = {**losses, "val_l1": evaluate(generator, val_inputs, val_targets, device),
                       "lr_g": scheduler_g.get_last_lr()[0]}
            if run.end_epoch(epoch, epochs, metrics, monitor="val_l1", loss="loss_g"):
                break
        train_seconds = time.perf_counter() - started

        run.load_best()
        val_l1 = evaluate(generator, val_inputs, val_targets, device)
        # The trivial baseline (output = input) says how much translating actually helps.
        baseline_l1 = (val_inputs.float() - val_targets.float()).abs().mean().item() / 255.0
        picture = save_translations(generator, val_inputs[:6], val_targets[:6], run.dir / "translations.png")
        return run.finish({
            "val_l1": val_l1, "identity_baseline_l1": baseline_l1, "best_val_l1": stopper.best,
            "epochs_run": run.completed_epochs, "dataset": config.dataset, "image_size": native_size(config),
            "train_pairs": len(train_inputs), "train_seconds": round(train_seconds, 2), "device": str(device),
            "images": [str(picture)],
        })


# --- use a trained model -------------------------------------------------------------------------


@torch.no_grad()
def translate(generator: nn.Module, inputs_u8: torch.Tensor) -> torch.Tensor:
    """uint8 inputs (N, 3, S, S) → generated images in [0, 1] (N, S, S, 3) on CPU."""
    generator.eval()
    device = next(generator.parameters()).device
    out = generator(to_signed(inputs_u8.to(device)))
    return to_unit(out).permute(0, 2, 3, 1).cpu()


def save_translations(generator: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, path: Path) -> Path:
    """PNG with one example per row: input | generated | target (target omitted when None)."""
    generated = translate(generator, inputs).numpy()
    as_hwc = lambda t: t.permute(0, 2, 3, 1).numpy()  # noqa: E731 - tiny local helper
    rows = []
    for i in range(len(inputs)):
        row = [as_hwc(inputs[i : i + 1])[0], (generated[i] * 255).round().astype(np.uint8)]
        if targets is not None:
            row.append(as_hwc(targets[i : i + 1])[0])
        rows.append(np.stack(row))
    scale = max(1, 128 // inputs.shape[-1])
    return save_grid(rows, path, scale=scale)


def load(path: str | Path | None = None, device: str = "cpu") -> tuple[UNetGenerator, Config]:
    checkpoint, config = engine.trained_checkpoint(MODEL_NAME, Config, path, "pix2pix model")
    generator, _ = build_models(config)
    generator.load_state_dict(checkpoint["model"])
    return generator.to(device).eval(), config


def generate(count: int = 4, image_path: str | Path | None = None, output: Path | None = None) -> dict[str, Any]:
    """Translate the given label-map image, or ``count`` validation inputs, with the latest model."""
    generator, config = load()
    size = native_size(config)
    output = output or engine.outputs_folder() / f"pix2pix-{engine.new_run_id('translate')}.png"
    if image_path is not None:
        array = image_to_array(image_path, (size, size), mode="RGB")
        inputs = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()
        path = save_translations(generator, inputs, None, output)
        return {"images": [str(path)], "count": 1}
    data = load_data(config, ("val",), limit=count)
    inputs, targets = data["val"]
    path = save_translations(generator, inputs[:count], targets[:count], output)
    return {"images": [str(path)], "count": int(min(count, len(inputs)))}


if __name__ == "__main__":
    raise SystemExit(engine.cli(Config, train))
