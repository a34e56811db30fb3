"""Tests for dastc.flow: warp, flow_validity, occlusion_mask."""

from __future__ import annotations

import math

import pytest
import torch

from dastc.functional import flow_validity, occlusion_mask, warp


def _int_flow(shape: tuple[int, ...], seed: int, lim: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-lim, lim + 1, shape, generator=g).float()


def _ref_warp_int(x: torch.Tensor, flow: torch.Tensor, fill: float) -> torch.Tensor:
    """Double loop over pixels for integer flows; x (N, C, H, W), flow (N, 2, H, W)."""
    n, _, h, w = x.shape
    out = torch.full_like(x, fill)
    for i in range(n):
        for y in range(h):
            for xx in range(w):
                sx = xx + int(flow[i, 0, y, xx])
                sy = y + int(flow[i, 1, y, xx])
                if 0 <= sx < w and 0 <= sy < h:
                    out[i, :, y, xx] = x[i, :, sy, sx]
    return out


def _ref_warp_bilinear(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation with zero padding, one pixel at a time; x (N, C, H, W)."""
    n, _, h, w = x.shape
    out = torch.zeros_like(x)
    for i in range(n):
        for y in range(h):
            for xx in range(w):
                px = xx + float(flow[i, 0, y, xx])
                py = y + float(flow[i, 1, y, xx])
                x0, y0 = math.floor(px), math.floor(py)
                for dy in (0, 1):
                    for dx in (0, 1):
                        qx, qy = x0 + dx, y0 + dy
                        wgt = (1 - abs(px - qx)) * (1 - abs(py - qy))
                        if 0 <= qx < w and 0 <= qy < h and wgt > 0:
                            out[i, :, y, xx] += wgt * x[i, :, qy, qx]
    return out


# ---------------------------------------------------------------- warp: shapes and values
@pytest.mark.parametrize("shape", [(2, 3, 2, 5, 6), (1, 1, 3, 4, 4), (2, 3, 5, 6)])
def test_value_warp_integer_flow(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape)
    fshape = (*shape[:-3], 2, *shape[-2:])
    flow = _int_flow(fshape, seed=len(shape))
    ref = _ref_warp_int(x.reshape(-1, *shape[-3:]), flow.reshape(-1, 2, *shape[-2:]), 0.0)
    for mode in ("bilinear", "nearest"):
        out = warp(x, flow, mode=mode)  # type: ignore[arg-type]
        assert out.shape == x.shape and out.dtype == x.dtype
        torch.testing.assert_close(out, ref.reshape(shape), atol=1e-5, rtol=1e-5)


def test_value_warp_fractional_bilinear() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, 3, 5, 6, generator=g)
    flow = torch.randn(2, 2, 2, 5, 6, generator=g) * 2.5
    out = warp(x, flow)
    ref = _ref_warp_bilinear(x.reshape(4, 3, 5, 6), flow.reshape(4, 2, 5, 6))
    torch.testing.assert_close(out, ref.reshape(x.shape), atol=1e-5, rtol=1e-5)


def test_value_warp_fractional_nearest() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 5, 6, generator=g)
    base = _int_flow((2, 2, 5, 6), seed=2)
    frac = (torch.rand(2, 2, 5, 6, generator=g) - 0.5) * 0.8  # |frac| < 0.4: no ties
    out = warp(x, base + frac, mode="nearest")
    torch.testing.assert_close(out, _ref_warp_int(x, base, 0.0))


def test_value_warp_fill_float() -> None:
    x = torch.randn(1, 2, 4, 5)
    flow = _int_flow((1, 2, 4, 5), seed=3)
    for mode in ("bilinear", "nearest"):
        out = warp(x, flow, mode=mode, fill=-7.0)  # type: ignore[arg-type]
        torch.testing.assert_close(out, _ref_warp_int(x, flow, -7.0), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("clip", [True, False])
def test_value_warp_long_labels(clip: bool) -> None:
    g = torch.Generator().manual_seed(4)
    shape = (2, 3, 5, 6) if clip else (2, 5, 6)
    label = torch.randint(0, 19, shape, generator=g)
    label[0, ..., 0, 0] = 255
    fshape = (*shape[:-2], 2, *shape[-2:])
    flow = _int_flow(fshape, seed=5) + (torch.rand(fshape, generator=g) - 0.5) * 0.6
    out = warp(label, flow, mode="nearest")
    assert out.dtype == torch.long and out.shape == label.shape
    ref = _ref_warp_int(
        label.reshape(-1, 1, *shape[-2:]).float(), flow.round().reshape(-1, 2, *shape[-2:]), 255
    )
    assert torch.equal(out, ref.reshape(shape).long())
    # explicit fill, and labels with a channel axis
    out2 = warp(label.unsqueeze(-3), flow, mode="nearest", fill=-1)
    ref2 = _ref_warp_int(
        label.reshape(-1, 1, *shape[-2:]).float(), flow.round().reshape(-1, 2, *shape[-2:]), -1
    )
    assert torch.equal(out2.squeeze(-3), ref2.reshape(shape).long())


def test_value_warp_bool_mask() -> None:
    mask = torch.rand(2, 3, 4, 5) > 0.5
    flow = _int_flow((2, 3, 2, 4, 5), seed=6)
    out = warp(mask, flow, mode="nearest")
    ref = _ref_warp_int(mask.reshape(6, 1, 4, 5).float(), flow.reshape(6, 2, 4, 5), 0.0)
    assert out.dtype == torch.bool
    assert torch.equal(out, ref.reshape(2, 3, 4, 5) > 0.5)


@pytest.mark.parametrize("hw", [(1, 5), (4, 1), (1, 1)])
def test_shape_warp_size_one(hw: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *hw)
    flow = _int_flow((2, 2, *hw), seed=7, lim=1)
    torch.testing.assert_close(warp(x, flow), _ref_warp_int(x, flow, 0.0))


def test_value_warp_zero_flow_is_identity() -> None:
    x = torch.randn(2, 3, 4, 6, 7)
    # exact up to the rounding of the normalised sampling grid
    torch.testing.assert_close(warp(x, torch.zeros(2, 3, 2, 6, 7)), x, atol=1e-6, rtol=1e-6)
    label = torch.randint(0, 9, (2, 3, 6, 7))
    assert torch.equal(warp(label, torch.zeros(2, 3, 2, 6, 7), mode="nearest"), label)


def test_numeric_stability_warp_huge_flow() -> None:
    x = torch.randn(1, 2, 4, 4)
    flow = torch.full((1, 2, 4, 4), 1e8)
    out = warp(x, flow)
    assert torch.equal(out, torch.zeros_like(x))


# ---------------------------------------------------------------- warp: dtypes
def test_value_warp_bf16_keeps_dtype() -> None:
    x = torch.randn(2, 3, 5, 6).to(torch.bfloat16)
    flow = torch.randn(2, 2, 5, 6) * 2
    out = warp(x, flow)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, warp(x.float(), flow).to(torch.bfloat16))


def test_value_warp_autocast_bf16() -> None:
    x = torch.randn(2, 2, 3, 5, 6)
    flow = torch.randn(2, 2, 2, 5, 6) * 2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = warp(x, flow)
        out_bf = warp(x.to(torch.bfloat16), flow.to(torch.bfloat16))
    assert out.dtype == torch.float32 and out_bf.dtype == torch.bfloat16
    torch.testing.assert_close(out, warp(x, flow))
    torch.testing.assert_close(
        out_bf.float(), warp(x, flow.to(torch.bfloat16).float()), atol=0.05, rtol=0.02
    )


def test_gradcheck_warp() -> None:
    g = torch.Generator().manual_seed(8)
    x = torch.randn(1, 2, 2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    # keep sample points away from pixel boundaries, where bilinear is not differentiable
    flow = _int_flow((1, 2, 2, 3, 4), seed=9, lim=1).double() + 0.3
    flow.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, f: warp(a, f), (x, flow))


# ---------------------------------------------------------------- warp: bad input
def test_bad_input_warp_flow_shape() -> None:
    x = torch.randn(2, 3, 3, 5, 6)
    with pytest.raises(ValueError, match="flow"):
        warp(x, torch.zeros(2, 3, 3, 5, 6))  # 3 flow channels
    with pytest.raises(ValueError, match="flow"):
        warp(x, torch.zeros(1, 3, 2, 5, 6))  # B mismatch: no broadcasting
    with pytest.raises(ValueError, match="flow"):
        warp(x, torch.zeros(2, 3, 2, 5, 7))  # W mismatch
    with pytest.raises(ValueError, match="flow"):
        warp(x, torch.zeros(2, 2, 5, 6, 1, 1))  # rank 6
    with pytest.raises(ValueError, match="x"):
        warp(x, torch.zeros(2, 2, 5, 6))  # clip with an image flow
    with pytest.raises(TypeError, match="flow"):
        warp(x, torch.zeros(2, 3, 2, 5, 6, dtype=torch.long))


def test_bad_input_warp_x() -> None:
    flow = torch.zeros(2, 2, 5, 6)
    with pytest.raises(TypeError, match="x"):
        warp(torch.zeros(2, 5, 6, dtype=torch.long), flow)  # long needs nearest
    with pytest.raises(ValueError, match="x"):
        warp(torch.zeros(2, 6), flow, mode="nearest")
    with pytest.raises(TypeError, match="x"):
        warp([1.0], flow)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        warp(torch.zeros(2, 1, 5, 6), flow, mode="bicubic")  # type: ignore[arg-type]


# ---------------------------------------------------------------- validity, occlusion
def test_value_flow_validity() -> None:
    flow = _int_flow((2, 3, 2, 4, 5), seed=10) + 0.25
    out = flow_validity(flow)
    assert out.shape == (2, 3, 4, 5) and out.dtype == torch.bool
    for b in range(2):
        for t in range(3):
            for y in range(4):
                for x in range(5):
                    px = x + float(flow[b, t, 0, y, x])
                    py = y + float(flow[b, t, 1, y, x])
                    assert bool(out[b, t, y, x]) == (0 <= px <= 4 and 0 <= py <= 3)


def test_value_occlusion_mask() -> None:
    fw = _int_flow((2, 2, 2, 5, 6), seed=11, lim=2)
    bw = _int_flow((2, 2, 2, 5, 6), seed=12, lim=2)
    a1, a2 = 0.05, 0.5
    out = occlusion_mask(fw, bw, a1, a2)
    assert out.shape == (2, 2, 5, 6) and out.dtype == torch.bool
    f = fw.reshape(4, 2, 5, 6)
    b = bw.reshape(4, 2, 5, 6)
    ref = torch.zeros(4, 5, 6, dtype=torch.bool)
    for i in range(4):
        for y in range(5):
            for x in range(6):
                fx, fy = float(f[i, 0, y, x]), float(f[i, 1, y, x])
                sx, sy = x + int(fx), y + int(fy)
                if not (0 <= sx < 6 and 0 <= sy < 5):
                    continue
                bx, by = float(b[i, 0, sy, sx]), float(b[i, 1, sy, sx])
                lhs = (fx + bx) ** 2 + (fy + by) ** 2
                rhs = a1 * (fx**2 + fy**2 + bx**2 + by**2) + a2
                ref[i, y, x] = lhs < rhs
    assert torch.equal(out, ref.reshape(2, 2, 5, 6))


def test_value_occlusion_mask_translation() -> None:
    fw = torch.zeros(1, 2, 4, 5)
    fw[:, 0] = 1.0  # a pure translation: consistent everywhere it stays in frame
    valid = occlusion_mask(fw, -fw)
    assert torch.equal(valid, flow_validity(fw))
    assert not bool(occlusion_mask(fw, fw)[:, :, :-1].any())  # inconsistent by 2 pixels


def test_bad_input_occlusion_mask() -> None:
    fw = torch.zeros(1, 2, 4, 5)
    with pytest.raises(ValueError, match="flow_bw"):
        occlusion_mask(fw, torch.zeros(1, 2, 4, 6))
    with pytest.raises(ValueError, match="flow_fw"):
        occlusion_mask(torch.zeros(1, 3, 4, 5), fw)
    with pytest.raises(ValueError, match="alpha1"):
        occlusion_mask(fw, fw, alpha1=-0.1)
    with pytest.raises(TypeError, match="flow"):
        flow_validity(torch.zeros(1, 2, 4, 5, dtype=torch.long))


# ---------------------------------------------------------------- compile
def test_dynamo_warp() -> None:
    x = torch.randn(2, 2, 3, 5, 6)
    flow = torch.randn(2, 2, 2, 5, 6) * 2
    label = torch.randint(0, 5, (2, 2, 5, 6))

    def fn(x: torch.Tensor, flow: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return warp(x, flow), warp(label, flow, mode="nearest"), flow_validity(flow)

    compiled = torch.compile(fn, fullgraph=True)
    for got, want in zip(compiled(x, flow, label), fn(x, flow, label), strict=True):
        torch.testing.assert_close(got, want)
