"""Tests for dastc.functional.weighted_cross_entropy."""

from __future__ import annotations

import math

import pytest
import torch

from dastc.functional import weighted_cross_entropy


def _ref_wce(
    logits: torch.Tensor,
    label: torch.Tensor,
    weight: torch.Tensor | None,
    ignore_index: int,
    normalize: str = "valid",
) -> float:
    """A loop over pixels: -log softmax at the label, times the weight."""
    k = logits.shape[-3]
    z = logits.double().movedim(-3, -1).reshape(-1, k)
    y = label.reshape(-1).tolist()
    w = [1.0] * len(y) if weight is None else weight.double().reshape(-1).tolist()
    total, valid = 0.0, 0
    for i, yi in enumerate(y):
        if yi == ignore_index:
            continue
        row = z[i].tolist()
        lse = math.log(sum(math.exp(v - max(row)) for v in row)) + max(row)
        total += w[i] * (lse - row[yi])
        valid += 1
    return total / (len(y) if normalize == "all" else max(valid, 1))


def _inputs(lead: tuple[int, ...], k: int = 5, seed: int = 0, ignore: float = 0.2):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*lead[:-2], k, *lead[-2:], generator=g) * 2
    label = torch.randint(0, k, lead, generator=g)
    label[torch.rand(lead, generator=g) < ignore] = 255
    weight = torch.rand(lead, generator=g)
    return logits, label, weight


@pytest.mark.parametrize("lead", [(2, 3, 4, 5), (1, 1, 3, 3), (2, 4, 5)])
@pytest.mark.parametrize("use_weight", [True, False])
def test_value_weighted_cross_entropy(lead: tuple[int, ...], use_weight: bool) -> None:
    logits, label, weight = _inputs(lead)
    w = weight if use_weight else None
    out = weighted_cross_entropy(logits, label, w)
    assert out.shape == () and out.dtype == torch.float32
    torch.testing.assert_close(out.item(), _ref_wce(logits, label, w, 255), rtol=1e-5, atol=1e-6)


def test_value_weighted_cross_entropy_normalize_all() -> None:
    logits, label, weight = _inputs((2, 3, 4, 5), ignore=0.5)
    out = weighted_cross_entropy(logits, label, weight, normalize="all")
    torch.testing.assert_close(
        out.item(), _ref_wce(logits, label, weight, 255, "all"), rtol=1e-5, atol=1e-6
    )


def test_value_weighted_cross_entropy_ignore_index() -> None:
    logits, label, weight = _inputs((2, 3, 4, 5), k=4)
    label[label == 255] = -1
    out = weighted_cross_entropy(logits, label, weight, ignore_index=-1)
    torch.testing.assert_close(
        out.item(), _ref_wce(logits, label, weight, -1), rtol=1e-5, atol=1e-6
    )


def test_numeric_stability_all_ignored() -> None:
    logits = torch.randn(2, 3, 5, 4, 4, requires_grad=True)
    label = torch.full((2, 3, 4, 4), 255)
    out = weighted_cross_entropy(logits, label, torch.rand(2, 3, 4, 4))
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits))


def test_numeric_stability_extreme_logits() -> None:
    logits, label, weight = _inputs((2, 3, 4, 5))
    logits = (logits * 1e4).requires_grad_(True)
    out = weighted_cross_entropy(logits, label, weight)
    out.backward()
    assert torch.isfinite(out) and logits.grad is not None and torch.isfinite(logits.grad).all()
    torch.testing.assert_close(
        out.item(), _ref_wce(logits.detach(), label, weight, 255), rtol=1e-4, atol=1e-3
    )


def test_value_weighted_cross_entropy_autocast_bf16() -> None:
    logits, label, weight = _inputs((2, 2, 4, 5))
    logits = logits.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = weighted_cross_entropy(logits, label, weight.to(torch.bfloat16))
    assert out.dtype == torch.float32
    ref = _ref_wce(logits.float(), label, weight.to(torch.bfloat16).float(), 255)
    torch.testing.assert_close(out.item(), ref, rtol=1e-5, atol=1e-5)


def test_gradcheck_weighted_cross_entropy() -> None:
    logits, label, weight = _inputs((1, 2, 2, 3), k=3)
    z = logits.double().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a: weighted_cross_entropy(a, label, weight.double()), (z,)
    )


def test_bad_input_weighted_cross_entropy() -> None:
    logits, label, weight = _inputs((2, 3, 4, 5))
    with pytest.raises(TypeError, match="label"):
        weighted_cross_entropy(logits, label.float(), weight)
    with pytest.raises(ValueError, match="label"):
        weighted_cross_entropy(logits, label[:, :2], weight[:, :2])  # T mismatch
    with pytest.raises(ValueError, match="label"):
        weighted_cross_entropy(logits, label[:, 0], weight[:, 0])  # rank mismatch
    with pytest.raises(ValueError, match="label"):
        weighted_cross_entropy(logits, torch.full_like(label, 5), weight)  # K = 5: out of range
    with pytest.raises(ValueError, match="weight"):
        weighted_cross_entropy(logits, label, weight[..., :4])
    with pytest.raises(TypeError, match="weight"):
        weighted_cross_entropy(logits, label, (weight > 0.5).long())
    with pytest.raises(ValueError, match="logits"):
        weighted_cross_entropy(logits[0, 0, 0], label[0, 0])
    with pytest.raises(ValueError, match="ignore_index"):
        weighted_cross_entropy(logits, label, weight, ignore_index=2)
    with pytest.raises(ValueError, match="normalize"):
        weighted_cross_entropy(logits, label, weight, normalize="sum")  # type: ignore[arg-type]


def test_dynamo_weighted_cross_entropy() -> None:
    logits, label, weight = _inputs((2, 3, 4, 5))
    compiled = torch.compile(weighted_cross_entropy, fullgraph=True)
    torch.testing.assert_close(
        compiled(logits, label, weight), weighted_cross_entropy(logits, label, weight)
    )
