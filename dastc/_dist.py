"""The one collective the running statistics need: an in-place sum over processes."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torch import Tensor

__all__ = ["distributed", "sum_over_processes"]


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
