"""Block masking of clips: Masked Image Consistency (MIC, Hoyer et al., CVPR 2023).

MIC masks random square blocks of the target image and trains the student on
the masked image against the teacher's pseudo-labels of the unmasked one, so
that it learns to use context. :func:`block_mask` draws the block masks as the
public ``BlockMaskGenerator.generate_mask`` does (same draws from the same
generator state, extended to clips), and :func:`mask_clip` applies them
(``imgs * input_mask`` in the public code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dastc import _validate as V

__all__ = ["block_mask", "mask_clip"]

_CLIP = ("B T C H W", "B C H W")


def _check_shape(shape: object) -> tuple[int, int, int, int]:
    if (
        not isinstance(shape, (tuple, list, torch.Size))
        or len(shape) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
    ):
        raise ValueError(f"shape: expected 4 ints (B, T, H, W), each >= 1, got {shape!r}")
    return int(shape[0]), int(shape[1]), int(shape[2]), int(shape[3])


def _check_patch_size(patch_size: object, name: str = "patch_size") -> int:
    """Check a block size in pixels: an ``int`` >= 1 (bools refused)."""
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"{name}: expected an int >= 1 (pixels), got {patch_size!r}")
    return patch_size


def _same_device(a: torch.device, b: torch.device) -> bool:
    # "cuda" (the current device) matches "cuda:0"; an explicit index must agree
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def block_mask(
    shape: tuple[int, int, int, int],
    patch_size: int,
    ratio: float,
    *,
    per_frame: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random block masks for a batch of clips, as MIC draws them.

    The frame is cut into a grid of ``h x w`` cells,
    ``h = max(1, round(H / patch_size))`` and ``w = max(1, round(W / patch_size))``
    (Python's ``round``: halves go to the even integer), one uniform draw per cell;
    a cell is kept where its draw is ``> ratio``, and the grid is resized to
    ``(H, W)`` by ``F.interpolate(mode="nearest")``. When ``H`` or ``W`` is not a
    multiple of ``patch_size`` the blocks are therefore a little larger or smaller
    than ``patch_size``, exactly as in the public code.

    The draws are one ``torch.rand((B, 1, h, w))`` call (``per_frame=False``: one
    grid per clip, the same mask on all ``T`` frames) or one
    ``torch.rand((B, T, h, w))`` call (``per_frame=True``: a grid per frame). For
    ``T = 1`` both equal the public ``BlockMaskGenerator.generate_mask`` draws for
    the same generator state (lhoyer/MIC,
    ``seg/mmseg/models/utils/masking_consistency_module.py``).

    Args:
        shape: ``(B, T, H, W)``, each an ``int >= 1``; use ``T = 1`` for images.
        patch_size: block side in pixels, an ``int >= 1`` (MIC: 64 at 512 x 512
            crops). A block larger than the frame gives one cell: the whole frame is
            kept or masked.
        ratio: probability that a block is masked, in ``[0, 1)`` (MIC: 0.7;
            0 keeps every pixel and still makes the same draws).
        per_frame: draw a new mask for every frame instead of one per clip.
        generator: the random draws (``None``: torch's global generator), on
            ``device``. ``torch.compile`` takes no generator argument: compile with
            ``generator=None``.
        device: where the mask is drawn; ``None``: the generator's device when a
            generator is given, else torch's default device.

    Returns:
        bool ``(B, T, H, W)``: ``True`` where the pixel is kept (visible), ``False``
        where it is masked out. With ``per_frame=False`` it is a broadcast view of
        one ``(B, 1, H, W)`` mask (``.clone()`` it before writing into it).

    Raises:
        ValueError: ``shape`` is not 4 ints >= 1, ``patch_size`` is not an int >= 1,
            ``ratio`` is outside ``[0, 1)``, or ``generator`` is on another device
            than ``device``.
        TypeError: ``ratio`` is not a number.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> m = block_mask((2, 3, 32, 48), patch_size=16, ratio=0.7, generator=g)
        >>> m.shape, m.dtype, bool((m == m[:, :1]).all())
        (torch.Size([2, 3, 32, 48]), torch.bool, True)
    """
    B, T, H, W = _check_shape(shape)
    patch = _check_patch_size(patch_size)
    r = V.check_unit_interval(ratio, "ratio", high_open=True)
    dev = None if device is None else torch.device(device)
    if generator is not None:
        if dev is None:
            dev = generator.device
        elif not _same_device(generator.device, dev):
            raise ValueError(
                f"generator: expected a generator on {dev} (the device), "
                f"got one on {generator.device}"
            )
    h, w = max(1, round(H / patch)), max(1, round(W / patch))
    frames = T if per_frame else 1
    draws = torch.rand((B, frames, h, w), generator=generator, device=dev)
    # ratio 0 keeps everything, even a draw of exactly 0 (the public code masks it, p = 2^-24)
    keep = (draws >= 0 if r == 0 else draws > r).to(torch.uint8)  # nearest takes no bool
    mask = F.interpolate(keep, size=(H, W), mode="nearest").bool()
    return mask if per_frame else mask.expand(B, T, H, W)


def mask_clip(clip: Tensor, mask: Tensor) -> Tensor:
    """Zero the masked pixels of a clip: ``clip * mask`` over the channels.

    The public MIC code's ``imgs * input_mask``; differentiable in ``clip`` (the
    gradient is ``mask`` broadcast over the channels). MIC masks mean-subtracted
    images, so its masked pixels are the mean colour; on dastc's clips in
    ``[0, 1]`` they are black. Normalise first (or mask the normalised input
    inside your model) to have MIC's mean colour.

    Args:
        clip: float ``(B, T, C, H, W)`` clips or ``(B, C, H, W)`` images.
        mask: bool ``(B, T, H, W)`` (``(B, H, W)`` for images): ``True`` = kept,
            e.g. from :func:`block_mask`; on ``clip``'s device.

    Returns:
        The masked clip, the shape, dtype and device of ``clip``; masked pixels are
        0 in every channel.

    Raises:
        TypeError: ``clip`` is not floating point, or ``mask`` is not bool.
        ValueError: wrong ranks, ``mask``'s shape is not ``clip``'s without the
            channel axis (no broadcasting), or the two are on different devices.

    Example:
        >>> import torch
        >>> clip = torch.ones(1, 2, 3, 2, 2)
        >>> mask = torch.tensor([[True, False], [False, True]]).expand(1, 2, 2, 2)
        >>> mask_clip(clip, mask)[0, 0, 0]
        tensor([[1., 0.],
                [0., 1.]])
    """
    V.check_float(clip, "clip", _CLIP)
    is_clip = clip.dim() == 5
    V.check_bool(mask, "mask", ("B T H W",) if is_clip else ("B H W",))
    want = (*clip.shape[:-3], *clip.shape[-2:])
    if tuple(mask.shape) != want:
        layout = "(B, T, H, W)" if is_clip else "(B, H, W)"
        raise ValueError(
            f"mask: expected shape {layout} = {want} to match clip {tuple(clip.shape)}, "
            f"got {V.describe(mask)}"
        )
    V.check_same_device(("clip", clip), ("mask", mask))
    return clip * mask.unsqueeze(-3)
