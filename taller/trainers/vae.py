"""Variational autoencoder on MNIST (or Fashion-MNIST), β configurable.

As in pytorch/examples ``vae/main.py``: a dense encoder to the mean and log-variance of a
Gaussian latent, the reparameterisation trick, a dense decoder with Bernoulli pixels. The loss
is reconstruction (binary cross-entropy, summed over pixels) + β·KL. On the test set the run
reports, per image in nats, the ELBO (always with β = 1, so runs with different β compare), the
reconstruction term and the KL term. It saves a grid of new samples drawn from the prior and a
2-D latent traversal (the two latent dimensions that carry most information, the others at 0).

Fashion-MNIST is used with ``--dataset fashion-mnist`` when its IDX files are present (the
Debian package ``dataset-fashion-mnist`` or the official files in the data folder).

The lesson (``--lesson``) is the β trade-off: the same VAE trained alike with β = 0.25, 0.5, 1, 2
and 4, and on the test set the reconstruction term and the KL term of each: a larger β buys a
code closer to the prior (less KL) with blurrier reconstructions (``lesson.png``, with samples
from the prior for each β).

    python -m taller.trainers.vae --epochs 10 --beta 1.0
    python -m taller.trainers.vae --dry-run
    python -m taller.trainers.vae --lesson
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
from taller.trainers.autoencoder import pixels_to_text, text_to_pixels
from taller.trainers.images import load_idx_dataset, save_grid

MODEL_NAME = "vae"


@dataclass
class Config:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    hidden: int = 512
    latent_dim: int = 16
    beta: float = 1.0
    val_fraction: float = 0.1
    patience: int = 3
    train_limit: int = 0
    dataset: str = "mnist"  # or "fashion-mnist"
    data_path: str = ""
    seed: int = 0
    device: str = "auto"
    dry_run: bool = False
    resume: bool = False
    lesson: bool = False  # run the lesson (the β trade-off) instead of one training


# --- data -----------------------------------------------------------------------------------------


def check_data(config: Config) -> None:
    """Raise DataNotFoundError (naming the files and where to put them) when the data is missing."""
    resolve(config.dataset, explicit=config.data_path or None)


def load_data(config: Config) -> dict[str, torch.Tensor]:
    raw = load_idx_dataset(config.dataset, config.data_path or None)
    train = torch.from_numpy(raw["train_images"].reshape(-1, 784).astype(np.float32) / 255.0)
    test = torch.from_numpy(raw["test_images"].reshape(-1, 784).astype(np.float32) / 255.0)
    if config.train_limit:
        train = train[: config.train_limit]
    val_count = max(1, int(len(train) * config.val_fraction))
    return {"train": train[:-val_count], "val": train[-val_count:], "test": test}


# --- model ----------------------------------------------------------------------------------------


class VAE(nn.Module):
    def __init__(self, hidden: int = 512, latent_dim: int = 16) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU())
        self.to_mean = nn.Linear(hidden // 2, latent_dim)
        self.to_logvar = nn.Linear(hidden // 2, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden // 2), nn.ReLU(), nn.Linear(hidden // 2, hidden), nn.ReLU(), nn.Linear(hidden, 784)
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mean(h), self.to_logvar(h)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z).float())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encode(x)
        # Reparameterisation: z = μ + σ·ε keeps the sample differentiable in μ and σ.
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        return self.decode_logits(z), mean, logvar


def build_model(config: Config) -> VAE:
    return VAE(config.hidden, config.latent_dim)


def loss_terms(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image reconstruction (BCE summed over pixels), per-image KL per dimension, and means."""
    logits, mean, logvar = model(x)
    reconstruction = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="none").sum(1)
    kl_per_dim = -0.5 * (1 + logvar.float() - mean.float() ** 2 - logvar.float().exp())
    return reconstruction, kl_per_dim, mean


def compute_loss(model: nn.Module, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """The β-VAE objective per image: reconstruction + β·KL (averaged over the batch)."""
    reconstruction, kl_per_dim, _ = loss_terms(model, x)
    return (reconstruction + beta * kl_per_dim.sum(1)).mean()


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 2048) -> dict[str, Any]:
    """Test-set ELBO (β = 1), reconstruction and KL per image in nats, and KL per latent dimension."""
    model.eval()
    reconstruction = torch.zeros((), device=device)
    kl_dims = torch.zeros(model.latent_dim, device=device)
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        with engine.autocast(device):
            recon, kl_per_dim, _ = loss_terms(model, batch)
        reconstruction += recon.sum()
        kl_dims += kl_per_dim.sum(0)
    model.train()
    count = len(images)
    recon_value = reconstruction.item() / count
    kl_per_dim = (kl_dims / count).cpu()
    kl_value = float(kl_per_dim.sum())
    return {"elbo": -(recon_value + kl_value), "reconstruction": recon_value, "kl": kl_value,
            "kl_per_dim": kl_per_dim.tolist()}


# --- train ----------------------------------------------------------------------------------------


def train_one_epoch(model, batches, optimizer, scheduler, run: engine.Run, epoch: int, epochs: int, device,
                    beta: float) -> float:
    """One pass over the training batches; returns the mean training loss (negative β-ELBO)."""
    running = torch.zeros((), device=device)  # summed on the device: no sync per step
    for step, (images,) in run.steps(batches):
        with engine.autocast(device):
            loss = compute_loss(model, images, beta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running += loss.detach()
        run.progress(epoch, epochs, step, len(batches), loss.detach(), metric_name="val_elbo")
    return running.item() / max(1, run.epoch_trained)


def fit(model: VAE, data: dict[str, torch.Tensor], config: Config, run: engine.Run, device: torch.device,
        epochs: int, checkpoints: bool = True, label: str = "") -> engine.EarlyStopping:
    """Train ``model`` with ``config.beta``, keep the best validation-ELBO epoch's weights; returns the stopper.

    With ``checkpoints`` it is the run's model (last/best checkpoints, metrics, resume); without,
    a side training of the lesson that leaves no files.
    """
    batches = engine.make_batches([data["train"]], config.batch_size, device, shuffle=True, seed=config.seed)
    val_images = data["val"].to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(batches), eta_min=config.lr / 20)
    stopper = engine.EarlyStopping(config.patience, mode="max")  # on the validation ELBO
    run.track(model, optimizer, stopper=stopper, scheduler=scheduler, checkpoints=checkpoints, log_epochs=checkpoints)
    step_model = engine.prepare_model(model)

    for epoch in range(run.restore(), epochs + 1):
        train_loss = train_one_epoch(step_model, batches, optimizer, scheduler, run, epoch, epochs, device, config.beta)
        val = evaluate(model, val_images, device)
        metrics = {"train_loss": train_loss, "val_elbo": val["elbo"], "val_reconstruction": val["reconstruction"],
                   "val_kl": val["kl"]}
        if run.end_epoch(epoch, epochs, metrics, monitor="val_elbo",
                         message=f"{label}epoch {epoch}/{epochs}: val ELBO {val['elbo']:.1f}"):
            break
    run.load_best()
    return stopper


def train(config: Config, run: engine.Run | None = None, cancel_event=None, on_progress=None) -> dict[str, Any]:
    """Train the VAE, keep the best validation ELBO, report test ELBO/recon/KL, save sample PNGs."""
    if config.latent_dim < 2:
        raise ValueError("latent_dim must be at least 2 (the traversal needs two dimensions)")
    if config.lesson:
        check_data(config)
        return lessons.run_lesson(MODEL_NAME, config, teach, run, cancel_event, on_progress,
                                  experiments=len(LESSON.betas),
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

        test = evaluate(model, data["test"], device)
        samples = save_samples(model, 64, run.dir / "samples.png", seed=config.seed)
        traversal = save_traversal(model, test["kl_per_dim"], run.dir / "latent_traversal.png")
        return run.finish({
            "test_elbo": test["elbo"], "test_reconstruction": test["reconstruction"], "test_kl": test["kl"],
            "beta": config.beta, "dataset": config.dataset, "best_val_elbo": stopper.best, "epochs_run": run.completed_epochs,
            "train_seconds": round(train_seconds, 2), "device": str(device), "images": [str(samples), str(traversal)],
        })


# --- lesson: the β trade-off --------------------------------------------------------------------


@dataclass(frozen=True)
class LessonSettings:
    betas: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    train_images: int = 0  # the first N training images (0 = all 60,000, 10 % of them for validation)
    epochs: int = 4  # the same for every β, no early stopping: each gets the same training
    test_images: int = 10_000
    samples: int = 8  # drawn from the prior with the same z for every β, for the plot


LESSON = LessonSettings()
# The same path on three batches per β, for tests and a quick check.
LESSON_DRY_RUN = LessonSettings(train_images=128 * 3 + 42, epochs=1, test_images=512)
# A latent dimension with less KL than this (nats per image) carries next to nothing: the
# posterior there is the prior. How many dimensions stay above it shows what β does to the code.
ACTIVE_DIMENSION_NATS = 0.1


def teach(config: Config, notebook: lessons.Notebook, device: torch.device) -> lessons.Lesson:
    """Train the same VAE with each β alike; compare the test reconstruction and KL terms."""
    settings = LESSON_DRY_RUN if config.dry_run else LESSON
    data = load_data(dataclasses.replace(config, train_limit=settings.train_images))
    test = data["test"][: settings.test_images]

    def experiment(beta: float) -> dict[str, Any]:
        engine.seed_everything(config.seed)  # every β starts from the same weights and batches
        # No early stopping: each β trains for the same epochs (patience 0 only keeps the best epoch).
        beta_config = dataclasses.replace(config, beta=beta, patience=0)
        model = build_model(beta_config).to(device)
        started = time.perf_counter()
        fit(model, data, beta_config, notebook.run, device, settings.epochs, checkpoints=False, label=f"β = {beta:g}: ")
        terms = evaluate(model, test, device)
        return {"beta": beta, "reconstruction": terms["reconstruction"], "kl": terms["kl"], "elbo": terms["elbo"],
                "active_dimensions": sum(value > ACTIVE_DIMENSION_NATS for value in terms["kl_per_dim"]),
                "train_seconds": round(time.perf_counter() - started, 1),
                "samples": pixels_to_text(sample(model, settings.samples, seed=config.seed))}

    parts = [notebook.experiment(f"beta {beta:g}", lambda beta=beta: experiment(beta)) for beta in settings.betas]
    figures = {"betas": [part["beta"] for part in parts],
               "reconstruction": [part["reconstruction"] for part in parts],
               "kl": [part["kl"] for part in parts],
               "elbo": [part["elbo"] for part in parts],
               "active_dimensions": [part["active_dimensions"] for part in parts],
               "latent_dim": config.latent_dim, "epochs": settings.epochs,
               "train_images": len(data["train"]), "test_images": len(test)}
    held = lesson_claim_holds(figures)
    plot_lesson(figures, [text_to_pixels(part["samples"]) for part in parts], notebook.plot_path)
    betas = ", ".join(f"{beta:g}" for beta in figures["betas"])
    return lessons.Lesson(
        title="The β trade-off of a VAE",
        claim=(f"as β grows ({betas}), the test KL term falls and the test reconstruction error rises "
               "at every step"),
        held=held, figures=figures, reading=lesson_reading(figures, held), plot=notebook.plot_path)


def lesson_claim_holds(figures: dict[str, Any]) -> bool:
    """Whether, β by β, the KL term falls and the reconstruction term rises at every step."""
    kl, reconstruction = figures["kl"], figures["reconstruction"]
    kl_falls = all(later < earlier for earlier, later in zip(kl, kl[1:]))
    reconstruction_rises = all(later > earlier for earlier, later in zip(reconstruction, reconstruction[1:]))
    return kl_falls and reconstruction_rises


def lesson_reading(figures: dict[str, Any], held: bool) -> dict[str, str]:
    """Two sentences per language, made of the measured figures."""
    betas, kl, reconstruction = figures["betas"], figures["kl"], figures["reconstruction"]
    active = figures["active_dimensions"]
    first_en = (f"From β = {betas[0]:g} to β = {betas[-1]:g} the test KL term went from {kl[0]:.1f} to "
                f"{kl[-1]:.1f} nats per image and the reconstruction error from {reconstruction[0]:.1f} to "
                f"{reconstruction[-1]:.1f} nats, with {active[0]} then {active[-1]} of the "
                f"{figures['latent_dim']} latent dimensions in use.")
    first_es = (f"De β = {betas[0]:g} a β = {betas[-1]:g} el término KL de prueba pasó de {kl[0]:.1f} a "
                f"{kl[-1]:.1f} nats por imagen y el error de reconstrucción de {reconstruction[0]:.1f} a "
                f"{reconstruction[-1]:.1f} nats, con {active[0]} y luego {active[-1]} de las "
                f"{figures['latent_dim']} dimensiones latentes en uso.")
    if held:
        second_en = ("Every larger β paid for a code closer to the prior (a smaller KL term) with a "
                     "larger reconstruction error: that is the trade-off β sets.")
        second_es = ("Cada β mayor pagó un código más cercano a la distribución previa (un término KL menor) con un "
                     "error de reconstrucción mayor: ese es el compromiso que fija β.")
    else:
        steps = [f"{a:g}→{b:g}" for a, b, k0, k1, r0, r1 in zip(betas, betas[1:], kl, kl[1:], reconstruction,
                                                                   reconstruction[1:]) if not (k1 < k0 and r1 > r0)]
        second_en = (f"The claim did not hold at every step: at {', '.join(steps)} the KL did not fall or the "
                     "reconstruction error did not rise.")
        second_es = (f"La afirmación no se cumplió en cada paso: en {', '.join(steps)} el KL no bajó o el error "
                     "de reconstrucción no subió.")
    return {"en": f"{first_en} {second_en}", "es": f"{first_es} {second_es}"}


def plot_lesson(figures: dict[str, Any], samples: list[np.ndarray], path: Path) -> Path:
    """Left: reconstruction and KL terms against β (two y axes); right: prior samples per β."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window (background threads, servers)
    import matplotlib.pyplot as plt

    betas = figures["betas"]
    fig, (terms, grid) = plt.subplots(1, 2, figsize=(9, 4), dpi=110, gridspec_kw={"width_ratios": [1, 1.1]})
    terms.plot(betas, figures["reconstruction"], marker="o", color="tab:blue", label="reconstruction")
    terms.set_xscale("log", base=2)
    terms.set_xticks(betas, [f"{beta:g}" for beta in betas])
    terms.set_xlabel("β")
    terms.set_ylabel("reconstruction error (nats per image)", color="tab:blue")
    kl_axis = terms.twinx()
    kl_axis.plot(betas, figures["kl"], marker="s", color="tab:red", label="KL")
    kl_axis.set_ylabel("KL term (nats per image)", color="tab:red")
    terms.set_title("test set")
    terms.grid(True, alpha=0.3)

    rows = [np.concatenate(list(images), axis=1) for images in samples]
    grid.imshow(np.concatenate(rows, axis=0), cmap="gray", vmin=0, vmax=1)
    grid.set_yticks([28 * i + 14 for i in range(len(rows))], [f"β = {beta:g}" for beta in betas])
    grid.set_xticks([])
    grid.set_title("samples from the prior (the same z)")
    fig.suptitle(f"VAE on MNIST: the β trade-off ({figures['epochs']} epochs each)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- use a trained model -------------------------------------------------------------------------


@torch.no_grad()
def sample(model: VAE, count: int, seed: int | None = None) -> torch.Tensor:
    """``count`` new images (count, 28, 28) decoded from z ~ N(0, I)."""
    model.eval()
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    z = torch.randn(count, model.latent_dim, generator=generator)
    device = next(model.parameters()).device
    return model.decode(z.to(device)).cpu().reshape(-1, 28, 28)


def save_samples(model: VAE, count: int, path: Path, seed: int | None = None) -> Path:
    images = sample(model, count, seed).numpy()
    per_row = min(8, count)
    rows = [images[i : i + per_row] for i in range(0, count, per_row)]
    if len(rows[-1]) < per_row:  # pad the last row so the grid stays rectangular
        rows[-1] = np.concatenate([rows[-1], np.ones((per_row - len(rows[-1]), 28, 28), np.float32)])
    return save_grid(rows, path, scale=3)


@torch.no_grad()
def save_traversal(model: VAE, kl_per_dim: list[float], path: Path, steps: int = 11, span: float = 3.0) -> Path:
    """A steps×steps grid over the two most informative latent dimensions (others held at 0)."""
    model.eval()
    first, second = (int(i) for i in np.argsort(kl_per_dim)[::-1][:2])
    values = torch.linspace(-span, span, steps)
    device = next(model.parameters()).device
    rows = []
    for a in values:
        z = torch.zeros(steps, model.latent_dim)
        z[:, first] = a
        z[:, second] = values
        rows.append(model.decode(z.to(device)).cpu().reshape(-1, 28, 28).numpy())
    return save_grid(rows, path, scale=2)


def load(path: str | Path | None = None, device: str = "cpu") -> tuple[VAE, Config]:
    checkpoint, config = engine.trained_checkpoint(MODEL_NAME, Config, path, "VAE")
    model = build_model(config)
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), config


def generate(count: int = 16, output: Path | None = None) -> dict[str, Any]:
    """``count`` new samples from the latest trained VAE, as one PNG grid."""
    model, config = load()
    output = output or engine.outputs_folder() / f"vae-{engine.new_run_id('samples')}.png"
    path = save_samples(model, count, output)
    return {"images": [str(path)], "count": count, "dataset": config.dataset}


if __name__ == "__main__":
    raise SystemExit(engine.cli(Config, train))
