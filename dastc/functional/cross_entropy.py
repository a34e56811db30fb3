"""Pixel-weighted cross-entropy for pseudo-labelled and mixed clips."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from dastc._validate import (
    check_dims,
    check_finite,
    check_float,
    check_ignore_index,
    check_labels,
    check_long,
    check_nonempty,
    check_same_device,
    check_same_shape,
    describe,
    upcast,
)

__all__ = ["weighted_cross_entropy"]


def weighted_cross_entropy(
    logits: Tensor,
    label: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = 255,
    *,
    normalize: Literal["valid", "all"] = "valid",
) -> Tensor:
    """Cross-entropy with a per-pixel weight, averaged over the labelled pixels.

    .. math::

        \\ell = \\frac{\\sum_{i \\in V} w_i \\, \\mathrm{CE}(z_i, y_i)}{\\max(|V|, 1)},
        \\qquad V = \\{ i : y_i \\ne \\mathrm{ignore\\_index} \\}

    over every pixel ``i`` of every frame of every clip. Ignored pixels add nothing
    to the sum and are not counted in the denominator (``normalize="valid"``), so
    the weights scale each pixel's share and do not renormalise: with weights in
    ``[0, 1]`` the loss is at most the plain mean cross-entropy over ``V``. With
    ``normalize="all"`` the denominator is the number of all pixels, ignored ones
    included, as DACS's reference code does (``mean(ce * w)``). When every pixel
    is ignored the loss is exactly 0 and still has a graph (never NaN).

    Computed in float32 (float64 for float64 logits), also under autocast.

    Args:
        logits: float ``(B, K, H, W)`` or ``(B, T, K, H, W)``, class scores.
        label: long ``(B, H, W)`` or ``(B, T, H, W)`` (the rank of ``logits`` minus
            one, same ``B, T, H, W``), values in ``[0, K)`` or ``ignore_index``.
        weight: optional float per-pixel weights, the shape of ``label``
            (e.g. :attr:`PseudoLabel.weight` or a mixed clip's weight); None means 1.
        ignore_index: the label of pixels that carry no loss; an int outside
            ``[0, K)``.
        normalize: ``"valid"`` (default) divides by the number of non-ignored pixels,
            ``"all"`` by the number of all pixels.

    Returns:
        A scalar tensor (float32, or float64 for float64 logits).

    Raises:
        TypeError: ``logits``/``weight`` not floating point or ``label`` not long.
        ValueError: ranks or shapes do not match, ``label`` holds a value outside
            ``[0, K)`` other than ``ignore_index`` (a value check), or
            ``ignore_index``/``normalize`` is invalid.

    Examples:
        >>> import torch
        >>> logits = torch.randn(2, 3, 5, 8, 8)
        >>> label = torch.randint(0, 5, (2, 3, 8, 8))
        >>> weight = torch.rand(2, 3, 8, 8)
        >>> weighted_cross_entropy(logits, label, weight).shape
        torch.Size([])
    """
    logits = check_float(logits, "logits", ("B T K H W", "B K H W"))
    check_nonempty(logits, "logits")
    label = check_long(label, "label", ("B T H W", "B H W"))
    if label.dim() != logits.dim() - 1:
        expected = "(B, T, H, W)" if logits.dim() == 5 else "(B, H, W)"
        raise ValueError(
            f"label: expected shape {expected} long to match logits {tuple(logits.shape)}, "
            f"got {describe(label)}"
        )
    lead = logits.dim() - 3
    check_dims(
        logits,
        "logits",
        [*range(lead), lead + 1, lead + 2],
        label,
        "label",
        list(range(label.dim())),
        "(B[, T], H, W)",
    )
    check_same_device(("logits", logits), ("label", label))
    if weight is not None:
        weight = check_float(weight, "weight", ("B T H W", "B H W"))
        check_same_shape(label, "label", weight, "weight")
        check_same_device(("logits", logits), ("weight", weight))
        check_finite(weight, "weight")
    if normalize not in ("valid", "all"):
        raise ValueError(f"normalize: expected 'valid' or 'all', got {normalize!r}")
    num_classes = logits.shape[-3]
    ignore_index = check_ignore_index(ignore_index, num_classes)
    check_labels(label, "label", num_classes, ignore_index)

    z = upcast(logits)
    if lead == 2:
        z = z.flatten(0, 1)
        label = label.flatten(0, 1)
        weight = None if weight is None else weight.flatten(0, 1)
    ce = F.cross_entropy(z, label, ignore_index=ignore_index, reduction="none")
    if weight is not None:
        ce = ce * weight.to(ce.dtype)
    if normalize == "all":
        return ce.sum() / label.numel()
    count = (label != ignore_index).sum().clamp_min(1)
    return ce.sum() / count.to(ce.dtype)
