"""Tests for prototype alignment (dastc.functional.alignment) and IntraInterClassAlignmentLoss."""

from __future__ import annotations

import math

import pytest
import torch

from dastc import IntraInterClassAlignmentLoss, Prototypes, SpatioTemporalPrototypeAggregator
from dastc.functional import class_prototypes, prototype_infonce, prototype_mmd

MULTS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cos(a: list[float], b: list[float], eps: float = 1e-8) -> float:
    na = max(math.sqrt(sum(x * x for x in a)), eps)
    nb = max(math.sqrt(sum(x * x for x in b)), eps)
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def _ref_infonce(
    s: torch.Tensor,
    t: torch.Tensor,
    sp: list[bool],
    tp: list[bool],
    tau: float = 0.1,
    symmetric: bool = True,
) -> float:
    """Loops over classes, in Python floats (float64)."""
    sv, tv = s.double().tolist(), t.double().tolist()
    both = [k for k in range(len(sp)) if sp[k] and tp[k]]
    if not both:
        return 0.0
    total = 0.0
    for k in both:
        den = sum(math.exp(_cos(tv[k], sv[j]) / tau) for j in range(len(sp)) if sp[j])
        l_ts = -math.log(math.exp(_cos(tv[k], sv[k]) / tau) / den)
        if symmetric:
            den = sum(math.exp(_cos(sv[k], tv[j]) / tau) for j in range(len(tp)) if tp[j])
            l_st = -math.log(math.exp(_cos(sv[k], tv[k]) / tau) / den)
            total += 0.5 * (l_ts + l_st)
        else:
            total += l_ts
    return total / len(both)


def _ref_mmd(
    s: torch.Tensor,
    t: torch.Tensor,
    sp: list[bool],
    tp: list[bool],
    mults: tuple[float, ...] = MULTS,
    bandwidth: float | None = None,
) -> float:
    both = [k for k in range(len(sp)) if sp[k] and tp[k]]
    if not both:
        return 0.0
    x = [s.double()[k].tolist() for k in both]
    y = [t.double()[k].tolist() for k in both]
    z = x + y

    def d2(a: list[float], b: list[float]) -> float:
        return sum((u - v) ** 2 for u, v in zip(a, b, strict=True))

    if bandwidth is None:
        pairs = [d2(z[i], z[j]) for i in range(len(z)) for j in range(len(z)) if i != j]
        sigma2 = max(sum(pairs) / len(pairs), 1e-8)
    else:
        sigma2 = bandwidth

    def kern(a: list[float], b: list[float]) -> float:
        return sum(math.exp(-d2(a, b) / (sigma2 * m)) for m in mults)

    n = len(both)
    kxx = sum(kern(a, b) for a in x for b in x) / n**2
    kyy = sum(kern(a, b) for a in y for b in y) / n**2
    kxy = sum(kern(a, b) for a in x for b in y) / n**2
    return kxx + kyy - 2 * kxy


def _case(seed: int = 0, k: int = 5, c: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    return torch.randn(k, c, generator=g), torch.randn(k, c, generator=g)


PRESENCE = [
    ([True] * 5, [True] * 5),
    ([True, False, True, True, False], [True, True, False, True, True]),
    ([True, True, True, True, True], [False, True, False, False, False]),  # one shared class
]


# ------------------------------------------------------------------ values


@pytest.mark.parametrize(("sp", "tp"), PRESENCE)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_value_infonce(sp: list[bool], tp: list[bool], symmetric: bool, tau: float) -> None:
    s, t = _case()
    got = prototype_infonce(s, t, torch.tensor(sp), torch.tensor(tp), tau, symmetric)
    assert got.shape == () and got.dtype == torch.float32
    ref = _ref_infonce(s, t, sp, tp, tau, symmetric)
    torch.testing.assert_close(
        got.double(), torch.tensor(ref, dtype=torch.float64), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(("sp", "tp"), PRESENCE)
@pytest.mark.parametrize("bandwidth", [None, 3.0])
def test_value_mmd(sp: list[bool], tp: list[bool], bandwidth: float | None) -> None:
    s, t = _case()
    t = t * 0.5 + 0.3
    got = prototype_mmd(s, t, torch.tensor(sp), torch.tensor(tp), bandwidth=bandwidth)
    assert got.shape == () and got.dtype == torch.float32
    ref = _ref_mmd(s, t, sp, tp, bandwidth=bandwidth)
    torch.testing.assert_close(
        got.double(), torch.tensor(ref, dtype=torch.float64), rtol=1e-5, atol=1e-6
    )
    assert float(got) >= -1e-6


def test_value_present_none_means_all() -> None:
    s, t = _case()
    full = torch.ones(5, dtype=torch.bool)
    assert torch.equal(prototype_infonce(s, t), prototype_infonce(s, t, full, full))
    assert torch.equal(prototype_mmd(s, t), prototype_mmd(s, t, full, full))


@pytest.mark.parametrize("fn", [prototype_infonce, prototype_mmd])
def test_value_absent_classes_change_nothing(fn: object) -> None:
    s, t = _case()
    sp = torch.tensor([True, False, True, True, False])
    tp = torch.tensor([True, True, False, True, True])
    base = fn(s, t, sp, tp)  # type: ignore[operator]
    s2, t2 = s.clone(), t.clone()
    s2[~sp] = torch.randn(2, 6) * 100
    t2[~tp] = float("nan")
    torch.testing.assert_close(fn(s2, t2, sp, tp), base)  # type: ignore[operator]
    # Classes present on one side only are no negatives of the InfoNCE either way:
    # only classes present on the candidate side are, and the anchor set is `both`.
    s3, t3 = s2.clone().requires_grad_(), t2.clone().requires_grad_()
    fn(s3, t3, sp, tp).backward()  # type: ignore[operator]
    assert s3.grad is not None and t3.grad is not None
    assert bool(torch.isfinite(s3.grad).all()) and bool(torch.isfinite(t3.grad).all())
    assert torch.equal(s3.grad[~sp], torch.zeros(2, 6))
    assert torch.equal(t3.grad[~tp], torch.zeros(1, 6))


@pytest.mark.parametrize("fn", [prototype_infonce, prototype_mmd])
def test_value_none_in_both_is_exact_zero_with_graph(fn: object) -> None:
    s, t = _case()
    s.requires_grad_()
    t.requires_grad_()
    sp = torch.tensor([True, True, False, False, False])
    tp = torch.tensor([False, False, True, True, False])
    loss = fn(s, t, sp, tp)  # type: ignore[operator]
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()
    assert s.grad is not None and torch.equal(s.grad, torch.zeros_like(s))
    assert t.grad is not None and torch.equal(t.grad, torch.zeros_like(t))


def test_value_aligned_lower_than_shuffled() -> None:
    g = _gen(3)
    s = torch.randn(6, 16, generator=g)
    aligned = s + 0.1 * torch.randn(6, 16, generator=g)
    shuffled = aligned[torch.tensor([1, 2, 3, 4, 5, 0])]
    assert float(prototype_infonce(s, aligned)) < float(prototype_infonce(s, shuffled))
    # The set-level MMD ignores which class is which; it sees a shift of the set.
    shifted = aligned + 2.0
    assert float(prototype_mmd(s, aligned)) < float(prototype_mmd(s, shifted))


def test_value_float64_and_autocast_bf16() -> None:
    s, t = _case()
    ref = prototype_infonce(s, t)
    assert prototype_infonce(s.double(), t.double()).dtype == torch.float64
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = prototype_infonce(s.bfloat16(), t.bfloat16())
        got_mmd = prototype_mmd(s.bfloat16(), t.bfloat16())
    assert got.dtype == torch.float32 and got_mmd.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=2e-2, rtol=2e-2)
    # bf16 inputs are only rounded; the loss itself runs in float32.
    exact = prototype_infonce(s.bfloat16().float(), t.bfloat16().float())
    torch.testing.assert_close(got, exact)
    torch.testing.assert_close(got_mmd, prototype_mmd(s.bfloat16().float(), t.bfloat16().float()))


# ------------------------------------------------------------------ stability and grads


@pytest.mark.parametrize("fn", [prototype_infonce, prototype_mmd])
def test_numeric_stability_identical_and_zero(fn: object) -> None:
    s = torch.randn(4, 3, generator=_gen())
    s[1] = 0.0  # a zero prototype (e.g. ReLU features of a dead class)
    for a, b in [(s, s.clone()), (torch.zeros(4, 3), torch.zeros(4, 3)), (s, torch.zeros(4, 3))]:
        a, b = a.clone().requires_grad_(), b.clone().requires_grad_()
        loss = fn(a, b)  # type: ignore[operator]
        loss.backward()
        assert bool(torch.isfinite(loss))
        assert a.grad is not None and b.grad is not None
        assert bool(torch.isfinite(a.grad).all()) and bool(torch.isfinite(b.grad).all())
    assert float(prototype_mmd(s, s.clone())) == pytest.approx(0.0, abs=1e-6)


def test_numeric_stability_small_temperature_large_vectors() -> None:
    s, t = _case()
    s.requires_grad_()
    loss = prototype_infonce(s * 1e6, t * 1e-6, temperature=1e-3)
    loss.backward()
    assert bool(torch.isfinite(loss)) and s.grad is not None
    assert bool(torch.isfinite(s.grad).all())


@pytest.mark.parametrize("symmetric", [True, False])
def test_gradcheck_infonce(symmetric: bool) -> None:
    s, t = _case(k=4, c=3)
    s, t = s.double().requires_grad_(), t.double().requires_grad_()
    sp = torch.tensor([True, False, True, True])
    tp = torch.tensor([True, True, True, False])
    assert torch.autograd.gradcheck(
        lambda a, b: prototype_infonce(a, b, sp, tp, 0.5, symmetric), (s, t)
    )


def test_gradcheck_mmd() -> None:
    s, t = _case(k=4, c=3)
    s, t = s.double().requires_grad_(), t.double().requires_grad_()
    sp = torch.tensor([True, False, True, True])
    tp = torch.tensor([True, True, True, False])
    assert torch.autograd.gradcheck(lambda a, b: prototype_mmd(a, b, sp, tp, bandwidth=2.0), (s, t))


def test_value_mmd_data_bandwidth_is_detached() -> None:
    # The data-driven bandwidth is a statistic, not a path for the gradient (as in DAN):
    # the gradient equals that of the same loss with the bandwidth fixed at its value.
    s, t = _case(k=4, c=3)
    sp = torch.tensor([True, False, True, True])
    tp = torch.tensor([True, True, True, False])
    both = [0, 2]
    z = torch.cat([s[both], t[both]]).double()
    d2 = torch.cdist(z, z).pow(2)
    sigma2 = float(d2.sum() / (d2.numel() - z.shape[0]))
    grads = []
    for bw in (None, sigma2):
        a = s.double().requires_grad_()
        prototype_mmd(a, t.double(), sp, tp, bandwidth=bw).backward()
        grads.append(a.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_dynamo() -> None:
    s, t = _case()
    sp = torch.tensor([True, False, True, True, False])
    tp = torch.tensor([True, True, False, True, True])

    def both(
        s: torch.Tensor, t: torch.Tensor, sp: torch.Tensor, tp: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return prototype_infonce(s, t, sp, tp), prototype_mmd(s, t, sp, tp)

    compiled = torch.compile(both, fullgraph=True)
    for a, b in zip(compiled(s, t, sp, tp), both(s, t, sp, tp), strict=True):
        torch.testing.assert_close(a, b)


# ------------------------------------------------------------------ module


def _p(v: torch.Tensor, present: list[bool]) -> Prototypes:
    p = torch.tensor(present)
    return Prototypes(v, p.float(), p)


def test_module_equals_functional() -> None:
    s, t = _case()
    sp, tp = PRESENCE[1]
    src, tgt = _p(s, sp), _p(t, tp)
    spt, tpt = torch.tensor(sp), torch.tensor(tp)
    assert torch.equal(IntraInterClassAlignmentLoss()(src, tgt), prototype_infonce(s, t, spt, tpt))
    assert torch.equal(
        IntraInterClassAlignmentLoss(temperature=0.3, symmetric=False)(src, tgt),
        prototype_infonce(s, t, spt, tpt, temperature=0.3, symmetric=False),
    )
    assert torch.equal(
        IntraInterClassAlignmentLoss(kind="mmd", multipliers=(1.0, 2.0), bandwidth=4.0)(src, tgt),
        prototype_mmd(s, t, spt, tpt, multipliers=(1.0, 2.0), bandwidth=4.0),
    )


def test_module_with_aggregator_and_memory() -> None:
    g = _gen(5)
    agg = SpatioTemporalPrototypeAggregator(4, 8, momentum=0.9)
    fs = torch.randn(2, 2, 8, 4, 4, generator=g)
    ys = torch.randint(0, 4, (2, 2, 8, 8), generator=g)
    ft = (fs + 0.1 * torch.randn(fs.shape, generator=g)).requires_grad_()
    yt = ys.clone()
    yt[yt == 3] = 255  # class 3 missing from the target batch
    src = agg(fs, ys)
    agg.update(src)
    tgt = agg(ft, yt)
    align = IntraInterClassAlignmentLoss()
    loss = align(agg.memory_prototypes(), tgt)
    torch.testing.assert_close(loss, align(src, tgt))  # memory == batch after the first update
    loss.backward()
    assert ft.grad is not None and bool(torch.isfinite(ft.grad).all())
    torch.testing.assert_close(
        loss, prototype_infonce(src.vectors, tgt.vectors, src.present, tgt.present)
    )
    assert torch.equal(tgt.present, class_prototypes(ft, yt, 4).present)


def test_bad_inputs() -> None:
    s, t = _case()
    with pytest.raises(ValueError, match="tgt_vectors"):
        prototype_infonce(s, t[:4])
    with pytest.raises(ValueError, match="src_vectors"):
        prototype_infonce(s[0], t)
    with pytest.raises(TypeError, match="src_vectors"):
        prototype_mmd(s.long(), t)
    with pytest.raises(TypeError, match="src_present"):
        prototype_infonce(s, t, torch.ones(5), None)
    with pytest.raises(ValueError, match="tgt_present"):
        prototype_mmd(s, t, None, torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature"):
        prototype_infonce(s, t, temperature=0.0)
    with pytest.raises(ValueError, match="bandwidth"):
        prototype_mmd(s, t, bandwidth=-1.0)
    with pytest.raises(ValueError, match="multipliers"):
        prototype_mmd(s, t, multipliers=())
    with pytest.raises(ValueError, match="kind"):
        IntraInterClassAlignmentLoss(kind="cosine")
    with pytest.raises(ValueError, match="temperature"):
        IntraInterClassAlignmentLoss(temperature=-1.0)
    with pytest.raises(ValueError, match="multipliers"):
        IntraInterClassAlignmentLoss(kind="mmd", multipliers=(1.0, 0.0))
