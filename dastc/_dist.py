"""Running per-class statistics summed over processes: the collective and a module base."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torch import Tensor, nn

from dastc._validate import check_num_classes, check_unit_interval

__all__ = ["SyncedClassStats", "distributed", "sum_over_processes"]


def distributed(sync: bool, group: Any = None) -> bool:
    """True when ``sync`` is on and more than one process is in ``group``."""
    if not (sync and dist.is_available() and dist.is_initialized()):
        return False
    return bool(dist.get_world_size(group) > 1)


def sum_over_processes(t: Tensor, sync: bool = True, group: Any = None) -> Tensor:
    """Sum ``t`` over the processes of ``group`` in place and return it (no-op on one)."""
    if distributed(sync, group):
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return t


class SyncedClassStats(nn.Module):
    """Base of modules that keep per-class running statistics (momentum ``m``) and sum
    each batch's statistics over the processes of ``process_group`` when ``sync``."""

    def __init__(self, num_classes: int, momentum: float, process_group: Any, sync: bool) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.momentum = check_unit_interval(momentum, "momentum")
        self.process_group = process_group
        self.sync = bool(sync)

    def _sum(self, stats: Tensor) -> Tensor:
        return sum_over_processes(stats, self.sync, self.process_group)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, momentum={self.momentum}, sync={self.sync}"
