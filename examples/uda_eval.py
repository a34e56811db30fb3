"""Evaluation of a UDA run: per-class IoU and mIoU on target val, last frame of each clip."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from uda_data import Subset, val_batches

import dastc

FlowFor = Callable[[dict[str, Tensor]], Tensor | None]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    val_ds: Dataset[Any],
    num_classes: int,
    flow_for: FlowFor,
    device: torch.device,
    batch: int,
    rank: int = 0,
    world: int = 1,
    max_batches: int | None = None,
    exclude: Sequence[int] = (),
) -> tuple[Tensor, float]:
    """Per-class IoU ``(K,)`` and mIoU, in %, of ``model`` in eval mode.

    Each process evaluates its share of the clips (``rank`` of ``world``); the
    confusion matrices are summed over processes, so every process must call
    this. ``max_batches`` evaluates the first ``max_batches * batch`` clips only
    (the same clips for any number of processes). ``flow_for`` gives the flow a
    batch's forward takes (``method.flow_for``). ``exclude``: classes kept in
    the confusion matrix but left out of the mean (the SYNTHIA-Seq protocol's fence;
    SYNTHIA -> Cityscapes's terrain, truck and train).
    """
    was = model.training
    model.eval()
    cm = dastc.ConfusionMatrix(num_classes, device=device)
    ds, n = val_ds, len(val_ds)  # type: ignore[arg-type]
    if max_batches is not None and max_batches * batch < n:
        ds = Subset(ds, list(range(max_batches * batch)))
    for b in val_batches(ds, batch, rank, world):
        b = {k: v.to(device) for k, v in b.items()}
        logits = model(b["clip"], flow_for(b))
        cm.update(logits[:, -1].argmax(1), b["label"][:, -1])
    model.train(was)
    cm.sync()
    iou, miou = cm.compute(exclude)
    return iou.cpu() * 100, float(miou) * 100


@torch.no_grad()
def predict_last_frames(
    models: dict[str, nn.Module], val_ds: Dataset[Any], flow_for: FlowFor,
    device: torch.device, n: int = 4,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:  # fmt: skip
    """The first ``n`` val clips (CPU) and each model's argmax on their last frame ``(n, H, W)``."""
    b = next(val_batches(val_ds, n))
    on_dev = {k: v.to(device) for k, v in b.items()}
    preds = {}
    for name, model in models.items():
        was = model.training
        model.eval()
        preds[name] = model(on_dev["clip"], flow_for(on_dev))[:, -1].argmax(1).cpu()
        model.train(was)
    return b, preds
