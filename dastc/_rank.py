"""Image/clip rank handling: every block works on clips and returns the rank it was given."""

from __future__ import annotations

from torch import Tensor

__all__ = ["as_clip", "as_input_rank"]


def as_clip(x: Tensor, clip_rank: int) -> Tensor:
    """View an image-rank tensor as a clip of one frame.

    Args:
        x: a tensor of rank ``clip_rank`` (returned as is) or ``clip_rank - 1``
            (a frame axis of size 1 is inserted at dim 1).
        clip_rank: the rank of the clip form (5 for ``(B, T, C, H, W)``,
            4 for ``(B, T, H, W)``).

    Returns:
        ``x`` with rank ``clip_rank`` (a view, no copy).
    """
    return x if x.dim() == clip_rank else x.unsqueeze(1)


def as_input_rank(y: Tensor, was_image: bool) -> Tensor:
    """Undo :func:`as_clip`: drop the frame axis (dim 1) when the input was an image."""
    return y.squeeze(1) if was_image else y
