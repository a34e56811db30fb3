"""Pixel counts per class of a label map, without ``bincount``'s host sync."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["label_counts"]


def label_counts(label: Tensor, num_classes: int) -> Tensor:
    """float64 ``(K,)``: how many entries of ``label`` hold each class in ``[0, K)``.

    Args:
        label: long, any shape. Values outside ``[0, num_classes)`` (an ignore
            index, say) are left out.
        num_classes: ``K``.

    Returns:
        float64 ``(K,)`` counts on ``label``'s device (exact up to 2**53).
    """
    flat = label.flatten()
    valid = (flat >= 0) & (flat < num_classes)
    idx = torch.where(valid, flat, torch.zeros_like(flat))
    out = torch.zeros(num_classes, dtype=torch.float64, device=label.device)
    return out.scatter_add_(0, idx, valid.to(torch.float64))
