"""Bad-input matrix over every public entry point of dastc.

Each row of ``CASES`` is ``(entry point, kwargs builder, error, argument)``: the
builder returns valid keyword arguments with exactly one thing broken, and the
call must raise the documented error type (``ValueError`` for shape, value and
device, ``TypeError`` for dtype) with a message that starts with the name of the
offending argument (``"src_label: expected ..."``). A second device is simulated
with the ``"meta"`` device, so the matrix runs on a CPU-only machine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import dastc
from dastc import (
    BidirectionalClipMix,
    BlockMasking,
    ClassBalance,
    ConfusionMatrix,
    DistributionAlignment,
    EMATeacher,
    IntraInterClassAlignmentLoss,
    Prototypes,
    ShallowFeatureMix,
    SpatioTemporalPrototypeAggregator,
    WarmStartGuard,
    confusion_matrix,
    iou_from_confusion,
    mean_iou,
    sliding_window_logits,
    upsample_logits,
)
from dastc.data import GTA5, VIPER, Cityscapes, Shift, SyntheticDrivingClips, palette_for
from dastc.functional import (
    ClipTransform,
    adaptive_weights,
    align_distribution,
    apply_clip_transform,
    bidirectional_clip_mix,
    block_mask,
    class_balanced_scores,
    class_confidence_stats,
    class_distribution_stats,
    class_prototypes,
    class_sums,
    confidence_weights,
    draw_clip_transform,
    flow_validity,
    frame_mean_prototypes,
    frame_reliability,
    hue_rotation,
    mask_clip,
    occlusion_mask,
    prototype_infonce,
    prototype_mmd,
    prototypes_from_sums,
    pseudo_label,
    resize_mask,
    sample_class_masks,
    shallow_feature_mix,
    strong_augment,
    temporal_pseudo_label,
    vanished_classes,
    warp,
    weighted_cross_entropy,
)

B, T, C, H, W, K, CH = 2, 2, 3, 4, 4, 3, 5  # CH: feature channels
NAN, INF = float("nan"), float("inf")
Kwargs = dict[str, Any]


@pytest.fixture(autouse=True)
def _value_checks_on():
    """Label-range and finiteness checks read data; make sure they are on here."""
    with dastc.value_checks(True):
        yield


# ----------------------------------------------------------------------------- inputs
def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def clip(*lead: int, c: int = C, h: int = H, w: int = W) -> Tensor:
    return torch.rand(*lead, c, h, w, generator=_g())


def labels(*lead: int, h: int = H, w: int = W, k: int = K) -> Tensor:
    return torch.randint(0, k, (*lead, h, w), generator=_g())


def with_value(x: Tensor, value: float) -> Tensor:
    """``x`` with its first element set to ``value`` (an out-of-range label, NaN, ...)."""
    x = x.clone()
    x.view(-1)[0] = value
    return x


def meta(x: Tensor) -> Tensor:
    """The same shape and dtype on another device."""
    return torch.empty_like(x, device="meta")


def mix_kw(**over: Any) -> Kwargs:
    kw: Kwargs = dict(
        src_clip=clip(B, T),
        src_label=labels(B, T),
        tgt_clip=clip(B, T),
        tgt_label=labels(B, T),
        tgt_weight=torch.rand(B, T, H, W),
        num_classes=K,
    )
    return {**kw, **over}


def mix_module_kw(**over: Any) -> Kwargs:
    kw = mix_kw(**over)
    del kw["num_classes"]
    return kw


def fmix_kw(**over: Any) -> Kwargs:
    mask = torch.rand(B, T, 8, 8, generator=_g()) > 0.5
    kw: Kwargs = dict(
        src_feat=clip(B, T, c=CH), tgt_feat=clip(B, T, c=CH), s2t_mask=mask, t2s_mask=~mask
    )
    return {**kw, **over}


def ce_kw(**over: Any) -> Kwargs:
    kw: Kwargs = dict(
        logits=torch.randn(B, T, K, H, W), label=labels(B, T), weight=torch.rand(B, T, H, W)
    )
    return {**kw, **over}


def tpl_kw(**over: Any) -> Kwargs:
    kw: Kwargs = dict(
        prev_logits=torch.randn(B, T, K, H, W),
        flow=torch.zeros(B, T, 2, H, W),
        current_logits=torch.randn(B, T, K, H, W),
    )
    return {**kw, **over}


def proto_kw(**over: Any) -> Kwargs:
    kw: Kwargs = dict(
        features=clip(B, T, c=CH, h=2, w=2),
        labels=labels(B, T),
        num_classes=K,
        weights=torch.rand(B, T, H, W),
    )
    return {**kw, **over}


def agg_kw(**over: Any) -> Kwargs:
    kw = proto_kw(**over)
    del kw["num_classes"]
    return kw


def protos(**over: Any) -> Prototypes:
    p = Prototypes(vectors=torch.randn(K, CH), counts=torch.ones(K), present=torch.ones(K) > 0)
    return p._replace(**over)


def pair_kw(**over: Any) -> Kwargs:
    kw: Kwargs = dict(
        src_vectors=torch.randn(K, CH),
        tgt_vectors=torch.randn(K, CH),
        src_present=torch.tensor([True, True, False]),
        tgt_present=torch.tensor([True, False, True]),
    )
    return {**kw, **over}


def warp_kw(**over: Any) -> Kwargs:
    return {**dict(x=clip(B, T), flow=torch.zeros(B, T, 2, H, W)), **over}


def cm_kw(**over: Any) -> Kwargs:
    return {**dict(pred=labels(B, T), target=labels(B, T)), **over}


def teacher_kw(**over: Any) -> Kwargs:
    return {**dict(x=clip(B)), **over}


def synthetic_kw(**over: Any) -> Kwargs:
    return {**dict(domain="source", split="train", length=2, clip_len=2, size=(32, 64)), **over}


# ------------------------------------------------------------------ entry-point adapters
def mix_module(**kw: Any) -> object:
    return BidirectionalClipMix(K)(**kw)


def fmix_module(**kw: Any) -> object:
    return ShallowFeatureMix()(**kw)


def aggregator(**kw: Any) -> object:
    return SpatioTemporalPrototypeAggregator(K, CH)(**kw)


def aggregator_update(protos: Prototypes) -> None:
    SpatioTemporalPrototypeAggregator(K, CH).update(protos)


def alignment(src: Prototypes, tgt: Prototypes) -> object:
    return IntraInterClassAlignmentLoss()(src, tgt)


def _student() -> nn.Module:
    return nn.Conv2d(C, K, 1)


def teacher_pseudo_label(**kw: Any) -> object:
    return EMATeacher(_student()).pseudo_label(**kw)


def teacher_update(student: nn.Module) -> None:
    EMATeacher(_student()).update(student)


def cm_update(**kw: Any) -> None:
    ConfusionMatrix(K).update(**kw)


def viper(**kw: Any) -> object:
    return VIPER(**{"root": Path("/nonexistent/viper"), **kw})


def cm_update_from_logits(**kw: Any) -> None:
    ConfusionMatrix(K).update_from_logits(**kw)


def logits_kw(**over: Any) -> Kwargs:
    return {**dict(logits=torch.randn(B, T, K, H, W), target=labels(B, T, h=2 * H)), **over}


def _toy_forward(x: Tensor, flow: Tensor | None) -> Tensor:
    return x[..., :1, :, :].expand(*x.shape[:-3], K, *x.shape[-2:]).clone()


def slide_kw(**over: Any) -> Kwargs:
    kw: Kwargs = dict(
        forward=_toy_forward, clip=clip(B, T, h=8, w=8), window=(4, 4), stride=(2, 2),
        num_classes=K, flow=torch.zeros(B, T, 2, 8, 8),
    )  # fmt: skip
    return {**kw, **over}


# -------------------------------------------------------------------------- the matrix
@dataclass(frozen=True)
class Case:
    """One bad input: ``entry(**kwargs())`` must raise ``error`` naming ``arg``.

    ``match`` overrides the default pattern ``^arg:``.
    """

    id: str
    entry: Callable[..., object]
    kwargs: Callable[[], Kwargs]
    error: type[Exception]
    arg: str
    match: str | None = None

    @property
    def pattern(self) -> str:
        return self.match if self.match is not None else f"^{re.escape(self.arg)}:"


def class_balance_module(num_classes: int = K, **kw: Any) -> Tensor:
    return ClassBalance(num_classes)(**kw)


def dist_align_module(num_classes: int = K, **kw: Any) -> Tensor:
    return DistributionAlignment(num_classes)(**kw)


def augment_kw(**kw: Any) -> Kwargs:
    return {"clip": torch.rand(B, T, 3, H, W), "generator": _g(), **kw}


def dist_kw(**kw: Any) -> Kwargs:
    return {"logits": torch.randn(B, T, K, H, W), "source_labels": labels(B, T), **kw}


def clip_tf_kw(**kw: Any) -> Kwargs:
    base: Kwargs = dict(
        in_size=(H, W),
        out_size=(3, 3),
        size=torch.tensor([[H, W]] * B),
        offset=torch.zeros(B, 2, dtype=torch.long),
        flip=torch.ones(B) > 0,
    )
    return {**base, **kw}


def apply_tf_kw(**kw: Any) -> Kwargs:
    return {"transform": ClipTransform(**clip_tf_kw()), "x": clip(B, T), **kw}


def draw_tf_kw(**kw: Any) -> Kwargs:
    return {"batch": B, "in_size": (H, W), "out_size": (3, 3), "generator": _g(), **kw}


def block_kw(**kw: Any) -> Kwargs:
    return {"shape": (B, T, H, W), "patch_size": 2, "ratio": 0.5, "generator": _g(), **kw}


def mask_clip_kw(**kw: Any) -> Kwargs:
    return {"clip": clip(B, T), "mask": torch.ones(B, T, H, W, dtype=torch.bool), **kw}


def block_masking_module(**kw: Any) -> Tensor:
    return BlockMasking(patch_size=2)(**kw)


def vanished_kw(**kw: Any) -> Kwargs:
    return {"pseudo_share": torch.full((K,), 1 / K), "prior": torch.full((K,), 1 / K), **kw}


def guard_observe_target(**kw: Any) -> None:
    WarmStartGuard(K).observe_target(**kw)


def guard_observe_source(**kw: Any) -> None:
    WarmStartGuard(K).observe_source(**kw)


def guard_set_prior(**kw: Any) -> None:
    WarmStartGuard(K).set_prior(**kw)


CASES: list[Case] = [
    # --- bidirectional_clip_mix -------------------------------------------------------
    Case("mix-src_clip-rank3", bidirectional_clip_mix,
         lambda: mix_kw(src_clip=torch.rand(B, H, W)), ValueError, "src_clip"),
    Case("mix-src_clip-int", bidirectional_clip_mix,
         lambda: mix_kw(src_clip=torch.ones(B, T, C, H, W, dtype=torch.long)),
         TypeError, "src_clip"),
    Case("mix-tgt_clip-uint8", bidirectional_clip_mix,
         lambda: mix_kw(tgt_clip=torch.ones(B, T, C, H, W, dtype=torch.uint8)),
         TypeError, "tgt_clip"),
    Case("mix-src_label-float", bidirectional_clip_mix,
         lambda: mix_kw(src_label=labels(B, T).float()), TypeError, "src_label"),
    Case("mix-tgt_label-int32", bidirectional_clip_mix,
         lambda: mix_kw(tgt_label=labels(B, T).int()), TypeError, "tgt_label"),
    Case("mix-tgt_weight-long", bidirectional_clip_mix,
         lambda: mix_kw(tgt_weight=torch.ones(B, T, H, W, dtype=torch.long)),
         TypeError, "tgt_weight"),
    Case("mix-tgt_clip-W", bidirectional_clip_mix,
         lambda: mix_kw(tgt_clip=clip(B, T, w=W + 1)), ValueError, "tgt_clip"),
    Case("mix-src_label-T", bidirectional_clip_mix,
         lambda: mix_kw(src_label=labels(B, T + 1)), ValueError, "src_label"),
    Case("mix-src_label-image-rank", bidirectional_clip_mix,
         lambda: mix_kw(src_label=labels(B)), ValueError, "src_label"),
    Case("mix-tgt_label-B", bidirectional_clip_mix,
         lambda: mix_kw(tgt_label=labels(B + 1, T)), ValueError, "tgt_label"),
    Case("mix-tgt_weight-H", bidirectional_clip_mix,
         lambda: mix_kw(tgt_weight=torch.rand(B, T, H + 1, W)), ValueError, "tgt_weight"),
    Case("mix-src_label-ge-K", bidirectional_clip_mix,
         lambda: mix_kw(src_label=with_value(labels(B, T), K)), ValueError, "src_label"),
    Case("mix-tgt_label-negative", bidirectional_clip_mix,
         lambda: mix_kw(tgt_label=with_value(labels(B, T), -1)), ValueError, "tgt_label"),
    Case("mix-empty-batch", bidirectional_clip_mix,
         lambda: mix_kw(src_clip=clip(0, T), src_label=labels(0, T), tgt_clip=clip(0, T),
                        tgt_label=labels(0, T), tgt_weight=torch.rand(0, T, H, W)),
         ValueError, "src_clip"),
    Case("mix-tgt_clip-device", bidirectional_clip_mix,
         lambda: mix_kw(tgt_clip=meta(clip(B, T))), ValueError, "tgt_clip"),
    Case("mix-tgt_weight-device", bidirectional_clip_mix,
         lambda: mix_kw(tgt_weight=meta(torch.rand(B, T, H, W))), ValueError, "tgt_weight"),
    Case("mix-class_fraction-gt1", bidirectional_clip_mix,
         lambda: mix_kw(class_fraction=1.5), ValueError, "class_fraction"),
    Case("mix-class_fraction-negative", bidirectional_clip_mix,
         lambda: mix_kw(class_fraction=-0.1), ValueError, "class_fraction"),
    Case("mix-class_fraction-str", bidirectional_clip_mix,
         lambda: mix_kw(class_fraction="half"), TypeError, "class_fraction"),
    Case("mix-paste_threshold-without-confidence", bidirectional_clip_mix,
         lambda: mix_kw(paste_threshold=0.9), ValueError, "tgt_confidence"),
    Case("mix-paste_threshold-gt1", bidirectional_clip_mix,
         lambda: mix_kw(paste_threshold=2.0), ValueError, "paste_threshold"),
    Case("mix-src_flow-without-tgt_flow", bidirectional_clip_mix,
         lambda: mix_kw(src_flow=torch.zeros(B, T, 2, H, W)), ValueError, "tgt_flow"),
    Case("mix-src_flow-3-channels", bidirectional_clip_mix,
         lambda: mix_kw(src_flow=torch.zeros(B, T, 3, H, W), tgt_flow=torch.zeros(B, T, 3, H, W)),
         ValueError, "src_flow"),
    Case("mix-tgt_confidence-long", bidirectional_clip_mix,
         lambda: mix_kw(tgt_confidence=torch.ones(B, T, H, W, dtype=torch.long)),
         TypeError, "tgt_confidence"),
    Case("mix-rare_classes-long", bidirectional_clip_mix,
         lambda: mix_kw(rare_classes=torch.zeros(K, dtype=torch.long)), TypeError, "rare_classes"),
    Case("mix-ignore_index-a-class", bidirectional_clip_mix,
         lambda: mix_kw(ignore_index=1), ValueError, "ignore_index"),
    Case("mix-num_classes-0", bidirectional_clip_mix,
         lambda: mix_kw(num_classes=0), ValueError, "num_classes"),
    # --- BidirectionalClipMix ---------------------------------------------------------
    Case("BidirectionalClipMix-class_fraction", BidirectionalClipMix,
         lambda: dict(num_classes=K, class_fraction=2.0), ValueError, "class_fraction"),
    Case("BidirectionalClipMix-rare_classes", BidirectionalClipMix,
         lambda: dict(num_classes=K, rare_classes=[K]), ValueError, "rare_classes"),
    Case("BidirectionalClipMix-paste_threshold", BidirectionalClipMix,
         lambda: dict(num_classes=K, paste_threshold=-0.5), ValueError, "paste_threshold"),
    Case("BidirectionalClipMix-fwd-src_label-device", mix_module,
         lambda: mix_module_kw(src_label=meta(labels(B, T))), ValueError, "src_label"),
    Case("BidirectionalClipMix-fwd-tgt_label-ge-K", mix_module,
         lambda: mix_module_kw(tgt_label=with_value(labels(B, T), 7)), ValueError, "tgt_label"),
    # --- sample_class_masks -----------------------------------------------------------
    Case("sample_class_masks-labels-float", sample_class_masks,
         lambda: dict(labels=labels(B, T).float(), num_classes=K), TypeError, "labels"),
    Case("sample_class_masks-empty-batch", sample_class_masks,
         lambda: dict(labels=labels(0, T), num_classes=K), ValueError, "labels"),
    Case("sample_class_masks-labels-ge-K", sample_class_masks,
         lambda: dict(labels=with_value(labels(B, T), K), num_classes=K), ValueError, "labels"),
    Case("sample_class_masks-exclude-shape", sample_class_masks,
         lambda: dict(labels=labels(B, T), num_classes=K, exclude=torch.zeros(1, K) > 0),
         ValueError, "exclude"),
    Case("sample_class_masks-always-float", sample_class_masks,
         lambda: dict(labels=labels(B, T), num_classes=K, always=torch.zeros(K)),
         TypeError, "always"),
    # --- shallow_feature_mix / ShallowFeatureMix / resize_mask ------------------------
    Case("fmix-src_feat-rank3", shallow_feature_mix,
         lambda: fmix_kw(src_feat=torch.rand(B, H, W)), ValueError, "src_feat"),
    Case("fmix-src_feat-int", shallow_feature_mix,
         lambda: fmix_kw(src_feat=torch.ones(B, T, CH, H, W, dtype=torch.long)),
         TypeError, "src_feat"),
    Case("fmix-tgt_feat-C", shallow_feature_mix,
         lambda: fmix_kw(tgt_feat=clip(B, T, c=CH + 1)), ValueError, "tgt_feat"),
    Case("fmix-s2t_mask-float", shallow_feature_mix,
         lambda: fmix_kw(s2t_mask=torch.ones(B, T, H, W)), TypeError, "s2t_mask"),
    Case("fmix-t2s_mask-T", shallow_feature_mix,
         lambda: fmix_kw(t2s_mask=torch.ones(B, T + 1, H, W, dtype=torch.bool)),
         ValueError, "t2s_mask"),
    Case("fmix-s2t_mask-device", shallow_feature_mix,
         lambda: fmix_kw(s2t_mask=meta(torch.ones(B, T, H, W, dtype=torch.bool))),
         ValueError, "s2t_mask"),
    Case("fmix-empty-batch", shallow_feature_mix,
         lambda: fmix_kw(src_feat=clip(0, T, c=CH), tgt_feat=clip(0, T, c=CH),
                         s2t_mask=torch.ones(0, T, H, W) > 0, t2s_mask=torch.ones(0, T, H, W) > 0),
         ValueError, "src_feat"),
    Case("fmix-blend-0", shallow_feature_mix, lambda: fmix_kw(blend=0.0), ValueError, "blend"),
    Case("ShallowFeatureMix-blend-gt1", ShallowFeatureMix,
         lambda: dict(blend=1.5), ValueError, "blend"),
    Case("ShallowFeatureMix-fwd-s2t_mask-int", fmix_module,
         lambda: fmix_kw(s2t_mask=torch.ones(B, T, H, W, dtype=torch.long)),
         TypeError, "s2t_mask"),
    Case("resize_mask-mask-float", resize_mask,
         lambda: dict(mask=torch.ones(B, H, W), size=(2, 2)), TypeError, "mask"),
    Case("resize_mask-size-0", resize_mask,
         lambda: dict(mask=torch.ones(B, H, W) > 0, size=(0, 2)), ValueError, "size"),
    # --- weighted_cross_entropy -------------------------------------------------------
    Case("ce-logits-rank3", weighted_cross_entropy,
         lambda: ce_kw(logits=torch.randn(K, H, W)), ValueError, "logits"),
    Case("ce-logits-long", weighted_cross_entropy,
         lambda: ce_kw(logits=torch.ones(B, T, K, H, W, dtype=torch.long)), TypeError, "logits"),
    Case("ce-label-float", weighted_cross_entropy,
         lambda: ce_kw(label=labels(B, T).float()), TypeError, "label"),
    Case("ce-weight-long", weighted_cross_entropy,
         lambda: ce_kw(weight=torch.ones(B, T, H, W, dtype=torch.long)), TypeError, "weight"),
    Case("ce-label-H", weighted_cross_entropy,
         lambda: ce_kw(label=labels(B, T, h=H + 1)), ValueError, "label"),
    Case("ce-label-image-rank", weighted_cross_entropy,
         lambda: ce_kw(label=labels(B), weight=None), ValueError, "label"),
    Case("ce-weight-shape", weighted_cross_entropy,
         lambda: ce_kw(weight=torch.rand(B, T, H, W + 1)), ValueError, "weight"),
    Case("ce-label-ge-K", weighted_cross_entropy,
         lambda: ce_kw(label=with_value(labels(B, T), K)), ValueError, "label"),
    Case("ce-label-negative", weighted_cross_entropy,
         lambda: ce_kw(label=with_value(labels(B, T), -100)), ValueError, "label"),
    Case("ce-empty-batch", weighted_cross_entropy,
         lambda: dict(logits=torch.randn(0, T, K, H, W), label=labels(0, T)),
         ValueError, "logits"),
    Case("ce-label-device", weighted_cross_entropy,
         lambda: ce_kw(label=meta(labels(B, T))), ValueError, "label"),
    Case("ce-weight-device", weighted_cross_entropy,
         lambda: ce_kw(weight=meta(torch.rand(B, T, H, W))), ValueError, "weight"),
    Case("ce-normalize", weighted_cross_entropy,
         lambda: ce_kw(normalize="mean"), ValueError, "normalize"),
    Case("ce-ignore_index-a-class", weighted_cross_entropy,
         lambda: ce_kw(ignore_index=0), ValueError, "ignore_index"),
    Case("ce-weight-nan", weighted_cross_entropy,
         lambda: ce_kw(weight=with_value(torch.rand(B, T, H, W), NAN)), ValueError, "weight"),
    # --- pseudo_label / temporal_pseudo_label -----------------------------------------
    Case("pseudo_label-logits-long", pseudo_label,
         lambda: dict(logits=torch.ones(B, K, H, W, dtype=torch.long)), TypeError, "logits"),
    Case("pseudo_label-logits-rank3", pseudo_label,
         lambda: dict(logits=torch.randn(K, H, W)), ValueError, "logits"),
    Case("pseudo_label-empty-batch", pseudo_label,
         lambda: dict(logits=torch.randn(0, T, K, H, W)), ValueError, "logits"),
    Case("pseudo_label-threshold-gt1", pseudo_label,
         lambda: dict(logits=torch.randn(B, K, H, W), threshold=1.5), ValueError, "threshold"),
    Case("pseudo_label-threshold-negative", pseudo_label,
         lambda: dict(logits=torch.randn(B, K, H, W), threshold=-0.1), ValueError, "threshold"),
    Case("pseudo_label-threshold-nan", pseudo_label,
         lambda: dict(logits=torch.randn(B, K, H, W), threshold=NAN), ValueError, "threshold"),
    Case("pseudo_label-threshold-str", pseudo_label,
         lambda: dict(logits=torch.randn(B, K, H, W), threshold="high"), TypeError, "threshold"),
    Case("pseudo_label-logits-nan", pseudo_label,
         lambda: dict(logits=with_value(torch.randn(B, K, H, W), NAN)), ValueError, "logits"),
    Case("pseudo_label-logits-inf", pseudo_label,
         lambda: dict(logits=with_value(torch.randn(B, K, H, W), INF)), ValueError, "logits"),
    Case("temporal_pseudo_label-flow-long", temporal_pseudo_label,
         lambda: tpl_kw(flow=torch.zeros(B, T, 2, H, W, dtype=torch.long)), TypeError, "flow"),
    Case("temporal_pseudo_label-flow-H", temporal_pseudo_label,
         lambda: tpl_kw(flow=torch.zeros(B, T, 2, H + 1, W)), ValueError, "flow"),
    Case("temporal_pseudo_label-flow-device", temporal_pseudo_label,
         lambda: tpl_kw(flow=meta(torch.zeros(B, T, 2, H, W))), ValueError, "flow"),
    Case("temporal_pseudo_label-current_logits-K", temporal_pseudo_label,
         lambda: tpl_kw(current_logits=torch.randn(B, T, K + 1, H, W)),
         ValueError, "current_logits"),
    Case("temporal_pseudo_label-empty-batch", temporal_pseudo_label,
         lambda: tpl_kw(prev_logits=torch.randn(0, T, K, H, W), flow=torch.zeros(0, T, 2, H, W),
                        current_logits=None),
         ValueError, "prev_logits"),
    Case("temporal_pseudo_label-ignore_index", temporal_pseudo_label,
         lambda: tpl_kw(ignore_index=1), ValueError, "ignore_index"),
    Case("temporal_pseudo_label-threshold", temporal_pseudo_label,
         lambda: tpl_kw(threshold=1.01), ValueError, "threshold"),
    Case("temporal_pseudo_label-prev_logits-nan", temporal_pseudo_label,
         lambda: tpl_kw(prev_logits=with_value(torch.randn(B, T, K, H, W), NAN)),
         ValueError, "prev_logits"),
    # --- class_sums / class_prototypes / prototypes_from_sums -------------------------
    Case("class_sums-features-long", class_sums,
         lambda: proto_kw(features=torch.ones(B, T, CH, 2, 2, dtype=torch.long)),
         TypeError, "features"),
    Case("class_sums-labels-float", class_sums,
         lambda: proto_kw(labels=labels(B, T).float()), TypeError, "labels"),
    Case("class_sums-labels-image-rank", class_sums,
         lambda: proto_kw(labels=labels(B), weights=None), ValueError, "labels"),
    Case("class_sums-labels-T", class_sums,
         lambda: proto_kw(labels=labels(B, T + 1), weights=None), ValueError, "labels"),
    Case("class_sums-weights-long", class_sums,
         lambda: proto_kw(weights=torch.ones(B, T, H, W, dtype=torch.long)),
         TypeError, "weights"),
    Case("class_sums-weights-shape", class_sums,
         lambda: proto_kw(weights=torch.rand(B, T, H, W + 1)), ValueError, "weights"),
    Case("class_sums-labels-ge-K", class_sums,
         lambda: proto_kw(labels=with_value(labels(B, T), K)), ValueError, "labels"),
    Case("class_sums-labels-device", class_sums,
         lambda: proto_kw(labels=meta(labels(B, T))), ValueError, "labels"),
    Case("class_sums-weights-device", class_sums,
         lambda: proto_kw(weights=meta(torch.rand(B, T, H, W))), ValueError, "weights"),
    Case("class_sums-features-inf", class_sums,
         lambda: proto_kw(features=with_value(clip(B, T, c=CH, h=2, w=2), INF)),
         ValueError, "features"),
    Case("class_prototypes-labels-negative", class_prototypes,
         lambda: proto_kw(labels=with_value(labels(B, T), -1)), ValueError, "labels"),
    Case("class_prototypes-num_classes-0", class_prototypes,
         lambda: proto_kw(num_classes=0), ValueError, "num_classes"),
    Case("class_prototypes-ignore_index-a-class", class_prototypes,
         lambda: proto_kw(ignore_index=2), ValueError, "ignore_index"),
    Case("class_prototypes-weights-nan", class_prototypes,
         lambda: proto_kw(weights=with_value(torch.rand(B, T, H, W), NAN)),
         ValueError, "weights"),
    Case("frame_mean_prototypes-labels-ge-K", frame_mean_prototypes,
         lambda: proto_kw(labels=with_value(labels(B, T), K)), ValueError, "labels"),
    Case("frame_mean_prototypes-labels-T", frame_mean_prototypes,
         lambda: proto_kw(labels=labels(B, T + 1), weights=None), ValueError, "labels"),
    Case("frame_mean_prototypes-min_pixels-0", frame_mean_prototypes,
         lambda: proto_kw(min_pixels=0), ValueError, "min_pixels"),
    Case("prototypes_from_sums-sums-rank1", prototypes_from_sums,
         lambda: dict(sums=torch.ones(K), counts=torch.ones(K)), ValueError, "sums"),
    Case("prototypes_from_sums-counts-K", prototypes_from_sums,
         lambda: dict(sums=torch.ones(K, CH), counts=torch.ones(K + 1)), ValueError, "counts"),
    Case("prototypes_from_sums-counts-long", prototypes_from_sums,
         lambda: dict(sums=torch.ones(K, CH), counts=torch.ones(K, dtype=torch.long)),
         TypeError, "counts"),
    Case("prototypes_from_sums-counts-device", prototypes_from_sums,
         lambda: dict(sums=torch.ones(K, CH), counts=meta(torch.ones(K))), ValueError, "counts"),
    # --- confidence_weights / frame_reliability / adaptive_weights --------------------
    Case("confidence_weights-logits-long", confidence_weights,
         lambda: dict(logits=torch.ones(B, K, H, W, dtype=torch.long)), TypeError, "logits"),
    Case("frame_reliability-logits-rank3", frame_reliability,
         lambda: dict(logits=torch.randn(K, H, W)), ValueError, "logits"),
    Case("adaptive_weights-logits-rank6", adaptive_weights,
         lambda: dict(logits=torch.randn(1, B, T, K, H, W)), ValueError, "logits"),
    Case("adaptive_weights-no-classes", adaptive_weights,
         lambda: dict(logits=torch.randn(B, T, 0, H, W)), ValueError, "logits"),
    Case("frame_reliability-no-pixels", frame_reliability,
         lambda: dict(logits=torch.randn(B, T, K, 0, W)), ValueError, "logits"),
    # --- SpatioTemporalPrototypeAggregator --------------------------------------------
    Case("Aggregator-momentum", SpatioTemporalPrototypeAggregator,
         lambda: dict(num_classes=K, feat_dim=CH, momentum=1.5), ValueError, "momentum"),
    Case("Aggregator-feat_dim-0", SpatioTemporalPrototypeAggregator,
         lambda: dict(num_classes=K, feat_dim=0), ValueError, "feat_dim"),
    Case("Aggregator-ignore_index-a-class", SpatioTemporalPrototypeAggregator,
         lambda: dict(num_classes=K, feat_dim=CH, ignore_index=2), ValueError, "ignore_index"),
    Case("Aggregator-fwd-features-C", aggregator,
         lambda: agg_kw(features=clip(B, T, c=CH + 1, h=2, w=2)), ValueError, "features"),
    Case("Aggregator-fwd-labels-device", aggregator,
         lambda: agg_kw(labels=meta(labels(B, T))), ValueError, "labels"),
    Case("Aggregator-fwd-labels-ge-K", aggregator,
         lambda: agg_kw(labels=with_value(labels(B, T), 99)), ValueError, "labels"),
    Case("Aggregator-update-vectors-shape", aggregator_update,
         lambda: dict(protos=protos(vectors=torch.randn(K, CH + 1))), ValueError, "protos.vectors"),
    Case("Aggregator-update-present-float", aggregator_update,
         lambda: dict(protos=protos(present=torch.ones(K))), TypeError, "protos.present"),
    Case("Aggregator-update-device", aggregator_update,
         lambda: dict(protos=protos(vectors=meta(torch.randn(K, CH)))), ValueError, "protos"),
    # --- prototype_infonce / prototype_mmd / IntraInterClassAlignmentLoss -------------
    Case("infonce-src_vectors-rank3", prototype_infonce,
         lambda: pair_kw(src_vectors=torch.randn(1, K, CH)), ValueError, "src_vectors"),
    Case("infonce-src_vectors-long", prototype_infonce,
         lambda: pair_kw(src_vectors=torch.ones(K, CH, dtype=torch.long)),
         TypeError, "src_vectors"),
    Case("infonce-tgt_vectors-C", prototype_infonce,
         lambda: pair_kw(tgt_vectors=torch.randn(K, CH + 1)), ValueError, "tgt_vectors"),
    Case("infonce-src_present-float", prototype_infonce,
         lambda: pair_kw(src_present=torch.ones(K)), TypeError, "src_present"),
    Case("infonce-tgt_present-K", prototype_infonce,
         lambda: pair_kw(tgt_present=torch.ones(K + 1) > 0), ValueError, "tgt_present"),
    Case("infonce-tgt_vectors-device", prototype_infonce,
         lambda: pair_kw(tgt_vectors=meta(torch.randn(K, CH))), ValueError, "tgt_vectors"),
    Case("infonce-temperature-negative", prototype_infonce,
         lambda: pair_kw(temperature=-0.1), ValueError, "temperature"),
    Case("infonce-temperature-0", prototype_infonce,
         lambda: pair_kw(temperature=0.0), ValueError, "temperature"),
    Case("mmd-bandwidth-0", prototype_mmd, lambda: pair_kw(bandwidth=0.0), ValueError, "bandwidth"),
    Case("mmd-multipliers-empty", prototype_mmd,
         lambda: pair_kw(multipliers=()), ValueError, "multipliers"),
    Case("mmd-multipliers-negative", prototype_mmd,
         lambda: pair_kw(multipliers=(1.0, -2.0)), ValueError, "multipliers"),
    Case("AlignmentLoss-kind", IntraInterClassAlignmentLoss,
         lambda: dict(kind="cosine"), ValueError, "kind"),
    Case("AlignmentLoss-temperature", IntraInterClassAlignmentLoss,
         lambda: dict(temperature=-1.0), ValueError, "temperature"),
    Case("AlignmentLoss-fwd-K", alignment,
         lambda: dict(src=protos(), tgt=protos(vectors=torch.randn(K + 1, CH))),
         ValueError, "tgt_vectors"),
    Case("AlignmentLoss-fwd-present-long", alignment,
         lambda: dict(src=protos(present=torch.ones(K, dtype=torch.long)), tgt=protos()),
         TypeError, "src_present"),
    # --- warp / flow_validity / occlusion_mask ----------------------------------------
    Case("warp-flow-long", warp,
         lambda: warp_kw(flow=torch.zeros(B, T, 2, H, W, dtype=torch.long)), TypeError, "flow"),
    Case("warp-flow-3-channels", warp,
         lambda: warp_kw(flow=torch.zeros(B, T, 3, H, W)), ValueError, "flow"),
    Case("warp-x-W", warp, lambda: warp_kw(x=clip(B, T, w=W + 1)), ValueError, "flow"),
    Case("warp-x-image-rank", warp, lambda: warp_kw(x=clip(B)), ValueError, "x"),
    Case("warp-x-long-bilinear", warp,
         lambda: warp_kw(x=labels(B, T)), TypeError, "x"),
    Case("warp-mode", warp, lambda: warp_kw(mode="bicubic"), ValueError, "mode"),
    Case("warp-flow-device", warp,
         lambda: warp_kw(flow=meta(torch.zeros(B, T, 2, H, W))), ValueError, "flow"),
    Case("flow_validity-flow-rank3", flow_validity,
         lambda: dict(flow=torch.zeros(2, H, W)), ValueError, "flow"),
    Case("occlusion_mask-flow_bw-shape", occlusion_mask,
         lambda: dict(flow_fw=torch.zeros(B, 2, H, W), flow_bw=torch.zeros(B, 2, H, W + 1)),
         ValueError, "flow_bw"),
    Case("occlusion_mask-flow_bw-device", occlusion_mask,
         lambda: dict(flow_fw=torch.zeros(B, 2, H, W), flow_bw=meta(torch.zeros(B, 2, H, W))),
         ValueError, "flow_bw"),
    Case("occlusion_mask-alpha1-negative", occlusion_mask,
         lambda: dict(flow_fw=torch.zeros(B, 2, H, W), flow_bw=torch.zeros(B, 2, H, W),
                      alpha1=-0.01),
         ValueError, "alpha1"),
    Case("occlusion_mask-alpha2-str", occlusion_mask,
         lambda: dict(flow_fw=torch.zeros(B, 2, H, W), flow_bw=torch.zeros(B, 2, H, W),
                      alpha2="0.5"),
         TypeError, "alpha2"),
    # --- EMATeacher -------------------------------------------------------------------
    Case("EMATeacher-student-str", EMATeacher,
         lambda: dict(student="resnet"), TypeError, "student"),
    Case("EMATeacher-momentum-gt1", EMATeacher,
         lambda: dict(student=_student(), momentum=1.5), ValueError, "momentum"),
    Case("EMATeacher-pseudo_label-x-long", teacher_pseudo_label,
         lambda: teacher_kw(x=torch.ones(B, C, H, W, dtype=torch.long)), TypeError, "x"),
    Case("EMATeacher-pseudo_label-x-rank3", teacher_pseudo_label,
         lambda: teacher_kw(x=torch.rand(C, H, W)), ValueError, "x"),
    Case("EMATeacher-pseudo_label-threshold", teacher_pseudo_label,
         lambda: teacher_kw(threshold=2.0), ValueError, "threshold"),
    Case("EMATeacher-pseudo_label-size", teacher_pseudo_label,
         lambda: teacher_kw(size=(0, W)), ValueError, "size"),
    Case("EMATeacher-pseudo_label-empty-batch", teacher_pseudo_label,
         lambda: teacher_kw(x=clip(0)), ValueError, "x"),
    Case("EMATeacher-update-student-mismatch", teacher_update,
         lambda: dict(student=nn.Conv2d(C, K + 1, 1)), ValueError, "student"),
    # --- metrics ----------------------------------------------------------------------
    Case("confusion_matrix-pred-float", confusion_matrix,
         lambda: cm_kw(pred=labels(B, T).float(), num_classes=K), TypeError, "pred"),
    Case("confusion_matrix-target-int32", confusion_matrix,
         lambda: cm_kw(target=labels(B, T).int(), num_classes=K), TypeError, "target"),
    Case("confusion_matrix-pred-shape", confusion_matrix,
         lambda: cm_kw(pred=labels(B, T, w=W + 1), num_classes=K), ValueError, "pred"),
    Case("confusion_matrix-target-ge-K", confusion_matrix,
         lambda: cm_kw(target=with_value(labels(B, T), K), num_classes=K), ValueError, "target"),
    Case("confusion_matrix-pred-ignore_index", confusion_matrix,
         lambda: cm_kw(pred=with_value(labels(B, T), 255), num_classes=K), ValueError, "pred"),
    Case("confusion_matrix-pred-device", confusion_matrix,
         lambda: cm_kw(pred=meta(labels(B, T)), num_classes=K), ValueError, "pred"),
    Case("confusion_matrix-num_classes-0", confusion_matrix,
         lambda: cm_kw(num_classes=0), ValueError, "num_classes"),
    Case("mean_iou-target-negative", mean_iou,
         lambda: cm_kw(target=with_value(labels(B, T), -1), num_classes=K), ValueError, "target"),
    Case("iou_from_confusion-cm-rank3", iou_from_confusion,
         lambda: dict(cm=torch.zeros(1, K, K)), ValueError, "cm"),
    Case("iou_from_confusion-cm-not-square", iou_from_confusion,
         lambda: dict(cm=torch.zeros(K, K + 1)), ValueError, "cm"),
    Case("iou_from_confusion-cm-list", iou_from_confusion,
         lambda: dict(cm=[[1, 0], [0, 1]]), TypeError, "cm"),
    Case("ConfusionMatrix-ignore_index-a-class", ConfusionMatrix,
         lambda: dict(num_classes=K, ignore_index=1), ValueError, "ignore_index"),
    Case("ConfusionMatrix.update-pred-rank2", cm_update,
         lambda: cm_kw(pred=torch.zeros(H, W, dtype=torch.long)), ValueError, "pred"),
    Case("ConfusionMatrix.update-target-float", cm_update,
         lambda: cm_kw(target=labels(B, T).float()), TypeError, "target"),
    Case("ConfusionMatrix.update-target-ge-K", cm_update,
         lambda: cm_kw(target=with_value(labels(B, T), 9)), ValueError, "target"),
    Case("ConfusionMatrix.update-pred-device", cm_update,
         lambda: cm_kw(pred=meta(labels(B, T))), ValueError, "pred"),
    Case("upsample_logits-logits-long", upsample_logits,
         lambda: dict(logits=labels(B, T), size=(8, 8)), TypeError, "logits"),
    Case("upsample_logits-logits-rank3", upsample_logits,
         lambda: dict(logits=torch.randn(K, H, W), size=(8, 8)), ValueError, "logits"),
    Case("upsample_logits-size-0", upsample_logits,
         lambda: dict(logits=torch.randn(B, K, H, W), size=(0, 8)), ValueError, "size"),
    Case("upsample_logits-align_corners-str", upsample_logits,
         lambda: dict(logits=torch.randn(B, K, H, W), size=(8, 8), align_corners="yes"),
         TypeError, "align_corners"),
    Case("ConfusionMatrix.update_from_logits-K", cm_update_from_logits,
         lambda: logits_kw(logits=torch.randn(B, T, K + 1, H, W)), ValueError, "logits"),
    Case("ConfusionMatrix.update_from_logits-logits-long", cm_update_from_logits,
         lambda: logits_kw(logits=torch.ones(B, T, K, H, W, dtype=torch.long)),
         TypeError, "logits"),
    Case("ConfusionMatrix.update_from_logits-target-float", cm_update_from_logits,
         lambda: logits_kw(target=labels(B, T).float()), TypeError, "target"),
    Case("ConfusionMatrix.update_from_logits-target-T", cm_update_from_logits,
         lambda: logits_kw(target=labels(B, T + 1)), ValueError, "target"),
    Case("ConfusionMatrix.update_from_logits-target-rank", cm_update_from_logits,
         lambda: logits_kw(target=labels(B)), ValueError, "target"),
    Case("ConfusionMatrix.update_from_logits-target-ge-K", cm_update_from_logits,
         lambda: logits_kw(target=with_value(labels(B, T), K)), ValueError, "target"),
    Case("ConfusionMatrix.update_from_logits-target-device", cm_update_from_logits,
         lambda: logits_kw(target=meta(labels(B, T))), ValueError, "logits"),
    Case("sliding_window_logits-forward-str", sliding_window_logits,
         lambda: slide_kw(forward="model"), TypeError, "forward"),
    Case("sliding_window_logits-clip-long", sliding_window_logits,
         lambda: slide_kw(clip=torch.ones(B, T, C, 8, 8, dtype=torch.long)), TypeError, "clip"),
    Case("sliding_window_logits-clip-rank3", sliding_window_logits,
         lambda: slide_kw(clip=torch.rand(C, 8, 8), flow=None), ValueError, "clip"),
    Case("sliding_window_logits-clip-empty", sliding_window_logits,
         lambda: slide_kw(clip=clip(0, T, h=8, w=8), flow=None), ValueError, "clip"),
    Case("sliding_window_logits-window-0", sliding_window_logits,
         lambda: slide_kw(window=(0, 4)), ValueError, "window"),
    Case("sliding_window_logits-stride-float", sliding_window_logits,
         lambda: slide_kw(stride=(2.0, 2)), ValueError, "stride"),
    Case("sliding_window_logits-stride-gap", sliding_window_logits,
         lambda: slide_kw(window=(2, 2), stride=(3, 1)), ValueError, "stride"),
    Case("sliding_window_logits-num_classes-0", sliding_window_logits,
         lambda: slide_kw(num_classes=0), ValueError, "num_classes"),
    Case("sliding_window_logits-flow-W", sliding_window_logits,
         lambda: slide_kw(flow=torch.zeros(B, T, 2, 8, 9)), ValueError, "flow"),
    Case("sliding_window_logits-flow-3ch", sliding_window_logits,
         lambda: slide_kw(flow=torch.zeros(B, T, 3, 8, 8)), ValueError, "flow"),
    Case("sliding_window_logits-flow-device", sliding_window_logits,
         lambda: slide_kw(flow=meta(torch.zeros(B, T, 2, 8, 8))), ValueError, "flow"),
    Case("sliding_window_logits-forward-K", sliding_window_logits,
         lambda: slide_kw(num_classes=K + 1), ValueError, "forward"),
    Case("sliding_window_logits-align_corners", sliding_window_logits,
         lambda: slide_kw(align_corners=1), TypeError, "align_corners"),
    # --- data -------------------------------------------------------------------------
    Case("SyntheticDrivingClips-domain", SyntheticDrivingClips,
         lambda: synthetic_kw(domain="real"), ValueError, "domain"),
    Case("SyntheticDrivingClips-split", SyntheticDrivingClips,
         lambda: synthetic_kw(split="test"), ValueError, "split"),
    Case("SyntheticDrivingClips-length", SyntheticDrivingClips,
         lambda: synthetic_kw(length=-1), ValueError, "length"),
    Case("SyntheticDrivingClips-clip_len", SyntheticDrivingClips,
         lambda: synthetic_kw(clip_len=0), ValueError, "clip_len"),
    Case("SyntheticDrivingClips-size", SyntheticDrivingClips,
         lambda: synthetic_kw(size=(8, 64)), ValueError, "size"),
    Case("SyntheticDrivingClips-seed", SyntheticDrivingClips,
         lambda: synthetic_kw(seed=0.5), TypeError, "seed"),
    Case("SyntheticDrivingClips-shift", SyntheticDrivingClips,
         lambda: synthetic_kw(shift={"hue": 30.0}), TypeError, "shift"),
    Case("Shift-blur-negative", Shift, lambda: dict(blur=-1.0), ValueError, "blur"),
    Case("Shift-hue-nan", Shift, lambda: dict(hue=NAN), ValueError, "hue"),
    Case("VIPER-clip_len", viper, lambda: dict(clip_len=0), ValueError, "clip_len"),
    Case("VIPER-size", viper, lambda: dict(size=(0, 64)), ValueError, "size"),
    Case("VIPER-label_size", viper, lambda: dict(label_size="full"), ValueError, "label_size"),
    Case("Cityscapes-label_size", Cityscapes,
         lambda: dict(root="/nonexistent/cs", label_size=None), ValueError, "label_size"),
    Case("GTA5-label_size", GTA5,
         lambda: dict(root="/nonexistent/gta5", label_size="1024"), ValueError, "label_size"),
    Case("palette_for-unknown-class", palette_for,
         lambda: dict(class_names=["road", "boat"]), ValueError, "class_names"),
    Case("palette_for-str", palette_for, lambda: dict(class_names="road"), TypeError,
         "class_names"),
    Case("palette_for-empty", palette_for, lambda: dict(class_names=[]), ValueError,
         "class_names"),
    Case("strong_augment-clip-long", strong_augment,
         lambda: augment_kw(clip=torch.ones(B, T, 3, H, W, dtype=torch.long)), TypeError, "clip"),
    Case("strong_augment-clip-4ch", strong_augment,
         lambda: augment_kw(clip=torch.rand(B, T, 4, H, W)), ValueError, "clip"),
    Case("strong_augment-clip-2px", strong_augment,
         lambda: augment_kw(clip=torch.rand(B, T, 3, 2, W)), ValueError, "clip"),
    Case("strong_augment-hue-negative", strong_augment,
         lambda: augment_kw(hue=-0.1), ValueError, "hue"),
    Case("strong_augment-p_jitter", strong_augment,
         lambda: augment_kw(p_jitter=1.5), ValueError, "p_jitter"),
    Case("strong_augment-p_blur", strong_augment,
         lambda: augment_kw(p_blur=-0.5), ValueError, "p_blur"),
    Case("hue_rotation-angle-2d", hue_rotation,
         lambda: dict(angle=torch.zeros(2, 2)), ValueError, "angle"),
    Case("hue_rotation-angle-long", hue_rotation,
         lambda: dict(angle=torch.zeros(2, dtype=torch.long)), TypeError, "angle"),
    Case("class_confidence_stats-logits-long", class_confidence_stats,
         lambda: dict(logits=torch.ones(B, K, H, W, dtype=torch.long)), TypeError, "logits"),
    Case("class_confidence_stats-logits-rank3", class_confidence_stats,
         lambda: dict(logits=torch.randn(K, H, W)), ValueError, "logits"),
    Case("class_balanced_scores-confidence-K", class_balanced_scores,
         lambda: dict(logits=torch.randn(B, T, K, H, W), class_confidence=torch.ones(K + 1)),
         ValueError, "class_confidence"),
    Case("ClassBalance-num_classes", ClassBalance, lambda: dict(num_classes=0),
         ValueError, "num_classes"),
    Case("ClassBalance-momentum", ClassBalance, lambda: dict(num_classes=K, momentum=1.5),
         ValueError, "momentum"),
    Case("ClassBalance-logits-K", class_balance_module,
         lambda: dict(logits=torch.randn(B, T, K + 1, H, W)), ValueError, "logits"),
    Case("class_distribution_stats-labels-float", class_distribution_stats,
         lambda: dist_kw(source_labels=torch.zeros(B, T, H, W)), TypeError, "source_labels"),
    Case("class_distribution_stats-logits-rank3", class_distribution_stats,
         lambda: dist_kw(logits=torch.randn(K, H, W)), ValueError, "logits"),
    Case("align_distribution-prior-K", align_distribution,
         lambda: dict(logits=torch.randn(B, K, H, W), source_prior=torch.ones(K + 1),
                      target_prior=torch.ones(K)), ValueError, "source_prior"),
    Case("align_distribution-prior-long", align_distribution,
         lambda: dict(logits=torch.randn(B, K, H, W), source_prior=torch.ones(K),
                      target_prior=torch.ones(K, dtype=torch.long)), TypeError, "target_prior"),
    Case("DistributionAlignment-momentum", DistributionAlignment,
         lambda: dict(num_classes=K, momentum=-0.1), ValueError, "momentum"),
    Case("DistributionAlignment-logits-K", dist_align_module,
         lambda: dist_kw(logits=torch.randn(B, T, K + 1, H, W)), ValueError, "logits"),
    # --- clip augmentation (rescale, crop, flip) ---------------------------------------
    Case("draw_clip_transform-batch-0", draw_clip_transform,
         lambda: draw_tf_kw(batch=0), ValueError, "batch"),
    Case("draw_clip_transform-in_size-0", draw_clip_transform,
         lambda: draw_tf_kw(in_size=(0, W)), ValueError, "in_size"),
    Case("draw_clip_transform-out_size-int", draw_clip_transform,
         lambda: draw_tf_kw(out_size=512), ValueError, "out_size"),
    Case("draw_clip_transform-out_size-float", draw_clip_transform,
         lambda: draw_tf_kw(out_size=(3.0, 3)), ValueError, "out_size"),
    Case("draw_clip_transform-scale-reversed", draw_clip_transform,
         lambda: draw_tf_kw(scale=(2.0, 0.5)), ValueError, "scale"),
    Case("draw_clip_transform-scale-0", draw_clip_transform,
         lambda: draw_tf_kw(scale=(0.0, 1.0)), ValueError, "scale"),
    Case("draw_clip_transform-scale-inf", draw_clip_transform,
         lambda: draw_tf_kw(scale=(0.5, INF)), ValueError, "scale"),
    Case("draw_clip_transform-scale-number", draw_clip_transform,
         lambda: draw_tf_kw(scale=1.5), TypeError, "scale"),
    Case("draw_clip_transform-flip-gt1", draw_clip_transform,
         lambda: draw_tf_kw(flip=1.5), ValueError, "flip"),
    Case("draw_clip_transform-flip-str", draw_clip_transform,
         lambda: draw_tf_kw(flip="yes"), TypeError, "flip"),
    Case("draw_clip_transform-generator-device", draw_clip_transform,
         lambda: draw_tf_kw(device="meta"), ValueError, "generator"),
    Case("ClipTransform-size-float", ClipTransform,
         lambda: clip_tf_kw(size=torch.ones(B, 2)), TypeError, "size"),
    Case("ClipTransform-size-3", ClipTransform,
         lambda: clip_tf_kw(size=torch.ones(B, 3, dtype=torch.long)), ValueError, "size"),
    Case("ClipTransform-offset-B", ClipTransform,
         lambda: clip_tf_kw(offset=torch.zeros(B + 1, 2, dtype=torch.long)), ValueError, "offset"),
    Case("ClipTransform-flip-long", ClipTransform,
         lambda: clip_tf_kw(flip=torch.ones(B, dtype=torch.long)), TypeError, "flip"),
    Case("ClipTransform-flip-B", ClipTransform,
         lambda: clip_tf_kw(flip=torch.ones(B + 1) > 0), ValueError, "flip"),
    Case("ClipTransform-flip-device", ClipTransform,
         lambda: clip_tf_kw(flip=meta(torch.ones(B) > 0)), ValueError, "flip"),
    Case("ClipTransform-out_size-negative", ClipTransform,
         lambda: clip_tf_kw(out_size=(-1, 3)), ValueError, "out_size"),
    Case("apply_clip_transform-transform-tuple", apply_clip_transform,
         lambda: apply_tf_kw(transform=((H, W), (3, 3))), TypeError, "transform"),
    Case("apply_clip_transform-x-rank2", apply_clip_transform,
         lambda: apply_tf_kw(x=torch.rand(H, W)), ValueError, "x"),
    Case("apply_clip_transform-x-rank6", apply_clip_transform,
         lambda: apply_tf_kw(x=torch.rand(B, T, 1, C, H, W)), ValueError, "x"),
    Case("apply_clip_transform-x-complex", apply_clip_transform,
         lambda: apply_tf_kw(x=torch.zeros(B, T, C, H, W, dtype=torch.complex64)),
         TypeError, "x"),
    Case("apply_clip_transform-x-B", apply_clip_transform,
         lambda: apply_tf_kw(x=clip(B + 1, T)), ValueError, "x"),
    Case("apply_clip_transform-x-H", apply_clip_transform,
         lambda: apply_tf_kw(x=clip(B, T, h=H + 1)), ValueError, "x"),
    Case("apply_clip_transform-label-W", apply_clip_transform,
         lambda: apply_tf_kw(x=labels(B, T, w=W + 2)), ValueError, "x"),
    Case("apply_clip_transform-x-device", apply_clip_transform,
         lambda: apply_tf_kw(x=meta(clip(B, T))), ValueError, "x"),
    Case("apply_clip_transform-label-bilinear", apply_clip_transform,
         lambda: apply_tf_kw(x=labels(B, T), mode="bilinear"), TypeError, "x"),
    Case("apply_clip_transform-flow-3ch", apply_clip_transform,
         lambda: apply_tf_kw(x=clip(B, T), mode="flow"), ValueError, "x"),
    Case("apply_clip_transform-flow-long", apply_clip_transform,
         lambda: apply_tf_kw(x=torch.zeros(B, T, 2, H, W, dtype=torch.long), mode="flow"),
         TypeError, "x"),
    Case("apply_clip_transform-mode", apply_clip_transform,
         lambda: apply_tf_kw(mode="bicubic"), ValueError, "mode"),
    Case("apply_clip_transform-fill-fraction-for-labels", apply_clip_transform,
         lambda: apply_tf_kw(x=labels(B, T), fill=0.5), ValueError, "fill"),
    Case("apply_clip_transform-fill-uint8-range", apply_clip_transform,
         lambda: apply_tf_kw(x=labels(B, T).to(torch.uint8), fill=-1), ValueError, "fill"),
    Case("apply_clip_transform-fill-bool", apply_clip_transform,
         lambda: apply_tf_kw(x=labels(B, T) > 0, fill=2), ValueError, "fill"),
    Case("apply_clip_transform-fill-str", apply_clip_transform,
         lambda: apply_tf_kw(fill="ignore"), TypeError, "fill"),
    # --- masked image consistency ---------------------------------------------------
    Case("block_mask-shape-3", block_mask,
         lambda: block_kw(shape=(B, H, W)), ValueError, "shape"),
    Case("block_mask-shape-0", block_mask,
         lambda: block_kw(shape=(B, 0, H, W)), ValueError, "shape"),
    Case("block_mask-patch_size-0", block_mask,
         lambda: block_kw(patch_size=0), ValueError, "patch_size"),
    Case("block_mask-patch_size-float", block_mask,
         lambda: block_kw(patch_size=2.5), ValueError, "patch_size"),
    Case("block_mask-ratio-1", block_mask,
         lambda: block_kw(ratio=1.0), ValueError, "ratio"),
    Case("block_mask-ratio-negative", block_mask,
         lambda: block_kw(ratio=-0.1), ValueError, "ratio"),
    Case("block_mask-generator-device", block_mask,
         lambda: block_kw(device="meta"), ValueError, "generator"),
    Case("mask_clip-clip-long", mask_clip,
         lambda: mask_clip_kw(clip=torch.ones(B, T, C, H, W, dtype=torch.long)),
         TypeError, "clip"),
    Case("mask_clip-mask-float", mask_clip,
         lambda: mask_clip_kw(mask=torch.ones(B, T, H, W)), TypeError, "mask"),
    Case("mask_clip-mask-T", mask_clip,
         lambda: mask_clip_kw(mask=torch.ones(B, T + 1, H, W, dtype=torch.bool)),
         ValueError, "mask"),
    Case("mask_clip-mask-device", mask_clip,
         lambda: mask_clip_kw(mask=meta(torch.ones(B, T, H, W, dtype=torch.bool))),
         ValueError, "mask"),
    Case("BlockMasking-patch_size-0", BlockMasking,
         lambda: dict(patch_size=0), ValueError, "patch_size"),
    Case("BlockMasking-ratio-gt1", BlockMasking,
         lambda: dict(ratio=1.5), ValueError, "ratio"),
    Case("BlockMasking-per_frame-int", BlockMasking,
         lambda: dict(per_frame=1), TypeError, "per_frame"),
    Case("BlockMasking-clip-rank3", block_masking_module,
         lambda: dict(clip=torch.rand(C, H, W)), ValueError, "clip"),
    Case("BlockMasking-clip-long", block_masking_module,
         lambda: dict(clip=torch.ones(B, T, C, H, W, dtype=torch.long)), TypeError, "clip"),
    # --- warm-start guard --------------------------------------------------------------
    Case("vanished_classes-pseudo_share-K", vanished_classes,
         lambda: vanished_kw(pseudo_share=torch.ones(K + 1)), ValueError, "pseudo_share"),
    Case("vanished_classes-pseudo_share-long", vanished_classes,
         lambda: vanished_kw(pseudo_share=torch.ones(K, dtype=torch.long)),
         TypeError, "pseudo_share"),
    Case("vanished_classes-pseudo_share-2d", vanished_classes,
         lambda: vanished_kw(pseudo_share=torch.ones(1, K)), ValueError, "pseudo_share"),
    Case("vanished_classes-prior-device", vanished_classes,
         lambda: vanished_kw(prior=meta(torch.ones(K))), ValueError, "prior"),
    Case("vanished_classes-floor-gt1", vanished_classes,
         lambda: vanished_kw(floor=2.0), ValueError, "floor"),
    Case("WarmStartGuard-num_classes-0", WarmStartGuard,
         lambda: dict(num_classes=0), ValueError, "num_classes"),
    Case("WarmStartGuard-action", WarmStartGuard,
         lambda: dict(num_classes=K, action="rebalance"), ValueError, "action"),
    Case("WarmStartGuard-every-0", WarmStartGuard,
         lambda: dict(num_classes=K, every=0), ValueError, "every"),
    Case("WarmStartGuard-max_extension-negative", WarmStartGuard,
         lambda: dict(num_classes=K, max_extension=-1), ValueError, "max_extension"),
    Case("WarmStartGuard-pseudo_labels-float", guard_observe_target,
         lambda: dict(pseudo_labels=torch.zeros(B, H, W)), TypeError, "pseudo_labels"),
    Case("WarmStartGuard-labels-int32", guard_observe_source,
         lambda: dict(labels=torch.zeros(B, H, W, dtype=torch.int32)), TypeError, "labels"),
    Case("WarmStartGuard-counts-K", guard_set_prior,
         lambda: dict(counts=torch.ones(K + 1)), ValueError, "counts"),
    Case("WarmStartGuard-counts-negative", guard_set_prior,
         lambda: dict(counts=torch.tensor([1.0, -1.0, 1.0])), ValueError, "counts"),
    Case("VIPER-root-missing", viper, lambda: {}, FileNotFoundError, "root",
         match=r"no such directory \(expected the VIPER root"),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input(case: Case) -> None:
    kwargs = case.kwargs()
    with pytest.raises(case.error, match=case.pattern):
        case.entry(**kwargs)


def test_matrix_is_well_formed() -> None:
    """Unique ids, enough cases, and every public tensor entry point covered."""
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 40
    covered = {getattr(c.entry, "__name__", "") for c in CASES}
    adapters = {
        "mix_module": "BidirectionalClipMix",
        "fmix_module": "ShallowFeatureMix",
        "aggregator": "SpatioTemporalPrototypeAggregator",
        "alignment": "IntraInterClassAlignmentLoss",
        "teacher_pseudo_label": "EMATeacher",
        "cm_update": "ConfusionMatrix",
        "cm_update_from_logits": "ConfusionMatrix",
        "viper": "VIPER",
        "class_balance_module": "ClassBalance",
        "dist_align_module": "DistributionAlignment",
        "block_masking_module": "BlockMasking",
        "guard_observe_target": "WarmStartGuard",
    }
    covered |= {adapters[n] for n in covered if n in adapters}
    not_callable_with_tensors = {
        "ClipMixOutput", "Prototypes", "PseudoLabel", "functional", "set_value_checks",
        "value_checks", "__version__",
    }  # fmt: skip
    public = set(dastc.__all__) | set(dastc.functional.__all__)
    missing = public - not_callable_with_tensors - covered
    assert not missing, f"entry points without a bad-input case: {sorted(missing)}"


def test_value_checks_off_skips_only_the_data_checks() -> None:
    """With value checks off, out-of-range labels pass, shape/dtype checks still raise."""
    with dastc.value_checks(False):
        sums, _ = class_sums(**proto_kw(labels=with_value(labels(B, T), 7)))
        assert sums.shape == (K, CH)
        with pytest.raises(ValueError, match=r"^labels:"):
            class_sums(**proto_kw(labels=labels(B, T + 1), weights=None))
        with pytest.raises(TypeError, match=r"^labels:"):
            class_sums(**proto_kw(labels=labels(B, T).float()))
