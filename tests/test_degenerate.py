"""Degenerate but legal input: no NaN or inf, in values or in gradients.

Covers every pixel ignored, a single class, classes absent from one domain (or
from both), identical prototypes, all-zero features, low precision under CPU
autocast (bfloat16, float16), and the smallest clips (B = T = 1, H = W = 1 or 2).
Where a degenerate case has an exact answer (a loss of 0, ``log K``, an unchanged
clip), the test checks it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest
import torch
from torch import Tensor, nn

from dastc import (
    BidirectionalClipMix,
    ConfusionMatrix,
    EMATeacher,
    IntraInterClassAlignmentLoss,
    ShallowFeatureMix,
    SpatioTemporalPrototypeAggregator,
    confusion_matrix,
    iou_from_confusion,
)
from dastc.functional import (
    adaptive_weights,
    bidirectional_clip_mix,
    class_prototypes,
    confidence_weights,
    flow_validity,
    frame_reliability,
    occlusion_mask,
    prototype_infonce,
    prototype_mmd,
    pseudo_label,
    sample_class_masks,
    shallow_feature_mix,
    temporal_pseudo_label,
    warp,
    weighted_cross_entropy,
)

IGNORE = 255
KINDS = ("infonce", "mmd")


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_finite(*tensors: Tensor | None) -> None:
    for t in tensors:
        if t is not None and t.is_floating_point():
            assert bool(torch.isfinite(t).all()), f"non-finite values in {tuple(t.shape)}"


def assert_finite_grads(tensors: Iterable[Tensor]) -> None:
    for t in tensors:
        assert t.grad is not None, "no gradient reached a leaf"
        assert bool(torch.isfinite(t.grad).all()), "non-finite gradient"


def _leaf(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(*shape, generator=_g(seed), dtype=dtype).requires_grad_(True)


# ---------------------------------------------------------------- every pixel ignored
@pytest.mark.parametrize("image", [False, True], ids=["clip", "image"])
@pytest.mark.parametrize("normalize", ["valid", "all"])
@pytest.mark.parametrize("with_weight", [False, True])
def test_all_ignored_weighted_cross_entropy(image: bool, normalize: str, with_weight: bool):
    lead = (2,) if image else (2, 3)
    logits = _leaf(*lead, 4, 5, 6)
    label = torch.full((*lead, 5, 6), IGNORE)
    weight = torch.rand(*lead, 5, 6, generator=_g()) if with_weight else None
    loss = weighted_cross_entropy(logits, label, weight, normalize=normalize)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert_finite_grads([logits])
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_all_ignored_prototypes_memory_and_alignment():
    feats = _leaf(2, 3, 8, 4, 4)
    label = torch.full((2, 3, 8, 8), IGNORE)
    weights = torch.rand(2, 3, 8, 8, generator=_g())
    p = class_prototypes(feats, label, 5, weights)
    assert not bool(p.present.any())
    assert torch.equal(p.counts, torch.zeros(5))
    assert torch.equal(p.vectors.detach(), torch.zeros(5, 8))

    agg = SpatioTemporalPrototypeAggregator(5, 8)
    q = agg(feats, label, weights)
    agg.update(q)
    assert torch.equal(agg.memory, torch.zeros(5, 8))
    assert not bool(agg.initialized.any())
    mem = agg.memory_prototypes()

    total = p.vectors.sum()
    for kind in KINDS:
        loss_fn = IntraInterClassAlignmentLoss(kind=kind)
        for src, tgt in ((p, q), (mem, q), (q, p)):
            loss = loss_fn(src, tgt)
            assert loss.item() == 0.0, kind
            total = total + loss
    assert total.requires_grad
    total.backward()
    assert_finite_grads([feats])
    assert torch.equal(feats.grad, torch.zeros_like(feats))


def test_all_ignored_mix_and_feature_mix():
    xs, xt = _leaf(2, 3, 3, 6, 6, seed=1), _leaf(2, 3, 3, 6, 6, seed=2)
    ignored = torch.full((2, 3, 6, 6), IGNORE)
    wt = torch.rand(2, 3, 6, 6, generator=_g())
    out = BidirectionalClipMix(4, class_fraction=1.0)(xs, ignored, xt, ignored, wt, generator=_g())
    assert not bool(out.s2t_mask.any()) and not bool(out.t2s_mask.any())
    assert torch.equal(out.s2t_clip, xt) and torch.equal(out.t2s_clip, xs)
    assert torch.equal(out.s2t_label, ignored) and torch.equal(out.t2s_label, ignored)
    assert torch.equal(out.s2t_weight, wt) and torch.equal(out.t2s_weight, torch.ones_like(wt))

    mask, chosen = sample_class_masks(ignored, 4, 1.0, generator=_g())
    assert not bool(mask.any()) and not bool(chosen.any())

    fs, ft = _leaf(2, 3, 8, 3, 3, seed=3), _leaf(2, 3, 8, 3, 3, seed=4)
    s2t, t2s = ShallowFeatureMix(blend=0.3)(fs, ft, out.s2t_mask, out.t2s_mask)
    assert torch.equal(s2t, ft) and torch.equal(t2s, fs)
    (s2t.sum() + t2s.sum() + out.s2t_clip.sum() + out.t2s_clip.sum()).backward()
    assert_finite_grads([xs, xt, fs, ft])


def test_all_ignored_metrics():
    """The counts stay zero; IoU is NaN for absent classes *by contract*, never poisons later."""
    pred = torch.randint(0, 3, (1, 2, 4, 4), generator=_g())
    target = torch.full((1, 2, 4, 4), IGNORE)
    cm = confusion_matrix(pred, target, 3)
    assert torch.equal(cm, torch.zeros(3, 3, dtype=torch.long))
    iou, miou = iou_from_confusion(cm)
    assert bool(torch.isnan(iou).all()) and bool(torch.isnan(miou))  # documented: all absent

    acc = ConfusionMatrix(3)
    acc.update(pred, target)
    good = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    acc.update(good, good)
    iou, miou = acc.compute()
    assert iou[0].item() == 1.0 and miou.item() == 1.0
    assert bool(torch.isnan(iou[1:]).all())  # classes 1, 2 never seen: NaN by contract


def test_all_ignored_pseudo_labels_downstream():
    """Every flow leaving the frame, or no pixel above the threshold: zero weights, finite loss."""
    prev = torch.randn(1, 2, 4, 5, 5, generator=_g())
    flow = torch.full((1, 2, 2, 5, 5), 100.0)
    pl = temporal_pseudo_label(prev, flow, 0.5)
    assert bool((pl.label == IGNORE).all())
    assert torch.equal(pl.confidence, torch.zeros(1, 2, 5, 5))
    assert torch.equal(pl.weight, torch.zeros(1, 2, 5, 5))

    student = _leaf(1, 2, 4, 5, 5, seed=1)
    loss = weighted_cross_entropy(student, pl.label, pl.weight)
    assert loss.item() == 0.0

    src_label = torch.randint(0, 4, (1, 2, 5, 5), generator=_g())
    out = bidirectional_clip_mix(
        torch.rand(1, 2, 3, 5, 5), src_label, torch.rand(1, 2, 3, 5, 5), pl.label, pl.weight,
        num_classes=4, generator=_g(),
    )  # fmt: skip
    assert not bool(out.t2s_mask.any())
    assert_finite(out.s2t_weight, out.t2s_weight)

    sure = pseudo_label(torch.randn(1, 2, 4, 5, 5, generator=_g()), threshold=1.0)
    assert torch.equal(sure.weight, torch.zeros(1, 2, 5, 5))  # nothing is > 1
    loss = loss + weighted_cross_entropy(student, sure.label, sure.weight)
    assert loss.item() == 0.0
    loss.backward()
    assert_finite_grads([student])


# ------------------------------------------------------------------------ one class
def test_single_class_everywhere():
    """K = 1: CE is exactly 0, confidence 1, prototypes are plain means, alignment is 0."""
    logits = _leaf(2, 2, 1, 4, 4)
    label = torch.zeros(2, 2, 4, 4, dtype=torch.long)
    ce = weighted_cross_entropy(logits, label, torch.rand(2, 2, 4, 4, generator=_g()))
    assert ce.item() == 0.0

    pl = pseudo_label(logits.detach())
    assert torch.equal(pl.label, label)
    assert torch.equal(pl.confidence, torch.ones(2, 2, 4, 4))
    assert torch.equal(pl.weight, torch.ones(2, 2, 4, 4))
    assert torch.equal(adaptive_weights(logits.detach()), torch.full((2, 2, 4, 4), 0.5))

    feats = _leaf(2, 2, 6, 2, 2, seed=1)
    p = class_prototypes(feats, label, 1)
    ref = feats.detach().permute(2, 0, 1, 3, 4).reshape(6, -1).mean(1)
    assert torch.allclose(p.vectors[0], ref, rtol=1e-5, atol=1e-6)
    q = class_prototypes(feats * 2 + 1, label, 1)
    infonce = prototype_infonce(p.vectors, q.vectors, p.present, q.present)
    assert abs(infonce.item()) < 1e-6  # one candidate: -log(1)
    mmd = prototype_mmd(p.vectors, q.vectors, p.present, q.present)
    assert mmd.item() >= 0.0

    xs, xt = torch.rand(2, 2, 3, 4, 4), torch.rand(2, 2, 3, 4, 4)
    out = BidirectionalClipMix(1)(xs, label, xt, label, generator=_g())
    assert bool(out.s2t_mask.all())  # round_half_up(0.5 * 1) = 1 class: everything pasted
    assert torch.equal(out.s2t_clip, xs) and torch.equal(out.t2s_clip, xt)

    (ce + infonce + mmd).backward()
    assert_finite_grads([logits, feats])


def test_one_class_present_among_many():
    K = 5
    label = torch.full((1, 2, 6, 6), 3)
    feats = _leaf(1, 2, 4, 3, 3)
    p = class_prototypes(feats, label, K)
    assert p.present.tolist() == [False, False, False, True, False]
    mask, chosen = sample_class_masks(label, K, 0.5, generator=_g())
    assert bool(mask.all()) and chosen[0].tolist() == p.present.tolist()
    loss = sum(IntraInterClassAlignmentLoss(kind=k)(p, p) for k in KINDS)
    assert isinstance(loss, Tensor)
    assert abs(loss.item()) < 1e-6  # one shared class, identical: infonce 0, mmd 0
    loss.backward()
    assert_finite_grads([feats])


# ------------------------------------------------------------ classes absent from one side
@pytest.mark.parametrize("kind", KINDS)
def test_classes_absent_in_one_domain(kind: str):
    """Partial overlap: finite; the vectors of absent classes are never read."""
    K, C = 5, 6
    src_feat, tgt_feat = _leaf(2, 2, C, 4, 4, seed=1), _leaf(2, 2, C, 4, 4, seed=2)
    src_label = torch.randint(0, 2, (2, 2, 4, 4), generator=_g(1))  # classes {0, 1}
    tgt_label = torch.randint(1, 3, (2, 2, 4, 4), generator=_g(2))  # classes {1, 2}
    src = class_prototypes(src_feat, src_label, K)
    tgt = class_prototypes(tgt_feat, tgt_label, K)
    assert src.present.tolist() == [True, True, False, False, False]
    assert tgt.present.tolist() == [False, True, True, False, False]
    loss_fn = IntraInterClassAlignmentLoss(kind=kind)
    loss = loss_fn(src, tgt)
    assert_finite(loss)
    garbage = torch.tensor([math.nan, math.inf, -math.inf]).repeat(K, 2)
    src_bad = src._replace(vectors=torch.where(src.present[:, None], src.vectors, garbage))
    tgt_bad = tgt._replace(vectors=torch.where(tgt.present[:, None], tgt.vectors, garbage))
    assert torch.equal(loss_fn(src_bad, tgt_bad), loss)
    loss.backward()
    assert_finite_grads([src_feat, tgt_feat])


@pytest.mark.parametrize("kind", KINDS)
def test_no_class_in_both_domains_gives_zero_with_graph(kind: str):
    K, C = 4, 6
    src_feat, tgt_feat = _leaf(1, 2, C, 4, 4, seed=1), _leaf(1, 2, C, 4, 4, seed=2)
    src = class_prototypes(src_feat, torch.randint(0, 2, (1, 2, 4, 4), generator=_g()), K)
    tgt = class_prototypes(tgt_feat, torch.randint(2, 4, (1, 2, 4, 4), generator=_g()), K)
    assert not bool((src.present & tgt.present).any())
    loss = IntraInterClassAlignmentLoss(kind=kind)(src, tgt)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert_finite_grads([src_feat, tgt_feat])
    assert not bool(src_feat.grad.any()) and not bool(tgt_feat.grad.any())


def test_memory_bank_with_unseen_classes_as_source():
    K, C = 4, 3
    agg = SpatioTemporalPrototypeAggregator(K, C, momentum=0.9)
    f = torch.randn(1, 1, C, 4, 4, generator=_g())
    agg.update(agg(f, torch.zeros(1, 1, 4, 4, dtype=torch.long)))  # only class 0 seen
    tgt_feat = _leaf(1, 1, C, 4, 4)
    tgt = class_prototypes(tgt_feat, torch.randint(0, K, (1, 1, 4, 4), generator=_g()), K)
    mem = agg.memory_prototypes()
    assert mem.present.tolist() == [True, False, False, False]
    losses = [IntraInterClassAlignmentLoss(kind=kind)(mem, tgt) for kind in KINDS]
    assert_finite(*losses)
    (losses[0] + losses[1]).backward()
    assert_finite_grads([tgt_feat])


# ------------------------------------------------------- identical prototypes, zero features
def test_identical_prototype_sets():
    vec = _leaf(5, 8)
    infonce = prototype_infonce(vec, vec)
    mmd = prototype_mmd(vec, vec)
    assert_finite(infonce)
    assert abs(mmd.item()) < 1e-5  # same sets: MMD^2 = 0
    (infonce + mmd).backward()
    assert_finite_grads([vec])


@pytest.mark.parametrize("K", [1, 2, 5])
def test_every_class_the_same_vector(K: int):
    """All cosines equal: each InfoNCE term is log K exactly; MMD is 0 (bandwidth at eps)."""
    base = torch.randn(1, 8, generator=_g())
    src, tgt = base.repeat(K, 1).requires_grad_(True), (3 * base).repeat(K, 1).requires_grad_(True)
    for symmetric in (True, False):
        loss = prototype_infonce(src, tgt, symmetric=symmetric)
        assert abs(loss.item() - math.log(K)) < 1e-5
        loss.backward()
    same = base.repeat(K, 1).requires_grad_(True)
    mmd = prototype_mmd(same, same.detach().clone().requires_grad_(True))
    assert abs(mmd.item()) < 1e-6
    mmd.backward()
    assert_finite_grads([src, tgt, same])


def test_zero_features():
    K, C = 3, 4
    feats = torch.zeros(2, 2, C, 3, 3, requires_grad=True)
    label = torch.arange(K).repeat(2 * 2 * 3).reshape(2, 2, 3, 3)
    p = class_prototypes(feats, label, K, torch.rand(2, 2, 3, 3, generator=_g()))
    assert bool(p.present.all()) and torch.equal(p.vectors.detach(), torch.zeros(K, C))
    agg = SpatioTemporalPrototypeAggregator(K, C)
    agg.update(p)
    assert torch.equal(agg.memory, torch.zeros(K, C))
    infonce = prototype_infonce(p.vectors, p.vectors, p.present, p.present)
    assert abs(infonce.item() - math.log(K)) < 1e-6  # zero vectors: every cosine is 0
    mmd = prototype_mmd(p.vectors, p.vectors, p.present, p.present)
    assert mmd.item() == 0.0
    s2t, t2s = shallow_feature_mix(feats, feats, label == 0, label == 1, blend=0.5)
    (infonce + mmd + s2t.sum() + t2s.sum()).backward()
    assert_finite_grads([feats])

    flat = torch.zeros(2, 3, K, 4, 4)
    assert torch.allclose(confidence_weights(flat), torch.full((2, 3, 4, 4), 1 / K))
    assert torch.allclose(frame_reliability(flat), torch.full((2, 3), 1 / 3))


def test_saturated_logits():
    """Logits of +-1e4: confidence 1, finite CE and gradients."""
    logits = (torch.randn(1, 2, 4, 3, 3, generator=_g()) * 1e4).requires_grad_(True)
    label = torch.randint(0, 4, (1, 2, 3, 3), generator=_g(1))
    loss = weighted_cross_entropy(logits, label)
    pl = pseudo_label(logits.detach())
    assert_finite(loss, pl.confidence, pl.weight, adaptive_weights(logits.detach()))
    loss.backward()
    assert_finite_grads([logits])


# --------------------------------------------------------------------- CPU autocast
class _TinyNet(nn.Module):
    def __init__(self, k: int = 4, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.head = nn.Conv2d(c, k, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        lead = x.shape[:-3]
        f = torch.relu(self.stem(x.flatten(0, len(lead) - 1)))
        z = self.head(f)
        return f.unflatten(0, lead), z.unflatten(0, lead)


def _autocast_supported(dtype: torch.dtype) -> bool:
    try:
        with torch.autocast("cpu", dtype=dtype):
            out = nn.functional.conv2d(torch.randn(1, 3, 4, 4), torch.randn(2, 3, 3, 3))
        return out.dtype == dtype
    except RuntimeError:
        return False


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_autocast_pipeline_is_finite(dtype: torch.dtype):
    if not _autocast_supported(dtype):
        pytest.skip(f"CPU autocast to {dtype} is not supported by this torch build")
    torch.manual_seed(0)
    K = 4
    net = _TinyNet(K)
    xs, xt = torch.rand(2, 2, 3, 8, 8), torch.rand(2, 2, 3, 8, 8)
    ys = torch.randint(0, K, (2, 2, 8, 8), generator=_g())
    ys[:, :, :2] = IGNORE
    with torch.autocast("cpu", dtype=dtype):
        fs, zs = net(xs)
        ft, zt = net(xt)
        assert zs.dtype == dtype  # the check runs in low precision
        pl = pseudo_label(zt.detach(), 0.3)
        w = adaptive_weights(zt.detach())
        out = bidirectional_clip_mix(
            xs.to(dtype), ys, xt.to(dtype), pl.label, pl.weight, num_classes=K, generator=_g()
        )
        s2t_f, t2s_f = shallow_feature_mix(fs, ft, out.s2t_mask, out.t2s_mask, blend=0.3)
        src_p = class_prototypes(fs, ys, K)
        tgt_p = class_prototypes(ft, pl.label, K, w)
        align = IntraInterClassAlignmentLoss()(src_p, tgt_p)
        mmd = IntraInterClassAlignmentLoss(kind="mmd")(src_p, tgt_p)
        ce = weighted_cross_entropy(zs, ys) + weighted_cross_entropy(zt, out.t2s_label, pl.weight)
        warped = warp(zt, torch.full((2, 2, 2, 8, 8), 0.5, dtype=dtype))
    for t in (pl.confidence, pl.weight, w, src_p.vectors, align, mmd, ce):
        assert t.dtype == torch.float32  # reductions in float32
    assert out.s2t_clip.dtype == dtype and warped.dtype == zt.dtype
    assert_finite(pl.confidence, pl.weight, w, out.s2t_clip, out.t2s_weight, s2t_f, t2s_f)
    assert_finite(src_p.vectors, tgt_p.vectors, align, mmd, ce, warped)
    (ce + align + mmd + s2t_f.float().mean() + t2s_f.float().mean()).backward()
    assert_finite_grads(net.parameters())


# --------------------------------------------------------------------- the smallest clips
@pytest.mark.parametrize("size", [1, 2])
@pytest.mark.parametrize("image", [False, True], ids=["clip", "image"])
def test_smallest_inputs(size: int, image: bool):
    """B = 1, T = 1 (or an image), H = W = size, with features at 1 x 1 and 2 x 2."""
    K, C = 3, 4
    lead = (1,) if image else (1, 1)
    hw = (size, size)
    xs, xt = _leaf(*lead, 3, *hw, seed=1), _leaf(*lead, 3, *hw, seed=2)
    ys = torch.randint(0, K, (*lead, *hw), generator=_g(1))
    logits = _leaf(*lead, K, *hw, seed=3)
    pl = pseudo_label(logits.detach(), 0.5)
    out = BidirectionalClipMix(K)(xs, ys, xt, pl.label, pl.weight, generator=_g())
    assert out.s2t_clip.shape == xs.shape and out.s2t_mask.shape == ys.shape

    fs, ft = _leaf(*lead, C, 1, 1, seed=4), _leaf(*lead, C, 2, 2, seed=5)
    s2t_small, _ = shallow_feature_mix(fs, fs * 2, out.s2t_mask, out.t2s_mask)
    s2t_big, _ = ShallowFeatureMix(0.5)(ft, ft * 2, out.s2t_mask, out.t2s_mask)
    protos = class_prototypes(fs, ys, K)
    protos_big = class_prototypes(ft, out.s2t_label, K, out.s2t_weight)
    align = IntraInterClassAlignmentLoss()(protos, protos_big)
    ce = weighted_cross_entropy(logits, out.t2s_label, out.t2s_weight)
    w = adaptive_weights(logits)
    if not image:
        assert torch.equal(frame_reliability(logits.detach()), torch.ones(1, 1))

    flow = torch.zeros(*lead, 2, *hw)
    assert torch.equal(warp(xs.detach(), flow), xs.detach())  # exact, also at H = W = 1
    assert torch.equal(warp(ys, flow, mode="nearest"), ys)
    assert bool(flow_validity(flow).all()) and bool(occlusion_mask(flow, flow).all())
    tpl = temporal_pseudo_label(logits.detach(), flow, 0.5, logits.detach())
    assert torch.equal(tpl.label, pl.label)
    cm = confusion_matrix(pl.label, ys, K)
    assert int(cm.sum()) == size * size

    assert_finite(pl.confidence, pl.weight, s2t_small, s2t_big, align, ce, w, tpl.confidence)
    (ce + align + s2t_small.sum() + s2t_big.sum() + w.sum() + out.s2t_clip.sum()).backward()
    assert_finite_grads([xs, xt, logits, fs, ft])


def test_teacher_on_a_one_pixel_image():
    """GroupNorm over two values per group at one pixel: the teacher's output stays finite."""
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.GroupNorm(2, 4))
    teacher = EMATeacher(net, momentum=0.5, warmup=True)
    teacher.update(net)
    pl = teacher.pseudo_label(torch.rand(1, 3, 1, 1))
    assert pl.label.shape == (1, 1, 1)
    assert_finite(pl.confidence, pl.weight, *teacher.model.parameters())
