"""Evaluation of a UDA run: per-class IoU and mIoU on target val, last frame of each clip.

On the real benchmarks the val labels are read at their stored resolution
(1024 x 2048 for Cityscapes, ``uda_data``) and the logits are upsampled
bilinearly to them before the argmax and the confusion matrix, as the published
evaluations do (:meth:`dastc.ConfusionMatrix.update_from_logits`); the
``align_corners`` of that resize is the benchmark's own
(:func:`published_align_corners`). The synthetic val clips are labelled at the
clips' size and scored there, as before. ``window``: sliding-window inference
(:func:`dastc.sliding_window_logits`) for clips too large to segment at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from uda_data import Subset, val_batches

import dastc

FlowFor = Callable[[dict[str, Tensor]], Tensor | None]
Pair = tuple[int, int]


def published_align_corners(val_ds: Dataset[Any]) -> bool:
    """The ``align_corners`` of the logits' upsampling in the benchmark's public evaluation.

    Cityscapes-Seq (VIPER / SYNTHIA-Seq -> Cityscapes-Seq): ``True``, DA-VSN's and
    TPS's ``nn.Upsample(size=(1024, 2048), mode='bilinear', align_corners=True)``
    (TPS ``tps/domain_adaptation/eval_video_UDA.py``). Anything else (Cityscapes
    images, GTA5 / SYNTHIA -> Cityscapes): ``False``, mmseg's ``resize`` in
    DAFormer / MIC ``EncoderDecoder.whole_inference``.
    """
    from dastc.data import CityscapesSeq

    base = val_ds.base if isinstance(val_ds, Subset) else val_ds
    return isinstance(base, CityscapesSeq)


def clip_logits(
    model: nn.Module, batch: dict[str, Tensor], flow_for: FlowFor, num_classes: int,
    window: Pair | None = None, stride: Pair | None = None,
) -> Tensor:  # fmt: skip
    """``model``'s logits ``(B, T, K, H, W)`` of a batch: whole clips, or with ``window``
    overlapping windows averaged (``stride`` defaults to half the window)."""
    flow = flow_for(batch)
    if window is None:
        return model(batch["clip"], flow)  # type: ignore[no-any-return]
    step = stride if stride is not None else (max(1, window[0] // 2), max(1, window[1] // 2))
    return dastc.sliding_window_logits(
        lambda x, f: model(x, f), batch["clip"], window, step, num_classes, flow
    )


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
    *,
    window: Pair | None = None,
    stride: Pair | None = None,
    align_corners: bool | None = None,
) -> tuple[Tensor, float]:
    """Per-class IoU ``(K,)`` and mIoU, in %, of ``model`` in eval mode.

    Each process evaluates its share of the clips (``rank`` of ``world``); the
    confusion matrices are summed over processes, so every process must call
    this. ``max_batches`` evaluates the first ``max_batches * batch`` clips only
    (the same clips for any number of processes). ``flow_for`` gives the flow a
    batch's forward takes (``method.flow_for``). ``exclude``: classes kept in
    the confusion matrix but left out of the mean (the SYNTHIA-Seq protocol's fence;
    SYNTHIA -> Cityscapes's terrain, truck and train).

    Labels at another resolution than the logits (the real val sets, read at the
    labels' stored size) are scored by upsampling the logits to them bilinearly
    (``align_corners``: ``None`` for the benchmark's own, see
    :func:`published_align_corners`), then the argmax. ``window``/``stride``:
    sliding-window inference (see :func:`clip_logits`).
    """
    was = model.training
    model.eval()
    ac = published_align_corners(val_ds) if align_corners is None else align_corners
    cm = dastc.ConfusionMatrix(num_classes, device=device)
    ds, n = val_ds, len(val_ds)  # type: ignore[arg-type]
    if max_batches is not None and max_batches * batch < n:
        ds = Subset(ds, list(range(max_batches * batch)))
    for b in val_batches(ds, batch, rank, world):
        b = {k: v.to(device) for k, v in b.items()}
        logits = clip_logits(model, b, flow_for, num_classes, window, stride)[:, -1]
        label = b["label"][:, -1]
        if logits.shape[-2:] == label.shape[-2:]:
            cm.update(logits.argmax(1), label)
        else:
            cm.update_from_logits(logits, label, align_corners=ac)
    model.train(was)
    cm.sync()
    iou, miou = cm.compute(exclude)
    return iou.cpu() * 100, float(miou) * 100


@torch.no_grad()
def predict_last_frames(
    models: dict[str, nn.Module], val_ds: Dataset[Any], flow_for: FlowFor,
    device: torch.device, n: int = 4, *, num_classes: int | None = None,
    window: Pair | None = None, stride: Pair | None = None, align_corners: bool | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:  # fmt: skip
    """The first ``n`` val clips (CPU) and each model's argmax on their last frame ``(n, H, W)``,
    at the labels' resolution (the logits upsampled to it as :func:`evaluate` scores them).
    ``window`` (sliding-window inference) needs ``num_classes``."""
    if window is not None and num_classes is None:
        raise ValueError("num_classes: needed with window (sliding-window inference)")
    ac = published_align_corners(val_ds) if align_corners is None else align_corners
    b = next(val_batches(val_ds, n))
    on_dev = {k: v.to(device) for k, v in b.items()}
    size = (int(b["label"].shape[-2]), int(b["label"].shape[-1]))
    preds = {}
    for name, model in models.items():
        was = model.training
        model.eval()
        logits = clip_logits(model, on_dev, flow_for, num_classes or 1, window, stride)[:, -1]
        preds[name] = dastc.upsample_logits(logits, size, align_corners=ac).argmax(1).cpu()
        model.train(was)
    return b, preds
