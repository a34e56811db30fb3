"""Multi-process support of the example: ``torchrun`` set-up and the few collectives it needs.

Under ``torchrun --nproc_per_node N examples/train_video_uda.py ...`` every process
trains a DDP replica of the student on its share of each global batch
(``--batch`` clips per domain *per process*), keeps its own EMA teacher (equal
on every process, because DDP keeps the students equal), all-reduces the
prototype statistics (the aggregators do that themselves), evaluates its share
of the val split and sums the confusion matrices; only rank 0 writes files.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


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


def sum_all(t: Tensor) -> Tensor:
    """Sum ``t`` over processes in place and return it (identity with one process)."""
    if world() > 1:
        dist.all_reduce(t)
    return t


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


class StudentPass(nn.Module):
    """The student's whole forward in one call, so that DDP sees every use of the weights.

    ``forward(clips, flows)`` is the model's own forward. With ``between`` it runs
    ``model.shallow(clips)``, passes the shallow features through ``between``
    (the feature mix) and returns ``model.deep(between(shallow), flows)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clips: Tensor, flows: Tensor | None = None, between: Any = None) -> Any:
        if between is None:
            return self.model(clips, flows)
        return self.model.deep(between(self.model.shallow(clips)), flows)


def wrap(model: nn.Module, device: torch.device, all_used: bool = True) -> nn.Module:
    """``StudentPass(model)``, inside DDP when more than one process runs.

    ``all_used=False`` when some weights take no part in the loss (the flow
    fusion of a run without flow)."""
    net: nn.Module = StudentPass(model)
    if world() > 1:
        net = nn.parallel.DistributedDataParallel(
            net,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=not all_used,
        )
    return net
