"""The example's optimiser and learning-rate schedule: AdamW or SGD, heads at a multiple
of the learning rate, linear warm-up, polynomial decay; and mixed precision.

With ``head_lr_mult=1`` and no warm-up the parameters form the two groups the
example has always used (with and without weight decay), so runs without these
options compute what they did before.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

#: module names of the head / decoder (trained at ``head_lr_mult`` × the lr), matched
#: against the first two components of a parameter's name: smp's ``net.decoder`` and
#: ``net.segmentation_head``, the tiny model's ``decoder``, ``classifier``, and the
#: temporal ``fuse`` of both.
HEAD_PREFIXES = ("decoder", "segmentation_head", "classifier", "fuse", "head")

OPTIMIZERS = ("adamw", "sgd")
AMP = ("off", "bf16", "fp16")


def param_groups(model: nn.Module, weight_decay: float, lr: float, head_lr_mult: float) -> list[
    dict[str, Any]
]:  # fmt: skip
    """Groups ``(encoder | head) × (decayed | not decayed)``; biases and norms (``ndim <= 1``)
    get no weight decay; the head's learning rate is ``head_lr_mult × lr``. With
    ``head_lr_mult == 1`` the encoder and head share their two groups."""
    split = head_lr_mult != 1.0
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        head = split and any(part in HEAD_PREFIXES for part in name.split(".")[:2])
        groups.setdefault((head, p.ndim > 1), []).append(p)
    out = []
    for head in (False, True):
        for decayed in (True, False):
            params = groups.get((head, decayed), [])
            if params or not head:  # the two encoder groups always exist, as before
                out.append(
                    {
                        "params": params,
                        "weight_decay": weight_decay if decayed else 0.0,
                        "lr": lr * (head_lr_mult if head else 1.0),
                        "name": ("head" if head else "encoder") + ("" if decayed else "/no_decay"),
                    }
                )
    return out


def build_optimizer(
    model: nn.Module, kind: str, lr: float, weight_decay: float, head_lr_mult: float = 1.0
) -> torch.optim.Optimizer:
    """AdamW (the example's default) or SGD with momentum 0.9 (the public CNN recipe)."""
    groups = param_groups(model, weight_decay, lr, head_lr_mult)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {kind!r}")


def lr_factor(i: int, iters: int, warmup: int, power: float = 0.9) -> float:
    """Polynomial decay ``(1 - i / iters) ** power``; during the first ``warmup``
    iterations it rises linearly from 1e-6 of that value (mmcv's linear warm-up)."""
    factor: float = (1 - min(i, iters - 1) / iters) ** power
    if i < warmup:
        factor *= 1 - (1 - i / warmup) * (1 - 1e-6)
    return factor


def build_schedule(
    opt: torch.optim.Optimizer, iters: int, warmup: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-iteration schedule of every group (:func:`lr_factor`; without warm-up the
    poly decay the example has always used, the same expression)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_factor(i, iters, warmup))


def autocast(device: torch.device, amp: str) -> AbstractContextManager[Any]:
    """The step's autocast context: bf16 or fp16 mixed precision, or none."""
    if amp == "off":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 (bf16 and float32 need none)."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None
