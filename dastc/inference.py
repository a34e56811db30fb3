"""Inference helpers: sliding-window logits for clips too large to segment at once.

:func:`sliding_window_logits` is mmseg's ``EncoderDecoder.slide_inference``
(``open-mmlab/mmsegmentation`` and DAFormer's copy,
``mmseg/models/segmentors/encoder_decoder.py``) for clips: the same window
grid, the same averaging of overlapping windows, with a clip's flow cropped
like its frames.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from dastc import _validate as V

__all__ = ["sliding_window_logits"]

_CLIP_LAYOUTS = ("B T C H W", "B C H W")

Forward = Callable[[Tensor, Tensor | None], Tensor]


def _starts(size: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``[(start, end)]`` of the windows along one axis, as ``slide_inference`` places them:
    every ``stride``, the last one moved back to end at the border; a window larger than
    the axis covers it whole."""
    grids = max(size - window + stride - 1, 0) // stride + 1
    spans = []
    for i in range(grids):
        end = min(i * stride + window, size)
        spans.append((max(end - window, 0), end))
    return spans


def _coverage(size: int, spans: list[tuple[int, int]]) -> list[int]:
    count = [0] * size
    for a, b in spans:
        for i in range(a, b):
            count[i] += 1
    return count


def sliding_window_logits(
    forward: Forward,
    clip: Tensor,
    window: tuple[int, int],
    stride: tuple[int, int],
    num_classes: int,
    flow: Tensor | None = None,
    *,
    align_corners: bool = False,
) -> Tensor:
    """Logits of a whole clip from ``forward`` on overlapping windows, averaged where they overlap.

    The windows are those of mmseg's ``slide_inference``: along each axis one
    every ``stride`` pixels, ``ceil((size - window) / stride) + 1`` of them, the
    last moved back to end at the border; a window larger than the clip covers
    the whole axis (the crop is then smaller than ``window``, not padded). Each
    pixel's logits are the sum over the windows holding it divided by their
    number. Logits a ``forward`` returns at another size than its crop (a
    stride-4 decoder) are first resized to the crop bilinearly, as mmseg's
    ``encode_decode`` does.

    Args:
        forward: ``forward(clip_crop, flow_crop)`` -> logits: the model, e.g.
            ``lambda x, f: model(x, f)``; ``clip_crop`` is ``clip[..., y1:y2,
            x1:x2]``, ``flow_crop`` the same window of ``flow`` (``None``
            without flow). Returns float ``(B, T, K, h, w)`` for a clip
            ``(B, T, C, H, W)``, ``(B, K, h, w)`` for ``(B, C, H, W)``.
        clip: float ``(B, T, C, H, W)`` (or an image batch ``(B, C, H, W)``).
        window: ``(h, w)`` of a window (mmseg's ``crop_size``).
        stride: ``(h, w)`` between windows; at most ``window`` leaves no gap
            (a larger one is refused where it would leave pixels uncovered).
        num_classes: ``K``.
        flow: float ``(B, T, 2, H, W)`` (``(B, 2, H, W)`` for images), the
            clip's flow in pixels (a window's crop keeps its vectors), or ``None``.
        align_corners: of the resize of a smaller ``forward`` output to its crop.

    Returns:
        float ``(B, T, K, H, W)`` (``(B, K, H, W)`` for images), in the dtype
        ``forward`` returns.

    Raises:
        TypeError: ``forward`` is not callable, ``clip``/``flow`` not float, or
            ``align_corners`` not a bool.
        ValueError: bad shapes, ``window``/``stride`` not pairs of ints > 0, a
            ``stride`` leaving pixels uncovered, devices that differ, or a
            ``forward`` output of the wrong shape.

    Examples:
        >>> head = torch.nn.Conv2d(3, 4, 1)
        >>> forward = lambda x, flow: head(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        >>> clip = torch.rand(1, 2, 3, 20, 30)
        >>> logits = sliding_window_logits(forward, clip, (16, 16), (8, 8), num_classes=4)
        >>> logits.shape, torch.allclose(logits, forward(clip, None), atol=1e-6)
        (torch.Size([1, 2, 4, 20, 30]), True)
    """
    if not callable(forward):
        raise TypeError(f"forward: expected a callable (clip, flow) -> logits, got {forward!r}")
    V.check_float(clip, "clip", _CLIP_LAYOUTS)
    V.check_nonempty(clip, "clip")
    win_h, win_w = V.check_size_pair(window, "window")
    str_h, str_w = V.check_size_pair(stride, "stride")
    K = V.check_num_classes(num_classes)
    if not isinstance(align_corners, bool):
        raise TypeError(f"align_corners: expected a bool, got {align_corners!r}")
    c_dim = clip.dim() - 3
    if flow is not None:
        layout = ("B T 2 H W",) if clip.dim() == 5 else ("B 2 H W",)
        V.check_float(flow, "flow", layout)
        expected = (*clip.shape[:c_dim], 2, *clip.shape[-2:])
        if tuple(flow.shape) != expected:
            raise ValueError(
                f"flow: expected shape {expected} (the clip's with 2 channels), "
                f"got {V.describe(flow)}"
            )
        V.check_same_device(("clip", clip), ("flow", flow))
    H, W = int(clip.shape[-2]), int(clip.shape[-1])
    rows, cols = _starts(H, win_h, str_h), _starts(W, win_w, str_w)
    row_count, col_count = _coverage(H, rows), _coverage(W, cols)
    for axis, counts, win, step in (("rows", row_count, win_h, str_h),
                                    ("columns", col_count, win_w, str_w)):  # fmt: skip
        if 0 in counts:
            raise ValueError(
                f"stride: windows of {win} every {step} leave {axis} {counts.index(0)}.. of "
                f"{len(counts)} uncovered; expected a stride <= the window"
            )
    lead = tuple(clip.shape[:c_dim])
    preds: Tensor | None = None
    for y1, y2 in rows:
        for x1, x2 in cols:
            crop = clip[..., y1:y2, x1:x2]
            crop_flow = flow[..., y1:y2, x1:x2] if flow is not None else None
            out = forward(crop, crop_flow)
            if (
                not isinstance(out, Tensor)
                or not out.is_floating_point()
                or out.dim() != clip.dim()
                or tuple(out.shape[:c_dim]) != lead
                or out.shape[c_dim] != K
            ):
                raise ValueError(
                    f"forward: expected float logits of shape {(*lead, K, y2 - y1, x2 - x1)} "
                    f"for a crop {tuple(crop.shape)}, got {V.describe(out)}"
                )
            if tuple(out.shape[-2:]) != (y2 - y1, x2 - x1):
                flat = out.reshape(-1, *out.shape[-3:])
                flat = F.interpolate(
                    flat, size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=align_corners
                )
                out = flat.reshape(*lead, K, y2 - y1, x2 - x1)
            if preds is None:
                preds = out.new_zeros((*lead, K, H, W))
            preds[..., y1:y2, x1:x2] += out
    assert preds is not None  # at least one window
    per_row = torch.tensor(row_count, dtype=preds.dtype, device=preds.device)
    per_col = torch.tensor(col_count, dtype=preds.dtype, device=preds.device)
    return preds / (per_row[:, None] * per_col[None, :])
