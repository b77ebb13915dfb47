"""Trainer benchmark: the engine's loop against a plain PyTorch DataLoader loop, per trainer.

For each trainer it trains the same model on the same data twice on the current device:

* **engine** — the trainer's own ``train()`` (data on the device, batches by indexing, bf16
  autocast and no per-step host sync on CUDA, checkpoints and metrics files included);
* **plain** — the textbook loop: ``DataLoader(TensorDataset(...), shuffle=True)``, a
  ``.to(device)`` per batch, ``loss.item()`` every step, float32, same optimizer and schedule.

It prints, per trainer, the final validation metric of each, the wall time of the training
(data loading excluded), the time until the validation metric first reached the target (checked
at epoch ends), and the ratio plain / engine. ``--json`` writes the rows to a file.

Other benchmark modules can add rows: ``bench/sequence_trainers.py`` (the sequence-trainers
issue), if present, is imported and each callable in its ``BENCHMARKS`` list is called with the
parsed ``argparse.Namespace`` and returns a dict row (or a list of them) with at least
``trainer``; the keys below are used when present.

    python bench/trainers.py --only autoencoder,dense_classifier --epochs 2
    python bench/trainers.py                      # every trainer, default sizes

``--ddp N`` measures something else: the throughput (training samples per second of the trainer's
own loop) of ``python -m taller.trainers.<name>`` in 1 process against the same command under
``torchrun --standalone --nproc_per_node N`` (distributed data-parallel; NCCL on GPUs, gloo on
CPUs), on the same data and global batch. On a CPU the cores are shared out: 1 process gets all
of them as torch threads, each of the N processes ``cores / N``.

    python bench/trainers.py --ddp 2 --only autoencoder --epochs 2 --train-limit 12000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from taller.trainers import engine  # noqa: E402


# --- the two ways of training ---------------------------------------------------------------------


def engine_run(module, config, metric_name: str, target: float, higher_is_better: bool) -> dict[str, Any]:
    """The trainer's own train(); times come from its epoch-end progress events."""
    marks: list[tuple[float, float]] = []
    started = [None]

    def on_progress(event: dict[str, Any]) -> None:
        if started[0] is None:
            started[0] = time.perf_counter()  # first step: data already loaded
        if event.get("metric_name") == metric_name and event.get("metric") is not None and event.get("step") == event.get("total"):
            marks.append((time.perf_counter(), float(event["metric"])))

    total_start = time.perf_counter()
    metrics = module.train(config, on_progress=on_progress)
    origin = started[0] or total_start
    reached = next((t - origin for t, m in marks if (m >= target if higher_is_better else m <= target)), None)
    return {
        "final_val": marks[-1][1] if marks else None,
        # The trainer times its own loop (data loading excluded, evaluation and checkpoints included).
        "train_s": metrics.get("train_seconds") or ((marks[-1][0] - origin) if marks else None),
        "time_to_target_s": reached,
        "epochs": len(marks),
        "metrics": metrics,
    }


def plain_run(
    tensors: list[torch.Tensor],
    batch_size: int,
    epochs: int,
    step: Callable[..., torch.Tensor],
    validate: Callable[[], float],
    target: float,
    higher_is_better: bool,
    device: torch.device,
    after_epoch: Callable[[], None] | None = None,
    drop_last: bool = False,
) -> dict[str, Any]:
    """The textbook loop: DataLoader, a copy to the device per batch, loss.item() every step."""
    loader = DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=True, drop_last=drop_last)
    start = time.perf_counter()
    reached, value = None, None
    for _ in range(epochs):
        total = 0.0
        for batch in loader:
            batch = [t.to(device) for t in batch]
            total += step(*batch).item()
        if after_epoch is not None:
            after_epoch()
        value = validate()
        if reached is None and (value >= target if higher_is_better else value <= target):
            reached = time.perf_counter() - start
    return {"final_val": value, "train_s": time.perf_counter() - start, "time_to_target_s": reached, "epochs": epochs}


def optimizer_step(optimizer, scheduler=None):
    def apply(loss: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return loss.detach()

    return apply


# --- per trainer ------------------------------------------------------------------------------------


def bench_autoencoder(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from taller.trainers import autoencoder as module

    config = module.Config(epochs=args.epochs or 10, train_limit=args.train_limit, patience=0, device=str(device))
    target = args.target if args.target is not None else 0.010

    def run_plain() -> dict[str, Any]:
        engine.seed_everything(config.seed)
        data = module.load_data(config)
        model = module.build_model(config).to(device)
        model.init_output_bias(data["train"].mean(0))
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps = config.epochs * -(-len(data["train"]) // config.batch_size)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps, pct_start=0.2)
        update = optimizer_step(optimizer, scheduler)
        val = data["val"].to(device)
        result = plain_run([data["train"]], config.batch_size, config.epochs, lambda x: update(module.compute_loss(model, x)),
                           lambda: module.evaluate(model, val, device), target, False, device)
        result["train_count"] = len(data["train"])
        return result

    # --plain-first checks that the order of the two runs does not bias the ratio.
    plain = run_plain() if args.plain_first else None
    engine_result = engine_run(module, config, "val_mse", target, higher_is_better=False)
    plain = plain or run_plain()
    return row("autoencoder", "val_mse", target, config, plain["train_count"], engine_result, plain,
               test=("test_mse", engine_result["metrics"]["test_mse"]))


def bench_dense_classifier(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from taller.trainers import dense_classifier as module

    config = module.Config(epochs=args.epochs or 30, train_limit=args.train_limit, folds=0, patience=0, device=str(device))
    target = args.target if args.target is not None else 0.60
    engine_result = engine_run(module, config, "val_accuracy", target, higher_is_better=True)
    engine.seed_everything(config.seed)
    data = module.load_data(config)
    train_part, val_part = module.split_indices(len(data["train_x"]), config.val_fraction, config.seed)
    train_x, train_y = data["train_x"][train_part], data["train_y"][train_part]
    model = module.build_model(config, *module.channel_stats(train_x)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # As the trainer does: drop the ragged last batch (a batch of a few images skews batch norm).
    per_epoch = len(train_x) // config.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.epochs * per_epoch, pct_start=0.15)
    update = optimizer_step(optimizer, scheduler)
    val_x, val_y = data["train_x"][val_part].to(device), data["train_y"][val_part].to(device)
    plain = plain_run([train_x, train_y], config.batch_size, config.epochs,
                      lambda x, y: update(module.compute_loss(model, x, y, config.label_smoothing)),
                      lambda: module.accuracy(model, val_x, val_y, device), target, True, device, drop_last=True)
    return row("dense_classifier", "val_accuracy", target, config, len(train_x), engine_result, plain,
               test=("test_accuracy", engine_result["metrics"]["test_accuracy"]))


def bench_vae(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from taller.trainers import vae as module

    config = module.Config(epochs=args.epochs or 10, train_limit=args.train_limit, patience=0, device=str(device))
    target = args.target if args.target is not None else -110.0
    engine_result = engine_run(module, config, "val_elbo", target, higher_is_better=True)
    engine.seed_everything(config.seed)
    data = module.load_data(config)
    model = module.build_model(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps = config.epochs * -(-len(data["train"]) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=config.lr / 20)
    update = optimizer_step(optimizer, scheduler)
    val = data["val"].to(device)
    plain = plain_run([data["train"]], config.batch_size, config.epochs,
                      lambda x: update(module.compute_loss(model, x, config.beta)),
                      lambda: module.evaluate(model, val, device)["elbo"], target, True, device)
    return row("vae", "val_elbo", target, config, len(data["train"]), engine_result, plain,
               test=("test_elbo", engine_result["metrics"]["test_elbo"]))


def bench_pix2pix(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from taller.trainers import pix2pix as module

    dataset = "facades" if args.facades else "cifar10-labels"
    config = module.Config(epochs=args.epochs or 5, train_limit=args.train_limit, dataset=dataset,
                           data_path=args.facades or "", device=str(device))
    target = args.target if args.target is not None else 0.10
    engine_result = engine_run(module, config, "val_l1", target, higher_is_better=False)
    engine.seed_everything(config.seed)
    data = module.load_data(config, ("train", "val"), limit=config.train_limit)
    generator, discriminator = (m.to(device) for m in module.build_models(config))
    betas = (config.beta1, 0.999)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=betas)

    def step(inputs_u8: torch.Tensor, targets_u8: torch.Tensor) -> torch.Tensor:
        inputs, targets = module.to_signed(inputs_u8), module.to_signed(targets_u8)
        fakes = generator(inputs)
        loss_d = module.discriminator_loss(discriminator, inputs, targets, fakes)
        optimizer_d.zero_grad(set_to_none=True)
        loss_d.backward()
        optimizer_d.step()
        loss_g, _ = module.generator_loss(discriminator, inputs, targets, fakes, config.l1_weight)
        optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        optimizer_g.step()
        return loss_g.detach()

    val_inputs, val_targets = data["val"]
    plain = plain_run(list(data["train"]), config.batch_size, config.epochs, step,
                      lambda: module.evaluate(generator, val_inputs, val_targets, device), target, False, device)
    return row("pix2pix", "val_l1", target, config, len(data["train"][0]), engine_result, plain,
               test=("identity_baseline_l1", engine_result["metrics"]["identity_baseline_l1"]))


def row(trainer, metric, target, config, train_count, engine_result, plain, test) -> dict[str, Any]:
    speedup = None
    if engine_result["train_s"] and plain["train_s"]:
        speedup = plain["train_s"] / engine_result["train_s"]
    return {
        "trainer": trainer,
        "metric": metric,
        "target": target,
        "epochs": config.epochs,
        "train_count": train_count,
        "batch_size": config.batch_size,
        "engine_val": engine_result["final_val"],
        "engine_train_s": engine_result["train_s"],
        "engine_to_target_s": engine_result["time_to_target_s"],
        "plain_val": plain["final_val"],
        "plain_train_s": plain["train_s"],
        "plain_to_target_s": plain["time_to_target_s"],
        "speedup": speedup,
        test[0]: test[1],
    }


BENCHES = {
    "autoencoder": bench_autoencoder,
    "dense_classifier": bench_dense_classifier,
    "vae": bench_vae,
    "pix2pix": bench_pix2pix,
}


# --- 1 process against N under torchrun -----------------------------------------------------------------

# How each trainer is run for --ddp (command-line flags), its validation metric, and how many
# training samples an epoch sees.
DDP_TRAINERS = {
    "autoencoder": ("val_mse", "best_val_mse"),
    "vae": ("val_elbo", "best_val_elbo"),
    "dense_classifier": ("val_accuracy", "best_val_accuracy"),
}


def ddp_train_count(name: str, args: argparse.Namespace, metrics: dict[str, Any]) -> int | None:
    if "train_count" in metrics:
        return int(metrics["train_count"])
    if name in ("autoencoder", "vae"):
        total = args.train_limit or 60000
        return total - max(1, int(total * 0.1))  # both hold out the last 10 % for validation
    return None


def ddp_run(name: str, processes: int, args: argparse.Namespace, device: torch.device,
            threads: int | None = None) -> dict[str, Any]:
    """One training of ``name`` with ``processes`` processes (torchrun when > 1), each on ``threads``
    torch threads (default: the cores shared out); its throughput."""
    flags = ["--epochs", str(args.epochs or 2), "--patience", "0", "--device", device.type]
    if args.train_limit:
        flags += ["--train-limit", str(args.train_limit)]
    if name == "dense_classifier":
        flags += ["--folds", "0"]
    if args.batch_size:
        flags += ["--batch-size", str(args.batch_size)]
    cores = os.cpu_count() or 1
    threads = threads or (max(1, cores // processes) if device.type == "cpu" else 1)
    home = tempfile.TemporaryDirectory(prefix=f"taller-bench-ddp{processes}-")  # its runs go when it is measured
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TALLER_HOME": home.name}
    if processes == 1:
        command = [sys.executable, "-m", f"taller.trainers.{name}", *flags]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
                   "-m", f"taller.trainers.{name}", *flags]
    started = time.perf_counter()
    with home:
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} with {processes} process(es) failed (code {done.returncode}):\n{done.stderr[-2000:]}")
    metrics = json.loads(done.stdout)
    count = ddp_train_count(name, args, metrics)
    seconds = float(metrics.get("train_seconds") or metrics.get("wall_s") or wall)
    epochs = int(metrics.get("epochs_run") or args.epochs or 2)
    metric, best = DDP_TRAINERS[name]
    return {
        "trainer": name, "processes": processes, "threads_each": threads,
        "backend": ("nccl" if device.type == "cuda" else "gloo") if processes > 1 else "-",
        "train_count": count, "epochs": epochs, "train_s": seconds, "wall_s": wall,
        "samples_per_s": count * epochs / seconds if count and seconds else None,
        "metric": metric, "best_val": metrics.get(best),
    }


def ddp_main(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    names = [n for n in args.only.split(",") if n] or ["autoencoder"]
    rows = []
    for name in names:
        if name not in DDP_TRAINERS:
            raise SystemExit(f"--ddp measures {', '.join(DDP_TRAINERS)}; not {name}")
        # 1 process on every core, 1 process on one worker's share of them, N processes.
        cores = os.cpu_count() or 1
        shares = [(1, None), (1, max(1, cores // args.ddp)), (args.ddp, None)] if device.type == "cpu" else \
            [(1, None), (args.ddp, None)]
        if shares[0][1] is None and cores // args.ddp == cores:
            shares.pop(1)
        first = len(rows)
        for processes, threads in shares:
            print(f"[bench] {name}: {processes} process(es) on {device} ...", file=sys.stderr, flush=True)
            rows.append(ddp_run(name, processes, args, device, threads))
            print(json.dumps(rows[-1], default=str), file=sys.stderr, flush=True)
        single = rows[first]["samples_per_s"]
        for other in rows[first + 1:]:
            other["speedup"] = other["samples_per_s"] / single if single and other["samples_per_s"] else None
    header = ["trainer", "processes", "threads each", "backend", "samples", "epochs", "train s", "samples/s",
              "vs the first row", "best val"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(fmt(v) for v in [
            r["trainer"], r["processes"], r["threads_each"], r["backend"], r["train_count"], r["epochs"],
            r["train_s"], r["samples_per_s"], r.get("speedup"), r["best_val"]]) + " |")
    return rows


def extra_benchmarks() -> list[Callable[[argparse.Namespace], Any]]:
    """``BENCHMARKS`` from bench/sequence_trainers.py when that file exists."""
    path = Path(__file__).with_name("sequence_trainers.py")
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location("bench_sequence_trainers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return list(getattr(module, "BENCHMARKS", []))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated trainers (default: all, plus sequence benchmarks)")
    parser.add_argument("--epochs", type=int, default=0, help="epochs per run (default: each trainer's bench default)")
    parser.add_argument("--train-limit", type=int, default=0, help="use only the first N training examples")
    parser.add_argument("--target", type=float, default=None, help="override the target of the validation metric")
    parser.add_argument("--facades", default="", help="facades folder or tarball for pix2pix (default: CIFAR label maps)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    parser.add_argument("--json", default="", help="also write the rows to this JSON file")
    parser.add_argument("--no-extra", action="store_true", help="skip bench/sequence_trainers.py")
    parser.add_argument("--plain-first", action="store_true", help="autoencoder: run the plain loop before the engine")
    parser.add_argument("--ddp", type=int, default=0, metavar="N",
                        help="throughput of 1 process against N under torchrun (see the module doc)")
    parser.add_argument("--batch-size", type=int, default=0, help="--ddp: the global batch (default: the trainer's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # Runs and built data sets go to a scratch home unless the caller chose one.
    os.environ.setdefault("TALLER_HOME", tempfile.mkdtemp(prefix="taller-bench-"))
    from taller.config import get_settings

    get_settings(reload=True)
    device = engine.select_device(args.device)
    if args.ddp:
        if args.ddp < 2:
            raise SystemExit("--ddp N compares 1 process with N: N must be at least 2")
        rows = ddp_main(args, device)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
        return 0
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    rows: list[dict[str, Any]] = []
    for name in names:
        if name not in BENCHES:
            continue
        print(f"[bench] {name} on {device} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        result = BENCHES[name](args, device)
        result["device"] = str(device)
        result["bench_wall_s"] = time.perf_counter() - started
        rows.append(result)
        print(json.dumps(result, default=str), file=sys.stderr, flush=True)
    if not args.no_extra and (not args.only or any(n not in BENCHES for n in names)):
        for bench in extra_benchmarks():
            out = bench(args)
            for extra in out if isinstance(out, list) else [out]:
                if extra.get("speedup") is None and extra.get("engine_train_s") and extra.get("plain_train_s"):
                    extra["speedup"] = extra["plain_train_s"] / extra["engine_train_s"]
                rows.append(extra)

    header = ["trainer", "metric", "target", "epochs", "n", "engine", "engine s", "engine→target s",
              "plain", "plain s", "plain→target s", "plain/engine"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(fmt(v) for v in [
            r.get("trainer"), r.get("metric"), r.get("target"), r.get("epochs"), r.get("train_count"),
            r.get("engine_val"), r.get("engine_train_s"), r.get("engine_to_target_s"),
            r.get("plain_val"), r.get("plain_train_s"), r.get("plain_to_target_s"), r.get("speedup"),
        ]) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
