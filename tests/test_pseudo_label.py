"""Tests for dastc.functional.pseudo_label and temporal_pseudo_label."""

from __future__ import annotations

import importlib

import pytest
import torch

import dastc
from dastc.functional import PseudoLabel, pseudo_label, temporal_pseudo_label


def _ref_pseudo_label(logits: torch.Tensor, threshold: float) -> PseudoLabel:
    """Softmax, max and a per-clip loop over pixels for the weight."""
    prob = torch.softmax(logits.double(), dim=-3)
    conf, label = prob.max(dim=-3)
    weight = torch.empty_like(conf)
    for b in range(conf.shape[0]):
        pixels = conf[b].flatten().tolist()
        weight[b] = sum(1 for c in pixels if c > threshold) / len(pixels)
    return PseudoLabel(label, conf.float(), weight.float())


def _check(pl: PseudoLabel, ref: PseudoLabel) -> None:
    assert pl.label.dtype == torch.long
    assert pl.confidence.dtype == torch.float32 and pl.weight.dtype == torch.float32
    assert torch.equal(pl.label, ref.label)
    torch.testing.assert_close(pl.confidence, ref.confidence)
    torch.testing.assert_close(pl.weight, ref.weight)


@pytest.mark.parametrize("shape", [(2, 3, 5, 6, 7), (1, 1, 4, 3, 3), (3, 5, 6, 7)])
def test_value_pseudo_label(shape: tuple[int, ...]) -> None:
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 3
    pl = pseudo_label(logits, threshold=0.7)
    out_shape = (*shape[:-3], *shape[-2:])
    assert pl.label.shape == pl.confidence.shape == pl.weight.shape == out_shape
    _check(pl, _ref_pseudo_label(logits, 0.7))


def test_value_pseudo_label_weight_per_clip() -> None:
    logits = torch.zeros(2, 2, 3, 4, 4)
    logits[0, :, 1] = 10.0  # clip 0: every pixel confident
    logits[1, 0, 2, :2] = 10.0  # clip 1: 8 of 32 pixels confident
    pl = pseudo_label(logits, threshold=0.9)
    assert torch.equal(pl.weight[0], torch.ones(2, 4, 4))
    assert torch.equal(pl.weight[1], torch.full((2, 4, 4), 0.25))
    assert pl.label.is_contiguous() and pl.weight.is_contiguous()


def test_value_pseudo_label_threshold_ends() -> None:
    logits = torch.randn(2, 3, 4, 5)
    assert torch.equal(pseudo_label(logits, 0.0).weight, torch.ones(2, 4, 5))
    assert torch.equal(pseudo_label(logits, 1.0).weight, torch.zeros(2, 4, 5))


def test_value_pseudo_label_autocast_bf16() -> None:
    logits = (torch.randn(2, 2, 5, 4, 4) * 3).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pl = pseudo_label(logits, 0.6)
    _check(pl, _ref_pseudo_label(logits.float(), 0.6))


def test_numeric_stability_pseudo_label() -> None:
    logits = torch.randn(2, 4, 3, 3) * 1e4
    pl = pseudo_label(logits, 0.968)
    assert torch.isfinite(pl.confidence).all()
    assert (pl.confidence <= 1).all() and (pl.confidence >= 0.25).all()
    assert torch.equal(pl.label, logits.argmax(dim=1))


def test_gradcheck_pseudo_label_confidence() -> None:
    logits = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: pseudo_label(z, 0.5).confidence, (logits,))


def test_pseudo_label_exported() -> None:
    assert dastc.PseudoLabel is PseudoLabel
    pl = PseudoLabel(label=torch.zeros(1), confidence=torch.ones(1), weight=torch.ones(1))
    assert pl.weight is pl[2]


def test_bad_input_pseudo_label() -> None:
    with pytest.raises(ValueError, match="logits"):
        pseudo_label(torch.randn(2, 3, 4))
    with pytest.raises(TypeError, match="logits"):
        pseudo_label(torch.zeros(2, 3, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="logits"):
        pseudo_label(torch.zeros(2, 0, 4, 4))
    with pytest.raises(ValueError, match="threshold"):
        pseudo_label(torch.randn(2, 3, 4, 4), threshold=1.5)


def _plain_label_confidence(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole-tensor formula the blocked CPU path must reproduce bit for bit."""
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    top, label = z.max(dim=-3)
    return label, torch.exp(top - torch.logsumexp(z, dim=-3))


def _tied(shape: tuple[int, ...]) -> torch.Tensor:
    """Small integer logits: many pixels with the maximum at several classes."""
    return torch.randint(-2, 3, shape, generator=torch.Generator().manual_seed(1)).float()


def _neg_inf_rows() -> torch.Tensor:
    z = torch.randn(2, 5, 6, 7, generator=torch.Generator().manual_seed(2))
    z[:, 1:4] = -float("inf")  # three classes impossible everywhere
    z[0, 0, 2, 3] = -float("inf")
    return z


@pytest.mark.parametrize("block", [1 << 20, 1000, 1])
@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randn(2, 2, 19, 33, 47, generator=torch.Generator().manual_seed(0)) * 4,
        lambda: torch.randn(3, 5, 7, 9, generator=torch.Generator().manual_seed(0)).double(),
        lambda: torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0)).half(),
        lambda: torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0)).bfloat16(),
        lambda: _tied((2, 2, 6, 30, 40)),
        _neg_inf_rows,
        lambda: torch.full((1, 1, 8, 8), 3.0),
    ],
    ids=["float32", "float64", "float16", "bfloat16", "ties", "neg-inf", "one-class"],
)
def test_value_pseudo_label_blocked_bitwise(
    make: object, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU path in pixel blocks gives the whole-tensor max/logsumexp labels (first
    index on ties) and confidences, to a few ulps across blocks and bitwise in one block."""
    module = importlib.import_module("dastc.functional.pseudo_label")  # the name is the function
    monkeypatch.setattr(module, "_BLOCK_ELEMENTS", block)
    logits = make()  # type: ignore[operator]
    got = pseudo_label(logits, 0.5)
    label, confidence = _plain_label_confidence(logits)
    assert torch.equal(got.label, label)
    assert got.confidence.dtype == confidence.dtype
    if block >= logits.numel():
        assert torch.equal(got.confidence, confidence)
    else:
        torch.testing.assert_close(got.confidence, confidence, rtol=4e-6, atol=0.0)


def test_value_pseudo_label_blocked_matches_grad_path() -> None:
    """With a gradient the whole-tensor path runs; both paths give the same labels."""
    logits = torch.randn(2, 2, 7, 9, 11) * 3
    plain = pseudo_label(logits.clone().requires_grad_(), 0.8)
    blocked = pseudo_label(logits, 0.8)
    assert torch.equal(plain.label, blocked.label)
    assert torch.equal(plain.confidence.detach(), blocked.confidence)
    assert torch.equal(plain.weight.detach(), blocked.weight)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("grad", [False, True])
def test_bad_input_pseudo_label_nonfinite(bad: float, grad: bool) -> None:
    """NaN and +inf reach a confidence and are refused, named, on both paths."""
    logits = torch.randn(2, 3, 4, 4)
    logits[1, 2, 3, 3] = bad
    with pytest.raises(ValueError, match="logits: expected finite values"):
        pseudo_label(logits.requires_grad_(grad), 0.5)


def test_value_pseudo_label_neg_inf_below_max_accepted() -> None:
    logits = _neg_inf_rows()
    pl = pseudo_label(logits, 0.5)
    assert torch.isfinite(pl.confidence).all()
    assert not torch.isin(pl.label, torch.tensor([1, 2, 3])).any()
    _check(pl, _ref_pseudo_label(logits, 0.5))


# ---------------------------------------------------------------- temporal
def _ref_temporal(
    prev: torch.Tensor,
    flow: torch.Tensor,
    threshold: float,
    cur: torch.Tensor | None,
    ignore_index: int,
) -> PseudoLabel:
    """Per pixel: read the earlier frame's probabilities at the flow target (integer flows)."""
    n, _, h, w = prev.shape
    p_prev = torch.softmax(prev.double(), dim=1)
    p_cur = None if cur is None else torch.softmax(cur.double(), dim=1)
    label = torch.empty(n, h, w, dtype=torch.long)
    conf = torch.empty(n, h, w, dtype=torch.float64)
    for i in range(n):
        for y in range(h):
            for x in range(w):
                sx, sy = x + int(flow[i, 0, y, x]), y + int(flow[i, 1, y, x])
                inside = 0 <= sx < w and 0 <= sy < h
                if inside:
                    p = p_prev[i, :, sy, sx]
                    if p_cur is not None:
                        p = (p + p_cur[i, :, y, x]) / 2
                elif p_cur is not None:
                    p = p_cur[i, :, y, x]
                else:
                    label[i, y, x], conf[i, y, x] = ignore_index, 0.0
                    continue
                conf[i, y, x], label[i, y, x] = p.max(dim=0)
    return PseudoLabel(label, conf.float(), conf.float())


@pytest.mark.parametrize("with_current", [False, True])
@pytest.mark.parametrize("clip", [False, True])
def test_value_temporal_pseudo_label(with_current: bool, clip: bool) -> None:
    g = torch.Generator().manual_seed(1)
    lead = (2, 2) if clip else (2,)
    prev = torch.randn(*lead, 4, 5, 6, generator=g) * 3
    cur = torch.randn(*lead, 4, 5, 6, generator=g) * 3 if with_current else None
    flow = torch.randint(-2, 3, (*lead, 2, 5, 6), generator=g).float()
    pl = temporal_pseudo_label(prev, flow, 0.6, cur, ignore_index=250)
    n = prev.numel() // (4 * 5 * 6)
    ref = _ref_temporal(
        prev.reshape(n, 4, 5, 6),
        flow.reshape(n, 2, 5, 6),
        0.6,
        None if cur is None else cur.reshape(n, 4, 5, 6),
        250,
    )
    assert pl.label.shape == (*lead, 5, 6)
    assert torch.equal(pl.label, ref.label.reshape(*lead, 5, 6))
    torch.testing.assert_close(pl.confidence, ref.confidence.reshape(*lead, 5, 6))
    # the weight is the per-clip fraction of confident pixels, as in pseudo_label
    frac = (pl.confidence > 0.6).flatten(1).float().mean(1)
    torch.testing.assert_close(
        pl.weight, frac.view(-1, *[1] * (pl.weight.dim() - 1)).expand_as(pl.weight)
    )


def test_value_temporal_zero_flow_equals_pseudo_label() -> None:
    prev = torch.randn(2, 3, 4, 5, 6)
    pl = temporal_pseudo_label(prev, torch.zeros(2, 3, 2, 5, 6), 0.5)
    ref = pseudo_label(prev, 0.5)
    assert torch.equal(pl.label, ref.label)
    torch.testing.assert_close(pl.confidence, ref.confidence)
    torch.testing.assert_close(pl.weight, ref.weight)


def test_bad_input_temporal_pseudo_label() -> None:
    prev = torch.randn(2, 3, 4, 5, 6)
    with pytest.raises(ValueError, match="flow"):
        temporal_pseudo_label(prev, torch.zeros(2, 3, 2, 5, 7))
    with pytest.raises(ValueError, match="flow"):
        temporal_pseudo_label(prev, torch.zeros(2, 2, 5, 6))
    with pytest.raises(ValueError, match="current_logits"):
        temporal_pseudo_label(prev, torch.zeros(2, 3, 2, 5, 6), 0.5, torch.randn(2, 3, 5, 5, 6))
    with pytest.raises(ValueError, match="ignore_index"):
        temporal_pseudo_label(prev, torch.zeros(2, 3, 2, 5, 6), ignore_index=1)


def _assert_pl_equal(got: PseudoLabel, want: PseudoLabel) -> None:
    assert isinstance(got, PseudoLabel)
    assert torch.equal(got.label, want.label)
    torch.testing.assert_close(got.confidence, want.confidence)
    torch.testing.assert_close(got.weight, want.weight)


def test_dynamo_pseudo_label() -> None:
    logits = torch.randn(2, 3, 5, 6, 7) * 3
    compiled = torch.compile(pseudo_label, fullgraph=True)
    _assert_pl_equal(compiled(logits, 0.7), pseudo_label(logits, 0.7))


@pytest.mark.slow
def test_dynamo_temporal_pseudo_label() -> None:
    logits = torch.randn(2, 3, 5, 6, 7) * 3
    current = torch.randn(2, 3, 5, 6, 7) * 3
    flow = torch.randint(-2, 3, (2, 3, 2, 6, 7)).float()
    compiled = torch.compile(temporal_pseudo_label, fullgraph=True)
    _assert_pl_equal(
        compiled(logits, flow, 0.7, current), temporal_pseudo_label(logits, flow, 0.7, current)
    )
