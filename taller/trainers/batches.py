"""Batches for the training loop: a data set held on the device, or a DataLoader when it does not fit.

Under torchrun each process takes its equal share of every global batch
(:func:`taller.trainers.distributed.step_share`): all processes draw the same permutation (the
same seed), so the shares are disjoint and an epoch has as many steps as in a single process.
Part of the training engine (:mod:`taller.trainers.engine` re-exports every name here).
"""

from __future__ import annotations

import math
import sys
from typing import Iterator, Sequence

import torch

from taller.trainers import distributed

# A data set bigger than this share of free GPU memory is streamed through a DataLoader instead.
DEVICE_MEMORY_SHARE = 0.5


class DeviceBatches:
    """Tensors that live on the device, batched by indexing; shuffled with a device permutation.

    All tensors share their first dimension. ``len()`` is the number of batches per epoch.
    Iterating yields tuples of tensors (one per input tensor). ``batch_size`` is the global batch:
    under torchrun (or with ``rank`` / ``world_size`` given) each process gets its equal share of
    every batch, ``ceil(batch_size / world_size)`` rows.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        device: torch.device | str | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        generator_seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("DeviceBatches needs at least one tensor")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        count = tensors[0].shape[0]
        if any(t.shape[0] != count for t in tensors):
            raise ValueError("all tensors must have the same first dimension")
        self.device = torch.device(device) if device is not None else tensors[0].device
        # non_blocking needs pinned memory to overlap; a one-off copy of the whole set is fine blocking.
        self.tensors = tuple(t.to(self.device) for t in tensors)
        self.count = count
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator: torch.Generator | None = None
        if generator_seed is not None:
            self.generator = torch.Generator(device=self.device)
            self.generator.manual_seed(generator_seed)
        self.rank = distributed.rank() if rank is None else rank
        self.world_size = distributed.world_size() if world_size is None else world_size

    def __len__(self) -> int:
        if self.drop_last:
            return self.count // self.batch_size
        return math.ceil(self.count / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if self.shuffle:
            order = torch.randperm(self.count, device=self.device, generator=self.generator)
        elif self.world_size > 1:
            order = torch.arange(self.count, device=self.device)
        else:
            order = None
        for index in range(len(self)):
            start = index * self.batch_size
            stop = min(start + self.batch_size, self.count)
            if order is None:
                yield tuple(t[start:stop] for t in self.tensors)
            else:
                picked = distributed.step_share(order[start:stop], self.rank, self.world_size)
                yield tuple(t.index_select(0, picked) for t in self.tensors)


class LoaderBatches:
    """The DataLoader path for data that does not fit on the device: pinned, copied per batch."""

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        device: torch.device | str,
        shuffle: bool = True,
        drop_last: bool = False,
        num_workers: int = 0,
        generator_seed: int | None = None,
    ) -> None:
        from torch.utils.data import DataLoader, TensorDataset

        self.device = torch.device(device)
        pin = self.device.type == "cuda"
        # Its own CPU generator, like DeviceBatches': every process draws the same order, and a
        # checkpoint saves it (Run.steps reads ``generator``).
        self.generator = torch.Generator()
        self.generator.manual_seed(generator_seed if generator_seed is not None else torch.initial_seed() % 2**63)
        self.sampler = _SharedBatchSampler(len(tensors[0]), batch_size, shuffle, drop_last, self.generator,
                                           distributed.rank(), distributed.world_size())
        self.loader = DataLoader(
            TensorDataset(*tensors),
            batch_sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=pin,
        )
        self.non_blocking = pin

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for batch in self.loader:
            yield tuple(t.to(self.device, non_blocking=self.non_blocking) for t in batch)


class _SharedBatchSampler:
    """Index lists for a DataLoader: this process's share of each global batch (see DeviceBatches)."""

    def __init__(self, count: int, batch_size: int, shuffle: bool, drop_last: bool, generator: torch.Generator,
                 rank: int, world_size: int) -> None:
        self.count, self.batch_size, self.shuffle, self.drop_last = count, batch_size, shuffle, drop_last
        self.generator, self.rank, self.world_size = generator, rank, world_size

    def __len__(self) -> int:
        return self.count // self.batch_size if self.drop_last else math.ceil(self.count / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.count, generator=self.generator) if self.shuffle else torch.arange(self.count)
        for index in range(len(self)):
            batch = order[index * self.batch_size : (index + 1) * self.batch_size]
            yield distributed.step_share(batch, self.rank, self.world_size).tolist()


def tensors_nbytes(tensors: Sequence[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def device_budget_bytes(device: torch.device) -> int:
    """How many bytes of data set may live on ``device``: a share of free GPU memory; RAM is unbounded
    here because the tensors are already in host memory."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * DEVICE_MEMORY_SHARE)
    return sys.maxsize


def make_batches(
    tensors: Sequence[torch.Tensor],
    batch_size: int,
    device: torch.device | str,
    shuffle: bool = True,
    drop_last: bool = False,
    memory_budget_bytes: int | None = None,
    seed: int | None = None,
) -> DeviceBatches | LoaderBatches:
    """:class:`DeviceBatches` when the tensors fit in the device budget, else a DataLoader path."""
    device = torch.device(device)
    budget = device_budget_bytes(device) if memory_budget_bytes is None else memory_budget_bytes
    if tensors_nbytes(tensors) <= budget:
        return DeviceBatches(tensors, batch_size, device, shuffle=shuffle, drop_last=drop_last, generator_seed=seed)
    return LoaderBatches(tensors, batch_size, device, shuffle=shuffle, drop_last=drop_last, generator_seed=seed)
