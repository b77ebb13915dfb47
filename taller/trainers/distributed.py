"""Distributed data-parallel training under ``torchrun``: the one place that knows about it.

The same ``python -m taller.trainers.<name>`` runs under ``torchrun --nproc_per_node N`` (and
``--nnodes`` for several machines). torchrun starts N processes and tells each its place in the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, the rendezvous address); this module reads
it, and the engine uses it so that no trainer has to:

* :func:`setup` (called by :meth:`taller.trainers.run.Run.create`) joins the process group — NCCL
  when the run trains on CUDA, gloo on CPUs — with a timeout (``TALLER_DDP_TIMEOUT_S``, 600 s by
  default) on the joining and on every collective, so a process whose peer died stops instead of
  waiting forever. Without torchrun (``WORLD_SIZE`` unset or 1) nothing happens at all.
* :func:`wrap` puts a model into ``DistributedDataParallel`` (``engine.prepare_model``).
* :func:`step_share` cuts one global batch into equal shares, one per process: ``batch_size`` stays
  the *global* batch, so an epoch has the same number of steps whatever the number of processes,
  and a checkpoint's ``(epoch, step)`` means the same point of the data for any world size (see
  docs/trainers.md, "Several processes").
* :func:`any_rank` (the cancel flag, agreed by all before every step), :func:`average_metrics`
  (the epoch's metrics, so every process takes the same early-stopping decision) and
  :func:`broadcast` (the resume checkpoint, rank 0's answer to ``Run.create``).

Rank 0 is the *writer*: it alone holds the locks and writes ``status.json``, ``metrics.jsonl``,
TensorBoard, the checkpoints and the progress events (:mod:`taller.trainers.records`). Collectives
other than the gradients' go through a gloo group on the CPU, so agreeing on the cancel flag never
waits for a GPU.
"""

from __future__ import annotations

import atexit
import datetime
import math
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch

# Seconds a process waits for its peers: at start-up, and in any one collective (a checkpoint
# save on rank 0 makes the others wait at most that long too).
TIMEOUT_ENV = "TALLER_DDP_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Context:
    """This process's place in a torchrun launch."""

    rank: int
    world_size: int
    local_rank: int
    backend: str  # "nccl" or "gloo"


_context: Context | None = None
_control: Any = None  # the gloo group for control messages (None: the default group is gloo already)


def launched() -> bool:
    """Whether torchrun started this process as one of several (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    except ValueError:
        return False


def timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {raw[:40]!r}") from None
    return value if value > 0 else DEFAULT_TIMEOUT_S


def setup(device_preference: str | None = "auto") -> Context | None:
    """Join torchrun's process group once (later calls return the same context); None when this
    process was not started by torchrun with several processes.

    The backend follows the device the run will use: NCCL for CUDA (each process on the GPU of
    its ``LOCAL_RANK``), gloo otherwise.
    """
    global _context, _control
    if _context is not None:
        return _context
    if not launched():
        return None
    import torch.distributed as dist

    from taller.trainers.device import select_device

    _stop_with_the_launcher()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    on_cuda = select_device(device_preference).type == "cuda"
    if on_cuda:
        torch.cuda.set_device(local_rank)
    backend = "nccl" if on_cuda else "gloo"
    timeout = datetime.timedelta(seconds=timeout_s())
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timeout)
        atexit.register(_teardown)
    _control = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    _context = Context(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                       backend=backend)
    return _context


def _stop_with_the_launcher() -> None:
    """Ask Linux for SIGTERM when torchrun (this process's parent) dies, however it dies.

    torchrun starts each worker in a session of its own, so killing torchrun's process group (or
    torchrun with SIGKILL) would leave the workers training with no one to watch them. With this,
    a worker whose launcher is gone stops at its next step like a cancelled run: every process
    agrees on the cancel and rank 0 saves ``last.pt``. Elsewhere than Linux nothing is done.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the launcher died before the request: stop now
        os.kill(os.getpid(), signal.SIGTERM)


def _teardown() -> None:
    global _context, _control
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # a peer already gone: nothing left to tidy
            pass
    _context, _control = None, None


def context() -> Context | None:
    return _context


def world_size() -> int:
    return _context.world_size if _context is not None else 1


def rank() -> int:
    return _context.rank if _context is not None else 0


def is_writer() -> bool:
    """True in the one process that writes the run's records (rank 0, or a plain run)."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """A CUDA device becomes this process's own GPU (``cuda:LOCAL_RANK``) under torchrun."""
    if _context is not None and device.type == "cuda":
        return torch.device("cuda", _context.local_rank)
    return device


# --- the data: one equal share of every global batch per process --------------------------------


def step_share(batch: torch.Tensor, rank_: int, world: int) -> torch.Tensor:
    """This process's share of one global batch of indices: ``ceil(len / world)`` of them.

    The shares of one batch are disjoint and together cover it; when its length is not a multiple
    of ``world``, the last shares are completed by repeating its first indices, so every process
    gets the same number of rows (unequal batches would leave the others waiting in a collective).
    """
    count = batch.numel()
    if world <= 1 or count == 0:
        return batch
    per = -(-count // world)
    if per * world != count:
        batch = batch[torch.arange(per * world, device=batch.device) % count]
    return batch[rank_ * per : (rank_ + 1) * per]


def epoch_shares(order: torch.Tensor, batch_size: int, rank_: int, world: int, drop_last: bool = False) -> list[torch.Tensor]:
    """Every step's share of ``order`` (an epoch's permutation) for one process (used by tests)."""
    steps = len(order) // batch_size if drop_last else math.ceil(len(order) / batch_size)
    return [step_share(order[i * batch_size : (i + 1) * batch_size], rank_, world) for i in range(steps)]


# --- the model ------------------------------------------------------------------------------------


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` under torchrun; the model itself otherwise.

    Its parameters and buffers are made equal to rank 0's now, and its gradients are averaged over
    the processes in every backward pass. Save and evaluate the unwrapped model.
    """
    if _context is None:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if not any(parameter.requires_grad for parameter in model.parameters()):
        return model
    # device_ids=None: the model is on this process's device already, and so are the batches;
    # DDP then leaves the inputs where they are (a recurrent model's lengths stay on the CPU).
    return DistributedDataParallel(model, device_ids=None)


# --- agreeing --------------------------------------------------------------------------------------


def _group() -> Any:
    return _control


def any_rank(flag: bool) -> bool:
    """True when ``flag`` is true in any process (all call it at the same point: a collective)."""
    if _context is None:
        return flag
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_group())
    return bool(value.item())


def average_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The epoch's metrics averaged over the processes (numbers only; the rest as they are).

    Each process's training loss is its own share's; the validation metrics are the same in every
    process (each evaluates the same weights on the whole validation set), so their average is
    that value and every process takes the same early-stopping decision from it.
    """
    if _context is None:
        return metrics
    import torch.distributed as dist

    names = [name for name, value in metrics.items() if _is_number(value)]
    if not names:
        return metrics
    values = torch.tensor([float(metrics[name]) for name in names], dtype=torch.float64)
    dist.all_reduce(values, op=dist.ReduceOp.SUM, group=_group())
    averaged = dict(metrics)
    for name, total in zip(names, (values / _context.world_size).tolist()):
        averaged[name] = total
    return averaged


def _is_number(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.is_floating_point()
    return isinstance(value, float)


def broadcast(value: Any = None) -> Any:
    """Rank 0's ``value`` in every process (any picklable object: a reply, a checkpoint)."""
    if _context is None:
        return value
    import torch.distributed as dist

    box = [value if _context.rank == 0 else None]
    dist.broadcast_object_list(box, src=0, group=_group())
    return box[0]


def wait_for_all() -> None:
    """A barrier at the end of a run: the other processes wait until rank 0 has written its last
    checkpoint and status, so torchrun (which stops the rest when one process exits with an error,
    as a cancelled run does) never interrupts rank 0 in the middle of it. A peer that is gone
    already ends the wait at once; nothing is raised."""
    if _context is None:
        return
    import torch.distributed as dist

    try:
        dist.barrier(group=_group())
    except RuntimeError:
        pass
