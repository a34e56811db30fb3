"""Multi-process support of the example: ``torchrun`` set-up and the few collectives it needs.

Under ``torchrun --nproc_per_node N examples/train_video_uda.py ...`` every process
trains a DDP replica of the student on its share of each global batch
(``--batch`` clips per domain *per process*; ``method.distribute`` wraps the
student pass in DDP), keeps its own EMA teacher (equal on every process,
because DDP keeps the students equal), all-reduces the prototype, class-balance
and distribution statistics (the method's modules do that themselves),
evaluates its share of the val split and sums the confusion matrices; only
rank 0 writes files.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def setup(device: str) -> tuple[int, int, torch.device, bool]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1 in the environment).

    Returns ``(rank, world, device, initialised_here)``; ``(0, 1, device, False)``
    when not launched by ``torchrun`` (or with one process). The backend is NCCL
    for CUDA and gloo otherwise; each process takes GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device)
    if world <= 1:
        return 0, 1, dev, False
    cuda = dev.type == "cuda"
    if cuda:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    mine = not dist.is_initialized()
    if mine:
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), dev, mine


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def any_true(flags: Tensor) -> Tensor:
    """Element-wise OR of a small float flag vector over processes (identity with one)."""
    if world() > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags


def mean_logs(logs: dict[str, Tensor]) -> dict[str, Tensor]:
    """Average every logged quantity over processes with one all-reduce."""
    if world() == 1 or not logs:
        return logs
    keys = list(logs)
    sizes = [logs[k].numel() for k in keys]
    flat = torch.cat([logs[k].detach().float().reshape(-1) for k in keys])
    dist.all_reduce(flat)
    flat /= world()
    return {k: v.view_as(logs[k]) for k, v in zip(keys, flat.split(sizes), strict=True)}


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (a list of one item without a process group)."""
    if world() == 1:
        return [obj]
    out: list[Any] = [None] * world()
    dist.all_gather_object(out, obj)
    return out
