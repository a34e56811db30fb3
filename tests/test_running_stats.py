"""Tests for the running statistics of the teacher's pseudo-labels: class balance
(class_confidence_stats, class_balanced_scores, ClassBalance) and distribution alignment
(class_distribution_stats, align_distribution, DistributionAlignment)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

import dastc
from dastc import ClassBalance, DistributionAlignment
from dastc.functional import (
    align_distribution,
    class_balanced_scores,
    class_confidence_stats,
    class_distribution_stats,
)

# aot_eager: dynamo's whole-graph trace without inductor's C++ build (~30 s a test on
# a cold cache); the inductor variants run with ``-m slow``.
BACKENDS = ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)]
K = 4


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(shape: tuple[int, ...], seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(shape, generator=_gen(seed)) * scale


def _pixels(logits: torch.Tensor) -> list[list[float]]:
    """Every pixel's class probabilities (float64), classes at dim -3."""
    z = logits.double()
    z = z.unsqueeze(1) if z.dim() == 4 else z
    return z.softmax(2).movedim(2, -1).reshape(-1, z.shape[2]).tolist()


def _ref_confidence_stats(logits: torch.Tensor) -> torch.Tensor:
    K = logits.shape[-3]
    sums, counts = [0.0] * K, [0.0] * K
    for p in _pixels(logits):
        k = max(range(K), key=lambda j: p[j])
        sums[k] += p[k]
        counts[k] += 1
    return torch.tensor([sums, counts], dtype=torch.float32)


def _ref_distribution_stats(logits: torch.Tensor, source_labels: torch.Tensor) -> torch.Tensor:
    K = logits.shape[-3]
    counts = [0.0] * K
    for y in source_labels.flatten().tolist():
        if 0 <= y < K:
            counts[y] += 1
    pixels = _pixels(logits)
    mass = [sum(p[k] for p in pixels) for k in range(K)]
    return torch.tensor([*counts, *mass, len(pixels)], dtype=torch.float32)


def _ref_scores(logits: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    dim = logits.dim() - 3
    prob = logits.double().softmax(dim)
    shape = [1] * logits.dim()
    shape[dim] = -1
    return (prob / confidence.double().view(shape)).clamp(min=1e-12).log()


# ====================================================================== class balance


@pytest.mark.parametrize("shape", [(2, 3, K, 5, 6), (3, K, 4, 4), (1, 1, 1, 2, 2)])
def test_value_class_confidence_stats(shape: tuple[int, ...]) -> None:
    logits = _logits(shape)
    stats = class_confidence_stats(logits)
    assert stats.shape == (2, shape[-3]) and stats.dtype == torch.float32
    torch.testing.assert_close(stats, _ref_confidence_stats(logits))
    n_pixels = math.prod(shape) // shape[-3]
    assert float(stats[1].sum()) == n_pixels


def test_value_class_confidence_stats_half_precision() -> None:
    logits = _logits((2, 2, K, 4, 4)).to(torch.bfloat16)
    stats = class_confidence_stats(logits)
    assert stats.dtype == torch.float32
    torch.testing.assert_close(stats, _ref_confidence_stats(logits.float()))


def test_value_class_confidence_stats_image_equals_clip() -> None:
    img = _logits((3, K, 5, 5))
    assert torch.equal(class_confidence_stats(img), class_confidence_stats(img.unsqueeze(1)))


@pytest.mark.parametrize("shape", [(2, 3, K, 5, 6), (3, K, 4, 4)])
def test_value_class_balanced_scores(shape: tuple[int, ...]) -> None:
    logits = _logits(shape, scale=3.0)
    conf = torch.tensor([0.9, 0.5, 0.7, 0.3])
    scores = class_balanced_scores(logits, conf)
    assert scores.shape == logits.shape and scores.dtype == torch.float32
    torch.testing.assert_close(scores, _ref_scores(logits, conf).float())
    # dividing by c_k is not a per-pixel constant: the argmax changes somewhere
    assert not torch.equal(scores.argmax(-3), logits.argmax(-3))


def test_value_class_balanced_scores_clamp() -> None:
    logits = torch.tensor([0.0, -200.0]).view(1, 2, 1, 1)  # p_1 underflows to 0
    scores = class_balanced_scores(logits, torch.tensor([0.5, 0.5]))
    assert torch.isfinite(scores).all()
    assert float(scores[0, 1]) == pytest.approx(math.log(1e-12), rel=1e-6)
    assert float(scores[0, 0]) == pytest.approx(math.log(2.0), rel=1e-6)


def test_value_class_balanced_scores_docstring_pixel() -> None:
    logits = torch.tensor([0.55, 0.45]).log().view(1, 2, 1, 1)
    scores = class_balanced_scores(logits, torch.tensor([0.99, 0.6]))
    assert int(logits.argmax(1)) == 0 and int(scores.argmax(1)) == 1


def test_gradcheck_class_balanced_scores() -> None:
    """Computed in float32, so the gradient is compared with the float64 reference's."""
    logits = _logits((1, 2, 3, 2, 2)).requires_grad_()
    ref_logits = logits.detach().double().requires_grad_()
    conf = torch.tensor([0.8, 0.4, 0.6])
    w = torch.randn(logits.shape, generator=_gen(1))
    (grad,) = torch.autograd.grad((class_balanced_scores(logits, conf) * w).sum(), logits)
    (ref,) = torch.autograd.grad((_ref_scores(ref_logits, conf) * w).sum(), ref_logits)
    torch.testing.assert_close(grad.double(), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dynamo_class_balance(backend: str) -> None:
    logits = _logits((2, 2, K, 3, 4))
    conf = torch.tensor([0.9, 0.5, 0.7, 0.3])

    def fn(z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return class_confidence_stats(z), class_balanced_scores(z, c)

    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    for got, want in zip(compiled(logits, conf), fn(logits, conf), strict=True):
        torch.testing.assert_close(got, want)


def _ref_running_confidence(
    batches: list[torch.Tensor], momentum: float, K: int
) -> list[torch.Tensor]:
    """c_k <- m c_k + (1 - m) mean_k for classes the batch's argmax gives pixels to."""
    conf = [1.0] * K
    history = []
    for logits in batches:
        stats = _ref_confidence_stats(logits).tolist()
        for k in range(K):
            if stats[1][k] > 0:
                conf[k] = momentum * conf[k] + (1 - momentum) * stats[0][k] / stats[1][k]
        history.append(torch.tensor(conf))
    return history


def test_module_class_balance_running_update() -> None:
    batches = [_logits((2, 2, K, 4, 5), seed=s) for s in range(3)]
    batches[1][:, :, 3] -= 100.0  # class 3 absent from batch 1's argmax: keeps its value
    cb = ClassBalance(K, momentum=0.7)
    assert torch.equal(cb.confidence, torch.ones(K))
    ref = _ref_running_confidence(batches, 0.7, K)
    for i, logits in enumerate(batches):
        before = cb.confidence.clone()
        scores = cb(logits)
        torch.testing.assert_close(cb.confidence, ref[i])
        # the scores use the confidence *after* this batch is folded in
        torch.testing.assert_close(scores, class_balanced_scores(logits, cb.confidence))
        if i == 1:
            assert cb.confidence[3] == before[3]
            assert bool((cb.confidence[:3] != before[:3]).all())


@pytest.mark.parametrize(("momentum", "expect"), [(0.0, "batch"), (1.0, "ones")])
def test_module_class_balance_momentum_ends(momentum: float, expect: str) -> None:
    logits = _logits((2, 1, K, 6, 6), scale=3.0)
    cb = ClassBalance(K, momentum=momentum)
    cb(logits)
    stats = _ref_confidence_stats(logits)
    want = stats[0] / stats[1] if expect == "batch" else torch.ones(K)
    assert bool((stats[1] > 0).all())
    torch.testing.assert_close(cb.confidence, want)


def test_module_class_balance_image_equals_clip() -> None:
    img = _logits((3, K, 5, 5))
    a, b = ClassBalance(K, momentum=0.5), ClassBalance(K, momentum=0.5)
    sa, sb = a(img), b(img.unsqueeze(1))
    assert sa.shape == img.shape and sb.shape == (3, 1, K, 5, 5)
    assert torch.equal(a.confidence, b.confidence)
    torch.testing.assert_close(sa, sb[:, 0])


def test_module_class_balance_low_confidence_class_wins() -> None:
    """Class 0 is predicted confidently, class 1 hesitantly: the running confidences
    hand class 1 a pixel that plain argmax gives class 0."""
    p = torch.tensor([[0.99, 0.01], [0.4, 0.6], [0.55, 0.45]])  # three pixels
    logits = p.log().T.reshape(1, 1, 2, 1, 3)
    cb = ClassBalance(2, momentum=0.0)
    scores = cb(logits)
    torch.testing.assert_close(cb.confidence, torch.tensor([(0.99 + 0.55) / 2, 0.6]))
    assert logits[0, 0, :, 0, 2].argmax() == 0
    assert scores[0, 0, :, 0, 2].argmax() == 1
    assert torch.equal(scores[0, 0].argmax(0)[0, :2], torch.tensor([0, 1]))  # others kept


def test_module_class_balance_no_grad() -> None:
    logits = _logits((1, 2, K, 3, 3)).requires_grad_()
    assert not ClassBalance(K)(logits).requires_grad


def test_module_class_balance_state_dict_round_trip() -> None:
    cb = ClassBalance(K, momentum=0.5)
    cb(_logits((2, 2, K, 4, 4), seed=1))
    sd = cb.state_dict()
    assert set(sd) == {"confidence"}
    other = ClassBalance(K, momentum=0.5)
    other.load_state_dict(sd)
    assert torch.equal(other.confidence, cb.confidence)
    nxt = _logits((2, 2, K, 4, 4), seed=2)
    assert torch.equal(other(nxt), cb(nxt))
    assert torch.equal(other.confidence, cb.confidence)


@pytest.mark.parametrize(
    ("call", "err", "match"),
    [
        (lambda: ClassBalance(K)(_logits((1, 2, K + 1, 3, 3))), ValueError, "logits"),
        (
            lambda: ClassBalance(K)(torch.zeros(1, 2, K, 3, 3, dtype=torch.long)),
            TypeError,
            "logits",
        ),
        (lambda: ClassBalance(K)(_logits((K, 3, 3))), ValueError, "logits"),
        (lambda: ClassBalance(0), ValueError, "num_classes"),
        (lambda: ClassBalance(K, momentum=1.5), ValueError, "momentum"),
        (lambda: class_confidence_stats(_logits((2, 3))), ValueError, "logits"),
        (
            lambda: class_balanced_scores(_logits((1, K, 2, 2)), torch.ones(K + 1)),
            ValueError,
            "class_confidence",
        ),
        (
            lambda: class_balanced_scores(_logits((1, K, 2, 2)), torch.ones(1, K)),
            ValueError,
            "class_confidence",
        ),
        (
            lambda: class_balanced_scores(_logits((1, K, 2, 2)), torch.ones(K, dtype=torch.long)),
            TypeError,
            "class_confidence",
        ),
        (
            lambda: class_balanced_scores(torch.ones(1, K, 2, 2, dtype=torch.long), torch.ones(K)),
            TypeError,
            "logits",
        ),
    ],
)
def test_bad_input_class_balance(
    call: Callable[[], object], err: type[Exception], match: str
) -> None:
    with pytest.raises(err, match=match):
        call()


# ============================================================== distribution alignment


@pytest.mark.parametrize(
    ("logit_shape", "label_shape"),
    [((2, 3, K, 5, 6), (2, 3, 5, 6)), ((3, K, 4, 4), (3, 4, 4)), ((1, 2, K, 3, 3), (4, 7, 5))],
)
def test_value_class_distribution_stats(
    logit_shape: tuple[int, ...], label_shape: tuple[int, ...]
) -> None:
    logits = _logits(logit_shape)
    labels = torch.randint(0, K, label_shape, generator=_gen(1))
    flat = labels.view(-1)
    flat[::5] = 255  # ignore_index
    flat[1::7] = K  # out of range on both sides: not counted
    flat[2::9] = -1
    stats = class_distribution_stats(logits, labels)
    assert stats.shape == (2 * K + 1,) and stats.dtype == torch.float32
    torch.testing.assert_close(stats, _ref_distribution_stats(logits, labels))
    assert float(stats[:K].sum()) < labels.numel()
    torch.testing.assert_close(stats[K : 2 * K].sum(), stats[2 * K])  # softmax sums to 1


def test_value_align_distribution() -> None:
    logits = _logits((2, 2, K, 3, 4), scale=3.0).double()
    s = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    t = torch.tensor([0.1, 0.1, 0.5, 0.3], dtype=torch.float64)
    eps = 1e-6
    out = align_distribution(logits, s, t, eps)
    assert out.shape == logits.shape and out.dtype == torch.float64
    for p, q in zip(_pixels(logits), _pixels(out), strict=True):
        w = [p[k] * (s[k] + eps) / (t[k] + eps) for k in range(K)]
        torch.testing.assert_close(torch.tensor(q, dtype=torch.float64), torch.stack(w) / sum(w))


def test_value_align_distribution_eps_and_zero_prior() -> None:
    logits = torch.zeros(1, 2, 1, 1)
    out = align_distribution(logits, torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5]), eps=0.5)
    torch.testing.assert_close(out.softmax(1).flatten(), torch.tensor([0.25, 0.75]))
    out = align_distribution(logits, torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5]))
    assert torch.isfinite(out).all()  # a zero prior is kept finite by eps


def test_value_align_distribution_equal_priors_is_identity() -> None:
    logits = _logits((2, K, 3, 3))
    prior = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert torch.equal(align_distribution(logits, prior, prior.clone()), logits)


def test_value_align_distribution_docstring() -> None:
    z = align_distribution(
        torch.zeros(1, 2, 1, 1), torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    )
    torch.testing.assert_close(z.softmax(1).flatten(), torch.tensor([0.1, 0.9]), atol=1e-5, rtol=0)


def test_value_align_distribution_dtype_promotion() -> None:
    logits = _logits((1, K, 2, 2))
    prior = torch.full((K,), 0.25)
    assert align_distribution(logits, prior, prior).dtype == torch.float32
    assert align_distribution(logits, prior.double(), prior).dtype == torch.float64


def test_gradcheck_align_distribution() -> None:
    logits = _logits((1, 2, 3, 2, 2)).double().requires_grad_()
    s = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(align_distribution, (logits, s, t))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dynamo_distribution_alignment(backend: str) -> None:
    logits = _logits((2, 2, K, 3, 4))
    labels = torch.randint(0, K, (2, 2, 3, 4), generator=_gen(1))
    labels[0, 0] = 255
    s = torch.tensor([0.4, 0.3, 0.2, 0.1])
    t = torch.tensor([0.1, 0.1, 0.5, 0.3])

    def fn(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return class_distribution_stats(z, y), align_distribution(z, s, t)

    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    for got, want in zip(compiled(logits, labels), fn(logits, labels), strict=True):
        torch.testing.assert_close(got, want)


def test_module_distribution_alignment_priors() -> None:
    m = 0.6
    da = DistributionAlignment(K, momentum=m)
    uniform = torch.full((K,), 1.0 / K)
    assert torch.equal(da.source_prior, uniform) and torch.equal(da.target_prior, uniform)
    src, tgt = uniform.clone(), uniform.clone()
    for seed in range(3):
        logits = _logits((2, 2, K, 4, 4), seed=seed)
        labels = torch.randint(0, K, (2, 2, 6, 6), generator=_gen(10 + seed))
        labels[0] = 255
        out = da(logits, labels)
        ref = _ref_distribution_stats(logits, labels)
        src = m * src + (1 - m) * ref[:K] / ref[:K].sum()
        tgt = m * tgt + (1 - m) * ref[K : 2 * K] / ref[2 * K]
        torch.testing.assert_close(da.source_prior, src)
        torch.testing.assert_close(da.target_prior, tgt)
        # module == functional with the priors after this batch
        torch.testing.assert_close(
            out, align_distribution(logits, da.source_prior, da.target_prior)
        )
        assert not out.requires_grad
    torch.testing.assert_close(da.source_prior.sum(), torch.tensor(1.0))
    torch.testing.assert_close(da.target_prior.sum(), torch.tensor(1.0))


def test_module_distribution_alignment_no_labelled_source_keeps_source_prior() -> None:
    da = DistributionAlignment(K, momentum=0.5)
    da(_logits((1, 2, K, 4, 4)), torch.randint(0, K, (1, 2, 4, 4), generator=_gen()))
    src_before, tgt_before = da.source_prior.clone(), da.target_prior.clone()
    da(_logits((1, 2, K, 4, 4), seed=1), torch.full((1, 2, 4, 4), 255))
    assert torch.equal(da.source_prior, src_before)
    assert not torch.equal(da.target_prior, tgt_before)  # the target side still updates


def test_module_distribution_alignment_image_equals_clip() -> None:
    logits = _logits((3, K, 4, 4))
    labels = torch.randint(0, K, (3, 4, 4), generator=_gen(1))
    a, b = DistributionAlignment(K, momentum=0.5), DistributionAlignment(K, momentum=0.5)
    oa, ob = a(logits, labels), b(logits.unsqueeze(1), labels.unsqueeze(1))
    assert oa.shape == logits.shape
    torch.testing.assert_close(oa, ob[:, 0])
    assert torch.equal(a.source_prior, b.source_prior)
    assert torch.equal(a.target_prior, b.target_prior)


def test_module_distribution_alignment_state_dict_round_trip() -> None:
    da = DistributionAlignment(K, momentum=0.5)
    da(_logits((2, 2, K, 4, 4)), torch.randint(0, K, (2, 2, 4, 4), generator=_gen()))
    sd = da.state_dict()
    assert set(sd) == {"source_prior", "target_prior"}
    other = DistributionAlignment(K, momentum=0.5)
    other.load_state_dict(sd)
    z, y = _logits((2, 2, K, 4, 4), seed=3), torch.randint(0, K, (2, 2, 4, 4), generator=_gen(3))
    assert torch.equal(other(z, y), da(z, y))


@pytest.mark.parametrize(
    ("call", "err", "match"),
    [
        (
            lambda: DistributionAlignment(K)(
                _logits((1, K + 1, 2, 2)), torch.zeros(1, 2, 2).long()
            ),
            ValueError,
            "logits",
        ),
        (
            lambda: DistributionAlignment(K)(_logits((1, K, 2, 2)), torch.zeros(1, 2, 2)),
            TypeError,
            "source_labels",
        ),
        (
            lambda: DistributionAlignment(K)(_logits((1, K, 2, 2)), torch.zeros(2, 2).long()),
            ValueError,
            "source_labels",
        ),
        (lambda: DistributionAlignment(0), ValueError, "num_classes"),
        (lambda: DistributionAlignment(K, momentum=-0.1), ValueError, "momentum"),
        (
            lambda: class_distribution_stats(
                torch.zeros(1, K, 2, 2).long(), torch.zeros(1, 2, 2).long()
            ),
            TypeError,
            "logits",
        ),
        (
            lambda: class_distribution_stats(
                _logits((1, K, 2, 2)), torch.zeros(1, 2, 2, dtype=torch.int32)
            ),
            TypeError,
            "source_labels",
        ),
        (
            lambda: align_distribution(_logits((1, K, 2, 2)), torch.ones(K + 1), torch.ones(K)),
            ValueError,
            "source_prior",
        ),
        (
            lambda: align_distribution(_logits((1, K, 2, 2)), torch.ones(K), torch.ones(2, K)),
            ValueError,
            "target_prior",
        ),
        (
            lambda: align_distribution(_logits((1, K, 2, 2)), torch.ones(K).long(), torch.ones(K)),
            TypeError,
            "source_prior",
        ),
        (
            lambda: align_distribution(_logits((K, 2, 2)), torch.ones(K), torch.ones(K)),
            ValueError,
            "logits",
        ),
    ],
)
def test_bad_input_distribution_alignment(
    call: Callable[[], object], err: type[Exception], match: str
) -> None:
    with pytest.raises(err, match=match):
        call()


def test_running_stats_exported() -> None:
    assert dastc.ClassBalance is ClassBalance
    assert dastc.DistributionAlignment is DistributionAlignment
    assert "ClassBalance(" in repr(ClassBalance(3, momentum=0.5))
    assert "momentum=0.5" in repr(DistributionAlignment(3, momentum=0.5))
