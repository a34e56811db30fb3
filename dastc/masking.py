"""Masked Image Consistency (MIC) block masking as a module.

A thin ``nn.Module`` wrapper that holds the configuration and calls
:mod:`dastc.functional.masking`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dastc import _validate as V
from dastc.functional.masking import _check_patch_size, block_mask, mask_clip

__all__ = ["BlockMasking"]


class BlockMasking(nn.Module):
    """Random block masking of target clips for Masked Image Consistency (MIC).

    MIC (Hoyer et al., CVPR 2023) adds one loss to a teacher-student adaptation
    method: the student sees the target clip with random blocks masked out (set to
    0) and is trained with cross-entropy against the teacher's pseudo-labels of the
    *unmasked* clip, weighted by the usual pseudo-label confidence weights. To
    predict the masked regions the student must use the context around them.

    A frame is cut into ``patch_size``-pixel blocks (see
    :func:`dastc.functional.block_mask` for the exact grid) and each block is masked
    with probability ``ratio``. With ``per_frame=False`` (default) a clip has one
    mask shared by all its frames; ``per_frame=True`` draws one per frame.

    The defaults, 64-pixel blocks and ``ratio=0.7``, are MIC's at 512 x 512 crops;
    scale ``patch_size`` with your crop size (e.g. 32 at 256 x 256).

    Args:
        patch_size: block side in pixels, an ``int >= 1`` (default 64).
        ratio: probability that a block is masked, in ``[0, 1)`` (default 0.7).
        per_frame: draw a new mask for every frame (default ``False``).

    Shape:
        - clip: float ``(B, T, C, H, W)`` or ``(B, C, H, W)``.
        - output: ``(masked_clip, mask)``: the masked clip shaped like ``clip``, and
          the bool mask ``(B, T, H, W)`` / ``(B, H, W)`` (``True`` = kept).

    Examples:
        >>> import torch
        >>> masking = BlockMasking(patch_size=8, ratio=0.5)
        >>> g = torch.Generator().manual_seed(0)
        >>> masked, mask = masking(torch.rand(2, 3, 3, 32, 32), generator=g)
        >>> masked.shape, mask.shape, bool((masked[:, :, 0][~mask] == 0).all())
        (torch.Size([2, 3, 3, 32, 32]), torch.Size([2, 3, 32, 32]), True)
    """

    def __init__(self, patch_size: int = 64, ratio: float = 0.7, per_frame: bool = False) -> None:
        super().__init__()
        self.patch_size = _check_patch_size(patch_size)
        self.ratio = V.check_unit_interval(ratio, "ratio", high_open=True)
        if not isinstance(per_frame, bool):
            raise TypeError(f"per_frame: expected a bool, got {per_frame!r}")
        self.per_frame = per_frame

    def forward(
        self, clip: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mask random blocks of ``clip``.

        Args:
            clip: float ``(B, T, C, H, W)`` clips or ``(B, C, H, W)`` images.
            generator: optional ``torch.Generator`` on ``clip``'s device (``None``:
                torch's global generator).

        Returns:
            ``(masked_clip, mask)``: ``clip`` with the masked pixels set to 0 (its
            shape and dtype), and the bool mask ``(B, T, H, W)`` / ``(B, H, W)``,
            ``True`` where the pixel is kept.

        Raises:
            TypeError: ``clip`` is not floating point.
            ValueError: wrong rank, an empty ``clip``, or ``generator`` on another
                device.
        """
        V.check_float(clip, "clip", ("B T C H W", "B C H W"))
        V.check_nonempty(clip, "clip")
        is_clip = clip.dim() == 5
        B, H, W = clip.shape[0], clip.shape[-2], clip.shape[-1]
        T = clip.shape[1] if is_clip else 1
        mask = block_mask(
            (B, T, H, W),
            self.patch_size,
            self.ratio,
            per_frame=self.per_frame,
            generator=generator,
            device=clip.device,
        )
        if not is_clip:
            mask = mask.squeeze(1)
        return mask_clip(clip, mask), mask

    def extra_repr(self) -> str:
        return f"patch_size={self.patch_size}, ratio={self.ratio}, per_frame={self.per_frame}"
