"""No host synchronisation in dastc's ops on CUDA (value checks off).

Each op runs under ``torch.cuda.set_sync_debug_mode("error")``, which raises on any
operation that makes the host wait for the device (``.item()``, ``nonzero``, a
device-to-host copy, ``bincount``'s size read...). The inputs are made before the
mode is switched on. On a machine without CUDA the same calls run on the CPU, so the
list itself stays tested; the sync check needs a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import dastc
from dastc import (
    BidirectionalClipMix,
    BlockMasking,
    ClassBalance,
    ConfusionMatrix,
    DistributionAlignment,
    EMATeacher,
    IntraInterClassAlignmentLoss,
    ShallowFeatureMix,
    SpatioTemporalPrototypeAggregator,
    WarmStartGuard,
)
from dastc import functional as DF
from dastc.methods import DASTC, MethodConfig
from dastc.methods._toy import ToySegmenter

B, T, C, H, W, K, CH = 2, 2, 3, 16, 16, 5, 8


def _ops(device: torch.device) -> list[tuple[str, Callable[[], object]]]:
    """``(name, call)`` for every op of a method step, inputs already on ``device``."""
    g = torch.Generator(device=device).manual_seed(0)
    gc = torch.Generator().manual_seed(0)

    def on(x: torch.Tensor) -> torch.Tensor:
        return x.to(device)

    xs, xt = (
        on(torch.rand(B, T, C, H, W, generator=gc)),
        on(torch.rand(B, T, C, H, W, generator=gc)),
    )
    ys = on(torch.randint(0, K, (B, T, H, W), generator=gc))
    ys[0, 0, :2] = 255
    logits = on(torch.randn(B, T, K, H, W, generator=gc))
    yt = logits.argmax(2)
    w = on(torch.rand(B, T, H, W, generator=gc))
    flow = on(torch.randn(B, T, 2, H, W, generator=gc))
    feats = on(torch.randn(B, T, CH, H // 2, W // 2, generator=gc)).requires_grad_()
    mask = on(torch.rand(B, T, H, W, generator=gc) > 0.5)
    smask = mask[..., ::2, ::2]
    agg = SpatioTemporalPrototypeAggregator(K, CH, sync=False).to(device)
    src_p = agg(feats.detach(), ys, w)
    tgt_p = agg(feats.detach() + 1, yt, w)
    teacher_student = ToySegmenter(K).to(device)
    teacher = EMATeacher(teacher_student, 0.99)
    cm = ConfusionMatrix(K)
    guard = WarmStartGuard(K, sync=False).to(device)
    torch.manual_seed(0)
    method = DASTC(ToySegmenter(K).to(device), K, MethodConfig(adapt_start=0))
    source, target = {"clip": xs, "label": ys}, {"clip": xt}

    def proto_backward() -> None:
        DF.class_prototypes(feats, ys, K, w).vectors.sum().backward()

    def method_step() -> None:
        method(source, target).loss.backward()

    return [
        ("bidirectional_clip_mix", lambda: DF.bidirectional_clip_mix(
            xs, ys, xt, yt, w, num_classes=K, generator=g, src_flow=flow, tgt_flow=flow)),
        ("BidirectionalClipMix", lambda: BidirectionalClipMix(K)(xs, ys, xt, yt, w, generator=g)),
        ("ShallowFeatureMix", lambda: ShallowFeatureMix()(feats, feats, smask, ~smask)),
        ("pseudo_label", lambda: DF.pseudo_label(logits)),
        ("temporal_pseudo_label", lambda: DF.temporal_pseudo_label(logits, flow, 0.9, logits)),
        ("weighted_cross_entropy", lambda: DF.weighted_cross_entropy(logits, ys, w)),
        ("class_prototypes", lambda: DF.class_prototypes(feats, ys, K, w)),
        ("class_prototypes backward", proto_backward),
        ("aggregator", lambda: agg(feats, ys, w)),
        ("aggregator update", lambda: agg.update(src_p)),
        ("memory_prototypes", agg.memory_prototypes),
        ("alignment infonce", lambda: IntraInterClassAlignmentLoss()(src_p, tgt_p)),
        ("alignment mmd", lambda: IntraInterClassAlignmentLoss(kind="mmd")(src_p, tgt_p)),
        ("adaptive_weights", lambda: DF.adaptive_weights(logits)),
        ("warp", lambda: DF.warp(xs, flow)),
        ("warp labels", lambda: DF.warp(ys, flow, mode="nearest")),
        ("flow_validity", lambda: DF.flow_validity(flow)),
        ("occlusion_mask", lambda: DF.occlusion_mask(flow, -flow)),
        ("strong_augment", lambda: DF.strong_augment(xs, generator=g, hue=0.1)),
        ("block_mask", lambda: DF.block_mask((B, T, H, W), 4, 0.7, generator=g)),
        ("BlockMasking", lambda: BlockMasking(4)(xs, generator=g)),
        ("ClassBalance", lambda: ClassBalance(K, sync=False).to(device)(logits)),
        ("DistributionAlignment",
         lambda: DistributionAlignment(K, sync=False).to(device)(logits, ys)),
        ("EMATeacher.update", lambda: teacher.update(teacher_student)),
        ("ConfusionMatrix.update", lambda: cm.update(yt, ys)),
        ("WarmStartGuard.observe_target", lambda: guard.observe_target(yt)),
        ("DASTC adapting step", method_step),
    ]  # fmt: skip


def test_the_op_list_runs_on_cpu() -> None:
    """The calls below are valid (they run on the CPU, value checks off)."""
    with dastc.value_checks(False):
        for name, call in _ops(torch.device("cpu")):
            try:
                call()
            except Exception as e:  # pragma: no cover - the message names the op
                raise AssertionError(f"{name}: {e!r}") from e


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the sync check needs CUDA")
def test_no_host_sync_on_cuda() -> None:
    """Every op of a method step runs without a host sync (value checks off)."""
    device = torch.device("cuda")
    ops = _ops(device)
    torch.cuda.synchronize()
    synced = []
    with dastc.value_checks(False):
        for name, call in ops:
            torch.cuda.set_sync_debug_mode("error")
            try:
                call()
            except RuntimeError as e:
                synced.append(f"{name}: {str(e).splitlines()[0]}")
            finally:
                torch.cuda.set_sync_debug_mode("default")
    assert not synced, "host syncs:\n" + "\n".join(synced)
