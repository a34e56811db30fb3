"""Tests for dastc.functional.prototypes and SpatioTemporalPrototypeAggregator."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import dastc
from dastc import Prototypes, SpatioTemporalPrototypeAggregator
from dastc.functional import (
    adaptive_weights,
    class_prototypes,
    class_sums,
    confidence_weights,
    frame_reliability,
    prototypes_from_sums,
)

K = 4


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ref_prototypes(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    weights: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> Prototypes:
    """Plain float64 loop over every pixel of every frame of every clip."""
    f = features.double()
    if f.dim() == 4:
        f, labels = f.unsqueeze(1), labels.unsqueeze(1)
        weights = None if weights is None else weights.unsqueeze(1)
    b_, t_, c_, h, w = f.shape
    big = labels.shape[-2:]
    lab = F.interpolate(labels.reshape(-1, 1, *big).double(), size=(h, w), mode="nearest")
    lab = lab.long().reshape(b_, t_, h, w)
    if weights is None:
        wt = torch.ones(b_, t_, h, w, dtype=torch.float64)
    else:
        wt = F.interpolate(weights.reshape(-1, 1, *big).double(), size=(h, w), mode="nearest")
        wt = wt.reshape(b_, t_, h, w)
    sums = torch.zeros(num_classes, c_, dtype=torch.float64)
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for b in range(b_):
        for t in range(t_):
            for i in range(h):
                for j in range(w):
                    k = int(lab[b, t, i, j])
                    if k == ignore_index:
                        continue
                    sums[k] += wt[b, t, i, j] * f[b, t, :, i, j]
                    counts[k] += wt[b, t, i, j]
    vectors = torch.zeros_like(sums)
    for k in range(num_classes):
        if counts[k] > 0:
            vectors[k] = sums[k] / counts[k]
    return Prototypes(vectors, counts, counts > 0)


def _assert_protos_close(got: Prototypes, ref: Prototypes, **tol: float) -> None:
    assert got.vectors.dtype == got.counts.dtype
    assert got.present.dtype == torch.bool
    assert torch.equal(got.present, ref.present)
    torch.testing.assert_close(got.counts.double(), ref.counts.double(), **tol)
    torch.testing.assert_close(got.vectors.double(), ref.vectors.double(), **tol)


def _data(
    shape: tuple[int, ...], label_hw: tuple[int, int], seed: int = 0, ignore: int = 255
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    features = torch.randn(shape, generator=g)
    lead = shape[:-3]
    labels = torch.randint(0, K, (*lead, *label_hw), generator=g)
    labels[torch.rand(labels.shape, generator=g) < 0.2] = ignore
    weights = torch.rand(labels.shape, generator=g)
    return features, labels, weights


# ------------------------------------------------------------------ shapes and values


@pytest.mark.parametrize(
    ("shape", "label_hw"),
    [
        ((2, 3, 5, 4, 5), (8, 10)),  # clip, labels at 2x
        ((1, 1, 5, 4, 5), (4, 5)),  # B=1, T=1, same resolution
        ((2, 2, 3, 4, 5), (7, 9)),  # non-integer ratio
        ((2, 5, 4, 5), (8, 10)),  # image
        ((2, 2, 3, 4, 4), (2, 3)),  # labels coarser than features
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_value_class_prototypes(
    shape: tuple[int, ...], label_hw: tuple[int, int], weighted: bool
) -> None:
    features, labels, weights = _data(shape, label_hw)
    w = weights if weighted else None
    got = class_prototypes(features, labels, K, w)
    assert got.vectors.shape == (K, shape[-3]) and got.counts.shape == (K,)
    assert got.vectors.dtype == torch.float32
    _assert_protos_close(got, _ref_prototypes(features, labels, K, w), atol=1e-5, rtol=1e-5)


def test_value_class_sums_match_prototypes() -> None:
    features, labels, weights = _data((2, 2, 3, 4, 5), (8, 10))
    sums, counts = class_sums(features, labels, K, weights)
    ref = _ref_prototypes(features, labels, K, weights)
    torch.testing.assert_close(counts.double(), ref.counts, atol=1e-5, rtol=1e-5)
    ref_sums = ref.vectors * ref.counts[:, None]
    torch.testing.assert_close(sums.double(), ref_sums, atol=1e-5, rtol=1e-5)
    p = prototypes_from_sums(sums, counts)
    _assert_protos_close(p, class_prototypes(features, labels, K, weights))


def test_value_image_equals_clip_of_one_frame() -> None:
    features, labels, weights = _data((2, 5, 4, 5), (8, 10))
    img = class_prototypes(features, labels, K, weights)
    clip = class_prototypes(features[:, None], labels[:, None], K, weights[:, None])
    for a, b in zip(img, clip, strict=True):
        assert torch.equal(a, b)


def test_value_batch_and_time_pooled_in_one_pass() -> None:
    # Aggregating a clip at once equals aggregating its frames' sums separately.
    features, labels, weights = _data((2, 3, 5, 4, 5), (8, 10))
    sums, counts = class_sums(features, labels, K, weights)
    frame_sums = [class_sums(features[:, t], labels[:, t], K, weights[:, t]) for t in range(3)]
    torch.testing.assert_close(sums, sum(s for s, _ in frame_sums))
    torch.testing.assert_close(counts, sum(c for _, c in frame_sums))


def test_value_absent_class() -> None:
    features, labels, _ = _data((2, 2, 3, 4, 5), (4, 5))
    labels[labels == 2] = 1
    p = class_prototypes(features, labels, K)
    assert not bool(p.present[2]) and float(p.counts[2]) == 0.0
    assert torch.equal(p.vectors[2], torch.zeros(3))
    _assert_protos_close(p, _ref_prototypes(features, labels, K))


def test_value_zero_weight_counts_as_absent() -> None:
    features, labels, weights = _data((1, 2, 3, 4, 5), (4, 5))
    weights[labels == 0] = 0.0
    p = class_prototypes(features, labels, K, weights)
    assert not bool(p.present[0]) and torch.equal(p.vectors[0], torch.zeros(3))


def test_value_custom_ignore_index() -> None:
    features, labels, weights = _data((2, 2, 3, 4, 5), (8, 10), ignore=-1)
    got = class_prototypes(features, labels, K, weights, ignore_index=-1)
    ref = _ref_prototypes(features, labels, K, weights, ignore_index=-1)
    _assert_protos_close(got, ref, atol=1e-5, rtol=1e-5)


def test_value_float64_stays_float64() -> None:
    features, labels, weights = _data((2, 2, 3, 4, 5), (8, 10))
    p = class_prototypes(features.double(), labels, K, weights.double())
    assert p.vectors.dtype == torch.float64 and p.counts.dtype == torch.float64
    _assert_protos_close(p, _ref_prototypes(features, labels, K, weights))


def test_numeric_stability_all_ignored() -> None:
    features = torch.randn(2, 2, 3, 4, 5, requires_grad=True)
    labels = torch.full((2, 2, 8, 10), 255)
    p = class_prototypes(features, labels, K)
    assert not bool(p.present.any())
    assert torch.equal(p.vectors, torch.zeros(K, 3)) and torch.equal(p.counts, torch.zeros(K))
    p.vectors.sum().backward()
    assert features.grad is not None and torch.equal(features.grad, torch.zeros_like(features))


def test_numeric_stability_large_features_tiny_weights() -> None:
    features, labels, weights = _data((2, 2, 3, 4, 5), (4, 5))
    features = features * 1e4
    weights = weights * 1e-20
    p = class_prototypes(features, labels, K, weights)
    assert bool(torch.isfinite(p.vectors).all())
    _assert_protos_close(p, _ref_prototypes(features, labels, K, weights), rtol=1e-4, atol=1e-2)


def test_value_autocast_bf16() -> None:
    features, labels, weights = _data((2, 2, 8, 4, 5), (8, 10))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p = class_prototypes(features.bfloat16(), labels, K, weights)
        p32 = class_prototypes(features, labels, K, weights)
    assert p.vectors.dtype == torch.float32 and p32.vectors.dtype == torch.float32
    # Sums run in float32: exact up to float32 rounding for the bf16-rounded features.
    ref = _ref_prototypes(features.bfloat16(), labels, K, weights)
    _assert_protos_close(p, ref, atol=1e-5, rtol=1e-5)
    _assert_protos_close(p32, _ref_prototypes(features, labels, K, weights), atol=1e-5, rtol=1e-5)


def test_gradcheck() -> None:
    features, labels, weights = _data((2, 2, 3, 3, 2), (5, 3))
    f = features.double().requires_grad_()
    w = weights.double().requires_grad_()

    def fn(f: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = class_prototypes(f, labels, K, w)
        return p.vectors, p.counts

    assert torch.autograd.gradcheck(fn, (f, w))


@pytest.mark.parametrize(
    ("shape", "label_hw", "ignore"),
    [
        ((2, 2, 3, 3, 2), (5, 3), 255),  # clip, labels at higher resolution
        ((2, 3, 2, 3), (4, 6), -1),  # image, labels at 2x, negative ignore_index
        ((1, 2, 2, 2, 3), (2, 3), 255),  # same resolution
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_class_sums(
    shape: tuple[int, ...], label_hw: tuple[int, int], ignore: int, weighted: bool
) -> None:
    features, labels, weights = _data(shape, label_hw, ignore=ignore)
    f = features.double().requires_grad_()
    inputs = (f, weights.double().requires_grad_()) if weighted else (f,)

    def fn(*xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = xs[1] if weighted else None
        return class_sums(xs[0], labels, K, w, ignore_index=ignore)

    assert torch.autograd.gradcheck(fn, inputs)


def test_gradgradcheck_class_sums() -> None:
    features, labels, weights = _data((2, 2, 3, 3, 2), (5, 3))
    f = features.double().requires_grad_()
    w = weights.double().requires_grad_()
    assert torch.autograd.gradgradcheck(lambda a, b: class_sums(a, labels, K, b), (f, w))


@pytest.mark.parametrize(
    ("shape", "label_hw"), [((2, 2, 3, 4, 5), (8, 10)), ((2, 3, 4, 4), (7, 9))]
)
@pytest.mark.parametrize("weighted", [False, True])
def test_value_gradients_match_loop_reference(
    shape: tuple[int, ...], label_hw: tuple[int, int], weighted: bool
) -> None:
    features, labels, weights = _data(shape, label_hw)
    g = _gen(1)
    proj_v, proj_c = torch.randn(K, shape[-3], generator=g), torch.randn(K, generator=g)

    def grads(fn: object, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        f = features.to(dtype).requires_grad_()
        w = weights.to(dtype).requires_grad_() if weighted else None
        p = fn(f, labels, K, w)  # type: ignore[operator]
        loss = (p.vectors * proj_v.to(dtype)).sum() + (p.counts * proj_c.to(dtype)).sum()
        return torch.autograd.grad(loss, [f] if w is None else [f, w])

    got = grads(class_prototypes, torch.float32)
    want = grads(_ref_prototypes, torch.float64)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, atol=1e-5, rtol=1e-5)


def test_value_backward_under_autocast_runs_in_float32() -> None:
    # Forward and backward both inside autocast: the gradients are float32 sums.
    features, labels, weights = _data((2, 2, 8, 4, 5), (8, 10))
    f, w = features.bfloat16().requires_grad_(), weights.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sums, counts = class_sums(f, labels, K, w)
        (sums.sum() + counts.sum()).backward()
    f64, w64 = features.bfloat16().double().requires_grad_(), weights.double().requires_grad_()
    sums, counts = class_sums(f64, labels, K, w64)
    (sums.sum() + counts.sum()).backward()
    assert f.grad is not None and w.grad is not None
    assert f.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32
    torch.testing.assert_close(f.grad.double(), f64.grad.bfloat16().double())
    torch.testing.assert_close(w.grad.double(), w64.grad, atol=1e-5, rtol=1e-5)


def test_dynamo() -> None:
    features, labels, weights = _data((2, 2, 5, 4, 5), (8, 10))
    compiled = torch.compile(class_prototypes, fullgraph=True)
    got = compiled(features, labels, K, weights)
    want = class_prototypes(features, labels, K, weights)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_dynamo_backward() -> None:
    features, labels, weights = _data((2, 2, 5, 4, 5), (8, 10))
    compiled = torch.compile(class_sums, fullgraph=True)
    got, want = [], []
    for fn, out in ((compiled, got), (class_sums, want)):
        f, w = features.clone().requires_grad_(), weights.clone().requires_grad_()
        sums, counts = fn(f, labels, K, w)
        (sums.pow(2).sum() + counts.sum()).backward()
        out.extend([sums, counts, f.grad, w.grad])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


# ------------------------------------------------------------------ adaptive weights


def _ref_entropy(prob: torch.Tensor) -> float:
    """Mean over pixels of -sum_k p log p for one (K, H, W) frame."""
    _, h, w = prob.shape
    total = 0.0
    for i in range(h):
        for j in range(w):
            total -= sum(float(p) * math.log(float(p)) for p in prob[:, i, j])
    return total / (h * w)


def test_value_confidence_weights() -> None:
    logits = torch.randn(2, 3, 5, 4, 6, generator=_gen()) * 3
    c = confidence_weights(logits)
    assert c.shape == (2, 3, 4, 6) and c.dtype == torch.float32
    torch.testing.assert_close(c, torch.softmax(logits.double(), 2).amax(2).float())
    ci = confidence_weights(logits[:, 0])
    assert ci.shape == (2, 4, 6)
    torch.testing.assert_close(ci, c[:, 0])


def test_value_frame_reliability() -> None:
    logits = torch.randn(2, 3, 5, 4, 6, generator=_gen()) * 2
    logits[0, 1] *= 5  # a confident frame
    r = frame_reliability(logits)
    assert r.shape == (2, 3)
    prob = torch.softmax(logits.double(), dim=2)
    for b in range(2):
        ent = [_ref_entropy(prob[b, t]) for t in range(3)]
        z = [math.exp(-e) for e in ent]
        ref = torch.tensor([v / sum(z) for v in z], dtype=torch.float64)
        torch.testing.assert_close(r[b].double(), ref, atol=1e-6, rtol=1e-5)
    assert int(r[0].argmax()) == 1
    torch.testing.assert_close(r.sum(1), torch.ones(2))
    assert torch.equal(frame_reliability(logits[:, 0]), torch.ones(2))


def test_value_adaptive_weights() -> None:
    logits = torch.randn(2, 3, 5, 4, 6, generator=_gen()) * 3
    w = adaptive_weights(logits)
    ref = confidence_weights(logits) * frame_reliability(logits)[:, :, None, None]
    torch.testing.assert_close(w, ref)
    assert bool(((w >= 0) & (w <= 1)).all())
    # Usable as prototype weights at logit resolution.
    p = class_prototypes(torch.randn(2, 3, 7, 2, 3), logits.argmax(2), 5, w)
    assert p.vectors.shape == (5, 7)


def test_numeric_stability_weights_extreme_logits() -> None:
    logits = torch.randn(1, 2, 4, 3, 3, generator=_gen()) * 1e4
    assert bool(torch.isfinite(confidence_weights(logits)).all())
    r = frame_reliability(logits)
    assert bool(torch.isfinite(r).all())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        wb = adaptive_weights(logits.bfloat16())
    assert wb.dtype == torch.float32 and bool(torch.isfinite(wb).all())


# ------------------------------------------------------------------ module and memory


def test_module_equals_functional() -> None:
    features, labels, weights = _data((2, 2, 5, 4, 5), (8, 10))
    agg = SpatioTemporalPrototypeAggregator(K, 5)
    got = agg(features, labels, weights)
    assert isinstance(got, Prototypes)
    for a, b in zip(got, class_prototypes(features, labels, K, weights), strict=True):
        assert torch.equal(a, b)
    img = agg(features[:, 0], labels[:, 0])
    for a, b in zip(img, class_prototypes(features[:, 0], labels[:, 0], K), strict=True):
        assert torch.equal(a, b)


def test_module_differentiable() -> None:
    features, labels, _ = _data((2, 2, 5, 4, 5), (8, 10))
    features.requires_grad_()
    agg = SpatioTemporalPrototypeAggregator(K, 5)
    agg(features, labels).vectors.pow(2).sum().backward()
    assert features.grad is not None and bool(features.grad.abs().sum() > 0)


def _protos(vectors: torch.Tensor, present: list[bool]) -> Prototypes:
    p = torch.tensor(present)
    return Prototypes(vectors, p.float(), p)


def test_value_memory_update_rules() -> None:
    m = 0.9
    agg = SpatioTemporalPrototypeAggregator(3, 2, momentum=m)
    assert torch.equal(agg.memory, torch.zeros(3, 2))
    assert not bool(agg.initialized.any())
    ref = torch.zeros(3, 2)
    seen = [False, False, False]
    g = _gen(1)
    steps = [[True, False, True], [True, True, False], [False, False, False], [True, True, True]]
    for present in steps:
        v = torch.randn(3, 2, generator=g)
        agg.update(_protos(v, present))
        for k in range(3):
            if present[k]:
                ref[k] = m * ref[k] + (1 - m) * v[k] if seen[k] else v[k]
                seen[k] = True
        torch.testing.assert_close(agg.memory, ref)
        assert agg.initialized.tolist() == seen


def test_value_memory_first_sight_copies_absent_untouched() -> None:
    agg = SpatioTemporalPrototypeAggregator(3, 2, momentum=0.99)
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    agg.update(_protos(v, [False, True, False]))
    assert torch.equal(agg.memory[1], v[1])
    assert torch.equal(agg.memory[0], torch.zeros(2)) and torch.equal(agg.memory[2], torch.zeros(2))
    # An absent class's (garbage) vector is never read.
    agg.update(_protos(torch.full((3, 2), float("nan")), [False, False, False]))
    assert torch.equal(agg.memory[1], v[1]) and bool(torch.isfinite(agg.memory).all())


def test_value_memory_update_no_grad() -> None:
    features, labels, _ = _data((2, 2, 5, 4, 5), (8, 10))
    features.requires_grad_()
    agg = SpatioTemporalPrototypeAggregator(K, 5)
    p = agg(features, labels)
    agg.update(p)
    assert not agg.memory.requires_grad
    torch.testing.assert_close(agg.memory[p.present], p.vectors.detach()[p.present])


def test_module_memory_prototypes() -> None:
    agg = SpatioTemporalPrototypeAggregator(3, 2)
    v = torch.randn(3, 2, generator=_gen())
    agg.update(_protos(v, [True, False, True]))
    mp = agg.memory_prototypes()
    assert isinstance(mp, Prototypes)
    assert mp.present.tolist() == [True, False, True]
    assert torch.equal(mp.vectors, agg.memory) and mp.vectors.data_ptr() != agg.memory.data_ptr()
    assert mp.counts.tolist() == [1.0, 0.0, 1.0]
    agg.reset()
    assert not bool(agg.initialized.any()) and torch.equal(agg.memory, torch.zeros(3, 2))


def test_module_state_dict_roundtrip() -> None:
    agg = SpatioTemporalPrototypeAggregator(3, 2, momentum=0.5)
    agg.update(_protos(torch.randn(3, 2, generator=_gen()), [True, False, True]))
    sd = agg.state_dict()
    assert set(sd) == {"memory", "initialized"}
    other = SpatioTemporalPrototypeAggregator(3, 2, momentum=0.5)
    other.load_state_dict(sd)
    assert torch.equal(other.memory, agg.memory)
    assert torch.equal(other.initialized, agg.initialized)
    v = torch.randn(3, 2, generator=_gen(2))
    agg.update(_protos(v, [True, True, False]))
    other.update(_protos(v, [True, True, False]))
    assert torch.equal(other.memory, agg.memory)


def test_module_sync_without_process_group_is_local() -> None:
    # Not initialised: sync=True falls back to local prototypes.
    features, labels, _ = _data((1, 2, 5, 4, 5), (4, 5))
    a = SpatioTemporalPrototypeAggregator(K, 5, sync=True)(features, labels)
    b = SpatioTemporalPrototypeAggregator(K, 5, sync=False)(features, labels)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


# ------------------------------------------------------------------ bad input

_F = torch.randn(2, 2, 5, 4, 5)
_Y = torch.randint(0, K, (2, 2, 8, 10))


@pytest.mark.parametrize(
    ("features", "labels", "weights", "err", "name"),
    [
        (_F, _Y[:1], None, ValueError, "labels"),  # B mismatch
        (_F, _Y[:, :1], None, ValueError, "labels"),  # T mismatch
        (_F, _Y[:, 0], None, ValueError, "labels"),  # image labels for clip features
        (_F[:, 0], _Y, None, ValueError, "labels"),  # clip labels for image features
        (_F[0, 0, 0], _Y, None, ValueError, "features"),  # rank 2
        (_F.long(), _Y, None, TypeError, "features"),
        (_F, _Y.float(), None, TypeError, "labels"),
        (_F, _Y.int(), None, TypeError, "labels"),
        (_F, _Y, torch.rand(2, 2, 8, 9), ValueError, "weights"),
        (_F, _Y, torch.ones(2, 2, 8, 10, dtype=torch.long), TypeError, "weights"),
        (_F, torch.full((2, 2, 8, 10), K), None, ValueError, "labels"),  # out of range
        (_F, torch.full((2, 2, 8, 10), -2), None, ValueError, "labels"),  # negative
    ],
)
def test_bad_inputs(
    features: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None,
    err: type[Exception],
    name: str,
) -> None:
    with pytest.raises(err, match=name):
        class_prototypes(features, labels, K, weights)
    agg = SpatioTemporalPrototypeAggregator(K, 5)
    with pytest.raises(err, match=name):
        agg(features, labels, weights)


def test_bad_labels_skipped_when_value_checks_off() -> None:
    labels = _Y.clone()
    labels[0, 0, 0, 0] = K + 3
    with dastc.value_checks(False):
        p = class_prototypes(_F, labels, K)  # out-of-range pixels simply never count
    assert bool(torch.isfinite(p.vectors).all())


def test_bad_feat_dim() -> None:
    agg = SpatioTemporalPrototypeAggregator(K, 6)
    with pytest.raises(ValueError, match=r"features.*feat_dim"):
        agg(_F, _Y)


@pytest.mark.parametrize(
    ("kwargs", "err", "name"),
    [
        ({"num_classes": 0, "feat_dim": 4}, ValueError, "num_classes"),
        ({"num_classes": 3, "feat_dim": 0}, ValueError, "feat_dim"),
        ({"num_classes": 3, "feat_dim": 4, "ignore_index": 1}, ValueError, "ignore_index"),
        ({"num_classes": 3, "feat_dim": 4, "momentum": 1.5}, ValueError, "momentum"),
    ],
)
def test_bad_module_arguments(kwargs: dict[str, int], err: type[Exception], name: str) -> None:
    with pytest.raises(err, match=name):
        SpatioTemporalPrototypeAggregator(**kwargs)


def test_bad_functional_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        class_prototypes(_F, _Y, 0)
    with pytest.raises(ValueError, match="ignore_index"):
        class_prototypes(_F, _Y, K, ignore_index=0)
    with pytest.raises(ValueError, match="counts"):
        prototypes_from_sums(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="logits"):
        confidence_weights(torch.randn(2, 3, 4))
    with pytest.raises(TypeError, match="logits"):
        frame_reliability(torch.zeros(2, 3, 4, 4, 4, dtype=torch.long))


def test_bad_update() -> None:
    agg = SpatioTemporalPrototypeAggregator(3, 2)
    with pytest.raises(ValueError, match=r"protos\.vectors"):
        agg.update(_protos(torch.zeros(3, 5), [True, True, True]))
    with pytest.raises(ValueError, match=r"protos\.present"):
        agg.update(_protos(torch.zeros(3, 2), [True, True]))
    with pytest.raises(TypeError, match=r"protos\.present"):
        agg.update(Prototypes(torch.zeros(3, 2), torch.ones(3), torch.ones(3)))


def test_value_checks_read_the_sampled_pixels_only() -> None:
    """Labels at 4x the feature resolution: a bad label or weight at a pixel the nearest
    resize samples is refused; one the op never reads is not (it cannot reach the result)."""
    from dastc.functional.prototypes import _nearest_index

    f = torch.randn(1, 2, 3, 4, 4)
    rows, cols = _nearest_index(16, 4, f.device), _nearest_index(16, 4, f.device)
    sampled = (int(rows[1]), int(cols[2]))
    unsampled = (int(rows[1]) + 1, int(cols[2]) + 1)
    assert unsampled[0] not in rows.tolist() and unsampled[1] not in cols.tolist()
    for where, refused in [(sampled, True), (unsampled, False)]:
        y = torch.randint(0, 3, (1, 2, 16, 16))
        y[0, 1, where[0], where[1]] = 7
        wt = torch.rand(1, 2, 16, 16)
        wt_bad = wt.clone()
        wt_bad[0, 0, where[0], where[1]] = float("nan")
        y_ok = y.clamp(max=2)
        if refused:
            with pytest.raises(ValueError, match=r"labels: expected values in \[0, 3\)"):
                class_sums(f, y, 3)
            with pytest.raises(ValueError, match="weights"):
                class_sums(f, y_ok, 3, weights=wt_bad)
        else:
            s, n = class_sums(f, y, 3, weights=wt)
            s_ok, n_ok = class_sums(f, y_ok, 3, weights=wt)
            torch.testing.assert_close((s, n), (s_ok, n_ok))
            s, n = class_sums(f, y_ok, 3, weights=wt_bad)
            assert torch.isfinite(s).all() and torch.isfinite(n).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["labelled", "ignored"])
def test_bad_input_features_nonfinite_refused_from_the_result(bad: float, where: str) -> None:
    """Features are checked on the sums: a NaN or inf that reaches them is refused with
    the finite check's message, for class_sums and frame_mean_prototypes alike."""
    from dastc.functional import class_sums, frame_mean_prototypes

    feats = torch.randn(1, 2, 3, 4, 4)
    labels = torch.randint(0, 3, (1, 2, 4, 4))
    labels[0, 1, 2, 2] = 255 if where == "ignored" else 1
    feats[0, 1, :, 2, 2] = bad
    sums, _ = class_sums(feats.clone().nan_to_num_(0.0, 0.0, 0.0), labels, 3)
    assert torch.isfinite(sums).all()
    for op in (class_sums, frame_mean_prototypes):
        out = None
        try:
            out = op(feats, labels, 3)
        except ValueError as e:
            assert str(e).startswith("features: expected finite values")
            continue
        # accepted only where the bad value did not reach the result
        result = out[0] if op is class_sums else out.vectors
        assert where == "ignored" and torch.isfinite(result).all()


def test_value_features_overflowing_sums_are_not_refused() -> None:
    """Finite features whose sums overflow float32 are not called non-finite."""
    from dastc.functional import class_sums

    feats = torch.full((1, 1, 2, 2, 2), 3e38)
    labels = torch.zeros(1, 1, 2, 2, dtype=torch.long)
    sums, counts = class_sums(feats, labels, 2)
    assert torch.isinf(sums[0]).all() and counts.tolist() == [4.0, 0.0]
