"""ShallowFeatureMix and its functional core, against a plain reference."""

from __future__ import annotations

import pytest
import torch

from dastc import ShallowFeatureMix
from dastc.functional import resize_mask, shallow_feature_mix


def reference_resize(mask: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Nearest sampling as F.interpolate(mode='nearest'): src index = floor(dst * in / out)."""
    H, W = mask.shape[-2:]
    out = torch.zeros(*mask.shape[:-2], h, w, dtype=torch.bool)
    for i in range(h):
        for j in range(w):
            out[..., i, j] = mask[..., (i * H) // h, (j * W) // w]
    return out


def reference_mix(fs, ft, ms, mt, blend):
    B, T, _C, h, w = fs.shape
    ms, mt = reference_resize(ms, h, w), reference_resize(mt, h, w)
    s2t, t2s = ft.clone(), fs.clone()
    for b in range(B):
        for t in range(T):
            for i in range(h):
                for j in range(w):
                    if ms[b, t, i, j]:
                        s2t[b, t, :, i, j] = (
                            blend * fs[b, t, :, i, j] + (1 - blend) * ft[b, t, :, i, j]
                        )
                    if mt[b, t, i, j]:
                        t2s[b, t, :, i, j] = (
                            blend * ft[b, t, :, i, j] + (1 - blend) * fs[b, t, :, i, j]
                        )
    return s2t, t2s


def make(seed, B=2, T=2, C=4, h=5, w=6, H=20, W=23):
    g = torch.Generator().manual_seed(seed)
    fs, ft = torch.randn(B, T, C, h, w, generator=g), torch.randn(B, T, C, h, w, generator=g)
    ms = torch.rand(B, T, H, W, generator=g) < 0.5
    mt = torch.rand(B, T, H, W, generator=g) < 0.5
    return fs, ft, ms, mt


@pytest.mark.parametrize("size", [(5, 6), (4, 6), (8, 12), (20, 24)])
def test_value_resize_matches_reference(size):
    _, _, ms, _ = make(0, H=40, W=48) if size != (5, 6) else make(0)
    assert torch.equal(resize_mask(ms, size), reference_resize(ms, *size))


@pytest.mark.parametrize("blend", [1.0, 0.3])
def test_value_matches_reference(blend):
    fs, ft, ms, mt = make(1)
    s2t, t2s = shallow_feature_mix(fs, ft, ms, mt, blend)
    rs, rt = reference_mix(fs, ft, ms, mt, blend)
    assert torch.allclose(s2t, rs, atol=1e-6) and torch.allclose(t2s, rt, atol=1e-6)


def test_shape_image_rank_and_module_equals_functional():
    fs, ft, ms, mt = make(2, T=1)
    s2t, t2s = ShallowFeatureMix()(fs[:, 0], ft[:, 0], ms[:, 0], mt[:, 0])
    rs, rt = shallow_feature_mix(fs, ft, ms, mt)
    assert s2t.shape == (2, 4, 5, 6)
    assert torch.equal(s2t, rs[:, 0]) and torch.equal(t2s, rt[:, 0])


def test_gradients_flow_to_both_features():
    fs, ft, ms, mt = make(3)
    fs.requires_grad_(True)
    ft.requires_grad_(True)
    s2t, t2s = ShallowFeatureMix(blend=0.3)(fs, ft, ms, mt)
    (s2t.sum() + 2 * t2s.sum()).backward()
    small_s = reference_resize(ms, 5, 6).unsqueeze(2).float()
    small_t = reference_resize(mt, 5, 6).unsqueeze(2).float()
    # d/d fs: s2t gives 0.3 inside ms, t2s gives 2 * (0.7 inside mt, 1 outside)
    want_fs = 0.3 * small_s + 2 * (0.7 * small_t + (1 - small_t))
    assert torch.allclose(fs.grad, want_fs.expand_as(fs))
    assert ft.grad is not None and ft.grad.abs().sum() > 0


def test_gradcheck_float64():
    fs, ft, ms, mt = make(4, B=1, T=1, C=2, h=3, w=3, H=6, W=6)
    fs, ft = fs.double().requires_grad_(), ft.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: shallow_feature_mix(a, b, ms, mt, 0.5), (fs, ft))


def test_dtype_bf16_autocast():
    fs, ft, ms, mt = make(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s2t, _ = ShallowFeatureMix()(fs.bfloat16(), ft.bfloat16(), ms, mt)
    assert s2t.dtype == torch.bfloat16
    assert torch.equal(s2t, reference_mix(fs, ft, ms, mt, 1.0)[0].bfloat16())


def test_dynamo_fullgraph_equals_eager():
    fs, ft, ms, mt = make(6)
    compiled = torch.compile(shallow_feature_mix, fullgraph=True)
    got, want = compiled(fs, ft, ms, mt, 0.3), shallow_feature_mix(fs, ft, ms, mt, 0.3)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_bad_input():
    fs, ft, ms, mt = make(7)
    with pytest.raises(ValueError, match="s2t_mask"):
        shallow_feature_mix(fs, ft, ms[:1], mt)
    with pytest.raises(ValueError, match="t2s_mask"):
        shallow_feature_mix(fs, ft, ms, mt[:, :1])
    with pytest.raises(ValueError, match="tgt_feat"):
        shallow_feature_mix(fs, ft[:, :1], ms, mt)
    with pytest.raises(TypeError, match="s2t_mask"):
        shallow_feature_mix(fs, ft, ms.float(), mt)
    with pytest.raises(TypeError, match="src_feat"):
        shallow_feature_mix(fs.long(), ft, ms, mt)
    with pytest.raises(ValueError, match="s2t_mask"):
        shallow_feature_mix(fs, ft, ms[:, 0], mt)
    with pytest.raises(ValueError, match="blend"):
        ShallowFeatureMix(blend=0.0)
