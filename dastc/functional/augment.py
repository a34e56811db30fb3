"""Clip-consistent strong augmentation: colour jitter, hue rotation and blur drawn once per clip.

The mixed clips of DA-STC (and DACS) are strongly augmented; in a video the
same parameters must hold for every frame of a clip, or the augmentation
itself becomes a temporal inconsistency the model is asked to learn.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from dastc._rank import as_clip, as_input_rank
from dastc._validate import check_float, check_probability, compute_dtype, describe

__all__ = ["hue_rotation", "strong_augment"]

_LUMA = (0.299, 0.587, 0.114)


def hue_rotation(angle: Tensor) -> Tensor:
    """Rotations of RGB about the grey axis (a hue shift that keeps grey grey).

    .. math::

        R(\\theta) = \\cos\\theta \\, I + \\sin\\theta \\, [k]_\\times
                     + (1 - \\cos\\theta) \\, k k^T, \\qquad k = (1, 1, 1) / \\sqrt{3}

    Args:
        angle: ``(N,)`` float, radians.

    Returns:
        ``(N, 3, 3)`` rotation matrices in ``angle``'s dtype and device; apply as
        ``R @ rgb``.

    Raises:
        TypeError: ``angle`` is not a float tensor.
        ValueError: ``angle`` is not 1-D.

    Example:
        >>> hue_rotation(torch.tensor([0.0, math.pi])).shape
        torch.Size([2, 3, 3])
    """
    check_float(angle, "angle", ("N",))
    k = torch.full((3,), 3**-0.5, device=angle.device, dtype=angle.dtype)
    cross = (
        torch.tensor(
            [[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]],
            device=angle.device,
            dtype=angle.dtype,
        )
        * 3**-0.5
    )
    c, s = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    eye = torch.eye(3, device=angle.device, dtype=angle.dtype)
    return c * eye + s * cross + (1 - c) * torch.outer(k, k)


def strong_augment(
    clip: Tensor,
    *,
    generator: torch.Generator | None = None,
    p_jitter: float = 0.8,
    hue: float = 0.0,
    p_blur: float = 0.5,
) -> Tensor:
    """Colour jitter and Gaussian blur with the same parameters for every frame of a clip.

    Per clip ``b`` (drawn once, applied to every frame): with probability
    ``p_jitter``, brightness, contrast and saturation factors uniform in
    [0.8, 1.2] and, with ``hue > 0``, a rotation about the grey axis by up to
    ``hue`` of a turn (DACS uses 0.1: ±36 degrees; the contrast pivots on each
    frame's mean grey); with probability ``p_blur``,
    a separable 5-tap Gaussian blur with sigma uniform in [0.15, 1.15]
    (reflect padding). The result is clamped to [0, 1].

    Args:
        clip: float ``(B, T, 3, H, W)`` or ``(B, 3, H, W)`` in [0, 1].
        generator: the random draws (``None``: torch's global generator); on
            ``clip``'s device. ``torch.compile`` takes no generator argument:
            compile with ``generator=None``.
        p_jitter: probability of the colour jitter, in [0, 1].
        hue: hue range in turns, ``>= 0`` (0: no hue rotation and no draw for it).
        p_blur: probability of the blur, in [0, 1].

    Returns:
        The augmented clip, the shape and dtype of ``clip`` (float16/bfloat16
        are computed in float32).

    Raises:
        TypeError: ``clip`` is not a float tensor.
        ValueError: wrong rank, 3 channels expected, H or W below 3 (reflect
            padding), probabilities outside [0, 1], ``hue < 0``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> strong_augment(torch.rand(2, 4, 3, 16, 16), generator=g, hue=0.1).shape
        torch.Size([2, 4, 3, 16, 16])
    """
    check_float(clip, "clip", ("B T 3 H W", "B 3 H W"))
    if clip.shape[-3] != 3:
        raise ValueError(f"clip: expected 3 (RGB) channels at dim -3, got {describe(clip)}")
    if clip.shape[-1] < 3 or clip.shape[-2] < 3:
        raise ValueError(f"clip: expected H and W of at least 3 (blur), got {describe(clip)}")
    p_jitter = check_probability(p_jitter, "p_jitter")
    p_blur = check_probability(p_blur, "p_blur")
    if not (isinstance(hue, (int, float)) and math.isfinite(hue) and hue >= 0):
        raise ValueError(f"hue: expected a finite number >= 0 (turns), got {hue!r}")
    was_image = clip.dim() == 4
    x5 = as_clip(clip, 5)
    return as_input_rank(_strong_augment(x5, generator, p_jitter, float(hue), p_blur), was_image)


def _strong_augment(
    clip_in: Tensor, g: torch.Generator | None, p_jitter: float, hue: float, p_blur: float
) -> Tensor:
    # half precision is computed in float32 and returned in its own dtype
    dt = compute_dtype(clip_in.dtype)
    clip = clip_in.to(dt)
    B, T, C, H, W = clip.shape
    dev = clip.device

    def u(lo: float, hi: float) -> Tensor:
        draw = lo + (hi - lo) * torch.rand(B, generator=g, device=dev)  # float32 draws
        return draw.to(dt).view(B, 1, 1, 1, 1)

    on = (torch.rand(B, generator=g, device=dev) < p_jitter).view(B, 1, 1, 1, 1)
    bright, contrast, sat = u(0.8, 1.2), u(0.8, 1.2), u(0.8, 1.2)
    luma = torch.tensor(_LUMA, device=dev, dtype=dt).view(1, 1, 3, 1, 1)
    x = clip * bright
    grey = (x * luma).sum(2, True)
    x = (x - grey.mean((-2, -1), True)) * contrast + grey.mean((-2, -1), True)
    grey = (x * luma).sum(2, True)
    x = grey + (x - grey) * sat
    if hue > 0:
        rot = hue_rotation(u(-hue, hue).view(B) * 2 * math.pi)
        x = torch.einsum("bij,btjhw->btihw", rot, x)
    x = torch.where(on, x, clip)
    sigma = u(0.15, 1.15).view(B)
    blur_on = torch.rand(B, generator=g, device=dev) < p_blur
    r = 2
    t = torch.arange(-r, r + 1, device=dev, dtype=clip.dtype)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    k = k / k.sum(1, keepdim=True)
    ident = torch.zeros_like(k)
    ident[:, r] = 1
    k = torch.where(blur_on.view(B, 1), k, ident)  # (B, 2r+1)
    kk = k.repeat_interleave(T * C, 0)  # (B*T*C, 2r+1)
    y = x.reshape(1, B * T * C, H, W)
    y = F.conv2d(
        F.pad(y, (r, r, 0, 0), mode="reflect"), kk.view(-1, 1, 1, 2 * r + 1), groups=B * T * C
    )
    y = F.conv2d(
        F.pad(y, (0, 0, r, r), mode="reflect"), kk.view(-1, 1, 2 * r + 1, 1), groups=B * T * C
    )
    return y.view(B, T, C, H, W).clamp(0, 1).to(clip_in.dtype)
