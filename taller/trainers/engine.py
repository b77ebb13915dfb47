"""The small training engine every Taller trainer shares: ``from taller.trainers import engine``.

This module is the engine's one name for trainers, tools and tests; the code lives in one module
per concern and every public name is re-exported here:

* :mod:`~taller.trainers.device` — :func:`select_device`, :func:`seed_everything`,
  :func:`autocast` (bf16 on CUDA), :func:`maybe_compile` (``torch.compile`` on CUDA when the
  ``compile`` setting is on).
* :mod:`~taller.trainers.batches` — :class:`DeviceBatches`: a data set that fits in memory lives
  on the device as tensors and is batched by indexing with a permutation drawn on the device (no
  DataLoader workers, no host→device copy per batch); :func:`make_batches` falls back to a
  ``DataLoader`` when it does not fit.
* :mod:`~taller.trainers.checkpoints` — the run folder on disk: atomic JSON and checkpoint files
  (temporary file, fsync, rename; :class:`RunWriteError` says what a full disk stopped),
  :func:`load_checkpoint`, :func:`trained_checkpoint`, :func:`list_runs` (a ``running`` run whose
  lock is free is ``interrupted``), :func:`latest_checkpoint`, :func:`cpu_state`.
* :mod:`~taller.trainers.run` — :class:`Run`: ``$TALLER_HOME/runs/<model>/<run_id>/`` with
  ``config.json``, ``metrics.jsonl`` (one line per epoch), TensorBoard events, ``status.json``,
  ``last.pt`` / ``best.pt``, throttled progress events with an ETA, the cancel flag, and the
  checkpoint / resume / cancel protocol (:meth:`Run.track`, :meth:`Run.restore`,
  :meth:`Run.steps`, :meth:`Run.end_epoch`, :meth:`Run.load_best`) with time-based checkpoints
  inside epochs and the random generators saved; one run per model across processes
  (:class:`RunBusyError`); :class:`NothingToResumeError`; :class:`EarlyStopping`.
* :mod:`~taller.trainers.command_line` — :func:`cli`, one flag per Config field.
* :mod:`~taller.trainers.distributed` — the same trainer under ``torchrun``: the process group
  (NCCL on GPUs, gloo on CPUs), :func:`prepare_model` (``DistributedDataParallel``), each
  process's equal share of every global batch, rank-0-only records, the cancel flag and the
  epoch's metrics agreed by all processes.

The trainer contract (all seven models in :data:`taller.trainers.TRAINERS`)
---------------------------------------------------------------------------
A trainer is one module ``taller/trainers/<name>.py`` with ``# --- data``, ``# --- model`` and
``# --- train`` sections that defines:

* ``Config`` — a ``@dataclass`` with defaults that train something sensible on a CPU. Fields
  every trainer has: ``epochs: int``, ``batch_size: int``, ``seed: int``, ``device: str``
  (``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``), ``dry_run: bool`` (a few batches, one epoch),
  ``resume: bool``. The config is saved in every checkpoint (``dataclasses.asdict``).
* ``train(config, run=None, cancel_event=None, on_progress=None) -> dict`` — trains, evaluates
  on held-out data and returns the metrics (JSON-able, includes ``run_id`` and ``run_dir``).
  ``run`` is a :class:`Run` created by the caller (the background registry in
  :mod:`taller.trainers.runs` creates it first so it can hand the run id back at once); when
  ``None`` the trainer calls ``Run.create(name, config, ...)`` itself (it resumes when
  ``config.resume`` is set).
  Inside ``with run:`` it reads like pytorch/examples — data, model, then
  ``run.track(...)``, ``for epoch in range(run.restore(), epochs + 1)``: a short
  ``train_one_epoch`` over ``run.steps(batches)``, an evaluation, ``run.end_epoch(...)`` — and
  ``run.load_best()`` before the final scores. The training steps call the model through
  ``step_model = engine.prepare_model(model)`` (DDP under torchrun, compiled when asked); the
  model itself is evaluated and tracked. On cancellation ``with run:`` saves ``last.pt``
  at the step reached and marks the run ``cancelled``; on any other error the run is marked
  ``failed``; the exception propagates in both cases.
* ``python -m taller.trainers.<name> --epochs N --dry-run`` via :func:`cli`.
* Optionally ``check_data(config) -> None`` raising :class:`taller.data.DataNotFoundError` when
  the data set is missing (the background registry calls it before starting, so the user hears
  about the missing file at once), ``load(path=None) -> (model, config)`` and the helpers the
  tools use.
"""

from __future__ import annotations

from taller.trainers.batches import DeviceBatches, LoaderBatches, device_budget_bytes, make_batches, tensors_nbytes
from taller.trainers.checkpoints import (
    RunWriteError,
    config_from_checkpoint,
    cpu_state,
    latest_checkpoint,
    list_runs,
    load_checkpoint,
    new_run_id,
    outputs_folder,
    trained_checkpoint,
    write_json_atomic,
)
from taller.trainers.command_line import cli
from taller.trainers.device import (
    autocast,
    configure_backends,
    maybe_compile,
    prepare_model,
    seed_everything,
    select_device,
    unwrap_model,
)
from taller.trainers.records import NothingToResumeError, RunBusyError
from taller.trainers.run import CHECKPOINT_INTERVAL_S, PROGRESS_INTERVAL_S, EarlyStopping, Run, start_run

__all__ = [
    "CHECKPOINT_INTERVAL_S", "PROGRESS_INTERVAL_S", "DeviceBatches", "EarlyStopping", "LoaderBatches",
    "NothingToResumeError", "Run", "RunBusyError", "RunWriteError",
    "autocast", "cli", "config_from_checkpoint", "configure_backends", "cpu_state", "device_budget_bytes",
    "latest_checkpoint", "list_runs", "load_checkpoint", "make_batches", "maybe_compile", "new_run_id", "prepare_model",
    "outputs_folder", "seed_everything", "select_device", "start_run", "tensors_nbytes", "trained_checkpoint", "unwrap_model",
    "write_json_atomic",
]
