"""Where a trainer runs and in what precision: device choice, seeding, bf16 autocast, compile.

Part of the training engine (:mod:`taller.trainers.engine` re-exports every name here).
"""

from __future__ import annotations

import contextlib
import random

import torch

from taller.config import get_settings


def select_device(preference: str | None = None) -> torch.device:
    """CUDA, then Apple MPS, then CPU; ``"cpu"``/``"cuda"``/``"mps"`` force one.

    ``None`` or ``"auto"`` reads the ``device`` setting (itself ``"auto"`` by default).
    Asking for CUDA on a machine without it is an error, not a silent CPU run.
    """
    if preference is None or preference == "auto":
        preference = get_settings().device or "auto"
    preference = preference.strip().lower()
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    if preference == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps' was asked for but Apple MPS is not available; use 'auto' or 'cpu'")
    try:
        return torch.device(preference)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {preference!r}: use auto, cpu, cuda or mps") from exc


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy (when installed) and torch on every device."""
    random.seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % (2**32))
    except ImportError:  # numpy is optional for the engine
        pass
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def rng_state(generator: torch.Generator | None = None) -> dict:
    """The random number generators' state: torch (CPU and any initialised CUDA devices), Python's
    ``random``, and ``generator`` (a batch sampler's own) when given. Plain values and CPU
    tensors, so it can go into a checkpoint that the weights-only loader reads."""
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict | None, generator: torch.Generator | None = None, global_state: bool = True) -> None:
    """Put back what :func:`rng_state` saved: the global generators (unless ``global_state`` is
    False) and ``generator``'s state when both it and a saved one are there."""
    if not state:
        return
    if global_state:
        if state.get("torch") is not None:
            torch.set_rng_state(state["torch"])
        if state.get("python") is not None:
            version, internal, gauss = state["python"]
            random.setstate((version, tuple(internal), gauss))
        cuda = state.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    if generator is not None and state.get("generator") is not None:
        generator.set_state(state["generator"])


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); a no-op elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_backends(device: torch.device) -> None:
    """Let CUDA use TF32 matmuls for the float32 parts (harmless elsewhere)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def maybe_compile(model: torch.nn.Module, enabled: bool | None = None) -> torch.nn.Module:
    """``torch.compile`` the model on CUDA when enabled (default: the ``compile`` setting).

    On CPU compiling costs more than it saves for these small models, so it is skipped. Save the
    weights of :func:`unwrap_model` (the compiled wrapper prefixes every key with ``_orig_mod.``).
    """
    if enabled is None:
        enabled = bool(get_settings().compile)
    if not enabled:
        return model
    try:
        device = next(model.parameters()).device
    except StopIteration:
        return model
    if device.type != "cuda":
        return model
    return torch.compile(model)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The original module behind ``torch.compile`` and ``DistributedDataParallel`` wrappers
    (itself otherwise): what a checkpoint saves, so it loads with any number of processes."""
    model = getattr(model, "_orig_mod", model)
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, DistributedDataParallel):
        model = getattr(model.module, "_orig_mod", model.module)
    return model


def prepare_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model the training steps call: wrapped in ``DistributedDataParallel`` under torchrun
    (gradients averaged over the processes), then compiled when :func:`maybe_compile` says so.

    Keep the model itself for evaluation, pictures and ``run.track`` (the wrapper only adds the
    gradient averaging; checkpoints save the unwrapped weights).
    """
    from taller.trainers import distributed

    return maybe_compile(distributed.wrap(model))
