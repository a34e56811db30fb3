"""Shallow-feature mixing: the clip-mix masks applied to early feature maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dastc import _validate as V

__all__ = ["resize_mask", "shallow_feature_mix"]

_FEAT = ("B T C h w", "B C h w")
_MASK = ("B T H W", "B H W")


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a bool mask ``(..., H, W)`` to ``(..., h, w)`` by nearest sampling.

    Uses ``F.interpolate(mode="nearest")``, the same sampling dastc uses for labels.

    Args:
        mask: bool ``(B, T, H, W)`` or ``(B, H, W)``.
        size: target ``(h, w)``.

    Returns:
        bool mask ``(..., h, w)`` (the input itself when already that size).

    Examples:
        >>> resize_mask(torch.ones(2, 3, 8, 8, dtype=torch.bool), (4, 4)).shape
        torch.Size([2, 3, 4, 4])
    """
    V.check_bool(mask, "mask", _MASK)
    return _resize_mask(mask, V.check_size_pair(size, "size"))


def _resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    H, W = mask.shape[-2:]
    if H % size[0] == 0 and W % size[1] == 0:  # nearest = every (H/h)-th row, (W/w)-th column
        return mask[..., :: H // size[0], :: W // size[1]]
    lead = mask.shape[:-2]
    flat = mask.reshape(-1, 1, *mask.shape[-2:]).to(torch.uint8)
    small = F.interpolate(flat, size=size, mode="nearest")
    return small.reshape(*lead, *size).bool()


def shallow_feature_mix(
    src_feat: Tensor,
    tgt_feat: Tensor,
    s2t_mask: Tensor,
    t2s_mask: Tensor,
    blend: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Mix shallow features of the two domains with the clip-mix masks.

    With masks nearest-resized to the feature resolution and ``a = blend``::

        s2t_feat = where(s2t_mask, a * src_feat + (1 - a) * tgt_feat, tgt_feat)
        t2s_feat = where(t2s_mask, a * tgt_feat + (1 - a) * src_feat, src_feat)

    ``blend=1`` (default) pastes; ``blend=0.3`` is the soft blend inside the mask
    (0.3 pasted + 0.7 own). Differentiable w.r.t. both features.

    Args:
        src_feat: float ``(B, T, C, h, w)`` or ``(B, C, h, w)`` source features.
        tgt_feat: float, same shape: target features.
        s2t_mask: bool ``(B, T, H, W)`` / ``(B, H, W)``: True where source pixels are pasted
            on the target (``ClipMixOutput.s2t_mask``), at any resolution.
        t2s_mask: bool, same layout: True where target pixels are pasted on the source.
        blend: weight of the pasted feature inside the mask, in ``(0, 1]``.

    Returns:
        ``(s2t_feat, t2s_feat)``, each shaped like ``src_feat``.

    Raises:
        ValueError: shapes disagree (batch, time, or the two features), or ``blend`` is
            outside ``(0, 1]``.
        TypeError: features not floating point, masks not bool.

    Examples:
        >>> fs, ft = torch.randn(2, 3, 16, 4, 4), torch.randn(2, 3, 16, 4, 4)
        >>> m = torch.zeros(2, 3, 16, 16, dtype=torch.bool)
        >>> s2t, t2s = shallow_feature_mix(fs, ft, m, ~m)
        >>> torch.equal(s2t, ft), torch.equal(t2s, ft)
        (True, True)
    """
    a = V.check_unit_interval(blend, "blend", low_open=True)
    V.check_float(src_feat, "src_feat", _FEAT)
    V.check_nonempty(src_feat, "src_feat")
    V.check_float(tgt_feat, "tgt_feat", _FEAT)
    V.check_same_shape(src_feat, "src_feat", tgt_feat, "tgt_feat")
    is_clip = src_feat.dim() == 5
    layout = _MASK[0] if is_clip else _MASK[1]
    lead = 2 if is_clip else 1
    what = "(B, T)" if is_clip else "(B,)"
    for name, m in (("s2t_mask", s2t_mask), ("t2s_mask", t2s_mask)):
        V.check_bool(m, name, (layout,))
        V.check_dims(src_feat, "src_feat", range(lead), m, name, range(lead), what)
    V.check_same_device(
        ("src_feat", src_feat),
        ("tgt_feat", tgt_feat),
        ("s2t_mask", s2t_mask),
        ("t2s_mask", t2s_mask),
    )
    size = (src_feat.shape[-2], src_feat.shape[-1])
    ms = _resize_mask(s2t_mask, size).unsqueeze(-3)
    mt = _resize_mask(t2s_mask, size).unsqueeze(-3)
    if a == 1.0:
        return torch.where(ms, src_feat, tgt_feat), torch.where(mt, tgt_feat, src_feat)
    s2t_in = torch.lerp(tgt_feat, src_feat, a)
    t2s_in = torch.lerp(src_feat, tgt_feat, a)
    return torch.where(ms, s2t_in, tgt_feat), torch.where(mt, t2s_in, src_feat)
