"""Batches for the training loop: a ``DataLoader`` over the iterations' index lists.

The indices of iteration ``i`` come from ``EpochOrder.indices(i)``, a pure function
of ``(seed, i)`` (and the rank under DDP), evaluated in the main process; worker
processes only read and decode the items. A run resumed at iteration ``i``
therefore reads exactly the batches an uninterrupted run would, with any number of
workers, and DDP ranks read disjoint items.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Generator, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from uda_data import CachedDataset, EpochOrder, collate


class IterationBatches(Sampler[list[int]]):
    """The index lists of iterations ``start, start + 1, ...`` (endless)."""

    def __init__(self, order: EpochOrder, start: int) -> None:
        self.order, self.start = order, start

    def __iter__(self) -> Iterator[list[int]]:
        i = self.start
        while True:
            yield self.order.indices(i)
            i += 1


def _worker_init(_: int) -> None:
    # One thread per worker. Ctrl-C (SIGINT to the whole process group) is for the
    # main process, which checkpoints and then shuts the workers down; SIGTERM keeps
    # its default, so the workers can always be stopped.
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers(ds: Dataset[Any]) -> int:
    """0 for the in-memory synthetic clips (nothing to decode), else up to 4 processes."""
    if isinstance(ds, CachedDataset):
        return 0
    return min(4, os.cpu_count() or 1)


def loader(
    ds: Dataset[Any],
    order: EpochOrder,
    start: int,
    workers: int,
    pin_memory: bool = False,
    prefetch: int = 2,
) -> Generator[dict[str, Tensor], None, None]:
    """Endless batches from iteration ``start`` on, read by ``workers`` processes
    (0: in this process), ``prefetch`` batches ahead per worker; ``close()`` the
    generator to stop the workers."""
    loader_ = DataLoader(
        ds,
        batch_sampler=IterationBatches(order, start),
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=prefetch if workers else None,
        persistent_workers=False,
    )
    it = iter(loader_)
    try:
        yield from it
    finally:  # close() (or garbage collection) stops the workers at once
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
