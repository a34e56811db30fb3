"""Geometric clip augmentation: random rescale, crop and horizontal flip, drawn once per clip.

The training recipe of video UDA segmentation (e.g. 1280×720 source frames
cropped to 512×1024 with a random rescale and flip) must move every frame of a
clip the same way, or the augmentation itself becomes a motion the flow does
not explain. The transform is therefore *drawn* once per clip
(:func:`draw_clip_transform`) and *applied* to each tensor of the clip
(:func:`apply_clip_transform`): images, label maps, masks, probabilities and
optical flow, whose vectors are rescaled and mirrored with the frames so that
``warp(frame[t - 1], flow[t])`` still reproduces ``frame[t]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from dastc import _opaque
from dastc import _validate as V

__all__ = ["ClipTransform", "apply_clip_transform", "draw_clip_transform"]


def _coord_dtype(device: torch.device) -> torch.dtype:
    """float64 for the per-clip coordinates (exact enough for any frame), float32 on MPS."""
    return torch.float32 if device.type == "mps" else torch.float64


@dataclass(frozen=True, eq=False)
class ClipTransform:
    """One rescale + crop + flip per clip, drawn by :func:`draw_clip_transform`.

    Clip ``b`` is resized from ``in_size`` to ``size[b]``, cropped to ``out_size``
    at ``offset[b]`` of the resized frame (what lies outside the resized frame
    is padding) and, where ``flip[b]``, mirrored left-right. Every tensor is on
    one device; the fields are checked at construction (metadata only, no
    device synchronisation), so a transform built by hand, e.g. for a fixed
    test case, is checked too.

    Attributes:
        in_size: ``(H, W)`` of the frames the transform applies to.
        out_size: ``(h, w)`` of the result (the crop).
        size: long ``(B, 2)``, the resized ``(H', W')`` of each clip, each ``>= 1``.
            ``H' / H`` and ``W' / W`` may differ (a rounded rescale is slightly
            anisotropic); flows are rescaled per axis.
        offset: long ``(B, 2)``, the ``(top, left)`` of the crop in the resized
            frame; drawn in ``[0, max(H' - h, 0)] × [0, max(W' - w, 0)]``.
        flip: bool ``(B,)``, mirror clip ``b`` left-right after cropping.

    Raises:
        ValueError: a size is not a pair of ints ``>= 1``, a tensor has the wrong
            shape, the batch sizes differ or the tensors are on different devices.
        TypeError: a tensor has the wrong dtype.

    Examples:
        >>> tf = ClipTransform(
        ...     in_size=(4, 6), out_size=(2, 3),
        ...     size=torch.tensor([[4, 6]]), offset=torch.tensor([[1, 2]]),
        ...     flip=torch.tensor([True]))
        >>> x = torch.arange(24.0).view(1, 1, 4, 6)
        >>> apply_clip_transform(tf, x)[0, 0]
        tensor([[10.,  9.,  8.],
                [16., 15., 14.]])
    """

    in_size: tuple[int, int]
    out_size: tuple[int, int]
    size: Tensor
    offset: Tensor
    flip: Tensor

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_size", V.check_size_pair(self.in_size, "in_size"))
        object.__setattr__(self, "out_size", V.check_size_pair(self.out_size, "out_size"))
        size = V.check_long(self.size, "size", ("B 2",))
        offset = V.check_long(self.offset, "offset", ("B 2",))
        flip = V.check_bool(self.flip, "flip", ("B",))
        if size.shape[-1] != 2:
            raise ValueError(f"size: expected shape (B, 2) long, got {V.describe(size)}")
        if offset.shape != size.shape:
            raise ValueError(
                f"offset: expected shape {tuple(size.shape)} long, got {V.describe(offset)}"
            )
        if flip.shape[0] != size.shape[0]:
            raise ValueError(
                f"flip: expected shape ({size.shape[0]},) bool, got {V.describe(flip)}"
            )
        V.check_same_device(("size", size), ("offset", offset), ("flip", flip))

    @property
    def batch(self) -> int:
        """``B``, the number of clips."""
        return int(self.size.shape[0])


def draw_clip_transform(
    batch: int,
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    *,
    scale: tuple[float, float] = (0.5, 2.0),
    flip: float = 0.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ClipTransform:
    """Draw a random rescale, crop and horizontal flip per clip (mmseg's Resize, RandomCrop, Flip).

    For each clip ``b``, from one ``(B, 4)`` uniform draw ``u``:

    * ``s_b = scale[0] + (scale[1] - scale[0]) * u[b, 0]``, and the resized size
      ``(H', W') = (floor(H s_b + 0.5), floor(W s_b + 0.5))`` (at least 1), as
      mmcv rounds;
    * the crop's top-left corner uniform over the integer positions that keep
      the crop inside the resized frame, ``top = floor(u[b, 1] (max(H' - h, 0) + 1))``
      and ``left`` likewise from ``u[b, 2]``; a resized frame smaller than the
      crop sits at the top left, the rest is padding (mmseg's ``Pad`` after
      ``RandomCrop``; mmseg's ``cat_max_ratio`` re-draw is not done);
    * a left-right flip where ``u[b, 3] < flip``.

    The draw never reads a tensor back to the host. Apply the result with
    :func:`apply_clip_transform` to every tensor of the clips.

    Args:
        batch: ``B``, the number of clips (``>= 1``).
        in_size: ``(H, W)`` of the input frames.
        out_size: ``(h, w)`` of the crop, i.e. of the result.
        scale: ``(low, high)`` range of the rescale factor, ``0 < low <= high``.
        flip: probability of the horizontal flip, in [0, 1].
        generator: the random draws (``None``: torch's global generator).
        device: where the transform lives (the device of the tensors it will be
            applied to). Default: the generator's device, else the CPU.

    Returns:
        A :class:`ClipTransform` on ``device``.

    Raises:
        ValueError: ``batch < 1``, a size is not a pair of ints ``>= 1``, a bad
            ``scale`` range, ``flip`` outside [0, 1], or ``generator`` on another
            device than ``device``.
        TypeError: ``scale`` or ``flip`` is not a number (pair).

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> tf = draw_clip_transform(2, (720, 1280), (512, 1024), generator=g)
        >>> tf.size.shape, tf.offset.shape, tf.flip.shape
        (torch.Size([2, 2]), torch.Size([2, 2]), torch.Size([2]))
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected an int >= 1, got {batch!r}")
    H, W = V.check_size_pair(in_size, "in_size")
    oh, ow = V.check_size_pair(out_size, "out_size")
    lo, hi = _check_scale(scale)
    p = V.check_probability(flip, "flip")
    if device is None:
        dev = generator.device if generator is not None else torch.device("cpu")
    else:
        dev = torch.device(device)
    if generator is not None and generator.device.type != dev.type:
        raise ValueError(
            f"generator: expected a generator on {dev} (the transform's device), "
            f"got one on {generator.device}"
        )
    u = torch.rand(batch, 4, generator=generator, device=dev).to(_coord_dtype(dev))
    s = lo + (hi - lo) * u[:, 0:1]
    full = torch.tensor([H, W], device=dev, dtype=u.dtype)
    size = torch.floor(full * s + 0.5).long().clamp_min(1)  # (B, 2)
    room = (size - torch.tensor([oh, ow], device=dev)).clamp_min(0)  # (B, 2)
    offset = torch.minimum(torch.floor(u[:, 1:3] * (room + 1)).long(), room)
    return ClipTransform((H, W), (oh, ow), size, offset, u[:, 3] < p)


def _check_scale(scale: object) -> tuple[float, float]:
    if (
        not isinstance(scale, (tuple, list))
        or len(scale) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale)
    ):
        raise TypeError(f"scale: expected a pair of floats (low, high), got {scale!r}")
    lo, hi = float(scale[0]), float(scale[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"scale: expected finite (low, high) with 0 < low <= high, got {scale!r}")
    return lo, hi


def apply_clip_transform(
    transform: ClipTransform,
    x: Tensor,
    *,
    mode: Literal["bilinear", "nearest", "flow"] | None = None,
    fill: float | None = None,
) -> Tensor:
    """Rescale, crop and flip images, label maps, masks or optical flow with a drawn transform.

    Clip ``b`` of ``x`` (every frame and channel alike) is resized from
    ``transform.in_size`` to ``transform.size[b]``, cropped to
    ``transform.out_size`` at ``transform.offset[b]`` (``fill`` where the crop
    leaves the resized frame: bottom and right when the resized frame is
    smaller than the crop), and mirrored left-right where ``transform.flip[b]``
    (the whole crop, padding included). Pixel ``i`` of a resized axis of length
    ``n'`` sits at input coordinate ``(i + 0.5) n / n' - 0.5`` (pixel centres,
    ``align_corners=False``), so the result equals
    ``F.interpolate(..., size=size[b], align_corners=False)`` followed by slicing
    and ``torch.flip``:

    * ``"bilinear"`` (float ``x``: images, probabilities, features):
      ``F.interpolate(mode="bilinear")`` without antialiasing, edge values
      repeated at the border;
    * ``"nearest"`` (integer and bool ``x``: labels, masks):
      ``F.interpolate(mode="nearest-exact")``: the input pixel whose centre is
      nearest, ``floor((i + 0.5) n / n')``, consistent with the bilinear geometry,
      in exact integer arithmetic (at an exact tie, the right/lower pixel; torch's
      float32 kernel may pick the other one there), exact for any dtype;
    * ``"flow"``: ``x`` is backward optical flow ``(B[, T], 2, H, W)``, (dx, dy) in
      pixels (pixel ``(y, x)`` of frame ``t`` shows the point at ``(y + dy, x + dx)``
      of the reference frame, see :func:`dastc.functional.warp`). It is
      resampled bilinearly, ``dx`` multiplied by ``W' / W`` and ``dy`` by
      ``H' / H``, and ``dx`` negated on flipped clips, so that warping the
      transformed reference frame with it gives the transformed frame.
      Cropping moves both frames alike and leaves the vectors unchanged.

    Everything runs in one ``grid_sample`` (bilinear, flow) or one ``gather``
    (nearest) over all clips, frames and channels, without reading anything back
    to the host (``torch.compile(fullgraph=True)`` traces it). Bilinear results
    match ``F.interpolate`` up to the rounding of the sampling coordinates in
    ``x``'s dtype (about 1e-7 relative in float32; a transform that only crops
    therefore copies float32 pixels to about 1e-7, not bit for bit).

    Args:
        transform: the per-clip draw, see :func:`draw_clip_transform`.
        x: ``(B, T, C, H, W)``, ``(B, C, H, W)`` or ``(B, H, W)`` of any real dtype
            (label maps ``(B, T, H, W)`` or ``(B, H, W)``); ``B`` is the transform's
            batch and ``(H, W)`` its ``in_size``; the dimensions in between are
            transformed alike. With ``mode="flow"``, ``(B, T, 2, H, W)`` or
            ``(B, 2, H, W)`` float.
        mode: ``"bilinear"``, ``"nearest"`` or ``"flow"``. Default: ``"bilinear"``
            for float ``x``, ``"nearest"`` for integer and bool ``x``.
        fill: the padding value. Default: 0 for float and bool ``x``, 255 (the
            usual ``ignore_index``) for integer ``x``. Must be an integer for
            integer ``x`` and 0 or 1 for bool ``x``.

    Returns:
        ``x`` transformed: its shape with ``(H, W)`` replaced by ``out_size``, its
        dtype and device (float16/bfloat16 are resampled in float32, float64 in
        float64).

    Raises:
        TypeError: ``transform`` is not a :class:`ClipTransform`; ``x`` is not a
            real tensor, or is integer/bool with ``mode="bilinear"`` or
            ``"flow"``.
        ValueError: ``x`` has the wrong rank, batch size or frame size, is on
            another device than the transform, has no 2 channels at dim -3 with
            ``mode="flow"``; an unknown ``mode``; a ``fill`` that ``x``'s dtype
            cannot hold.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> tf = draw_clip_transform(2, (36, 64), (32, 32), generator=g)
        >>> clip, label = torch.rand(2, 3, 3, 36, 64), torch.randint(0, 9, (2, 3, 36, 64))
        >>> flow = torch.randn(2, 3, 2, 36, 64)
        >>> apply_clip_transform(tf, clip).shape
        torch.Size([2, 3, 3, 32, 32])
        >>> apply_clip_transform(tf, label).dtype
        torch.int64
        >>> apply_clip_transform(tf, flow, mode="flow").shape
        torch.Size([2, 3, 2, 32, 32])
    """
    if not isinstance(transform, ClipTransform):
        raise TypeError(f"transform: expected a ClipTransform, got {V.describe(transform)}")
    x = V.check_rank(x, "x", ("B T C H W", "B C H W", "B H W"))
    if x.is_complex():
        raise TypeError(f"x: expected a real (float, integer or bool) tensor, got {V.describe(x)}")
    is_float = x.is_floating_point()
    if mode is None:
        mode = "bilinear" if is_float else "nearest"
    if mode not in ("bilinear", "nearest", "flow"):
        raise ValueError(f"mode: expected 'bilinear', 'nearest' or 'flow', got {mode!r}")
    if mode != "nearest" and not is_float:
        raise TypeError(
            f"x: mode={mode!r} needs a floating-point x, got {V.describe(x)}; "
            "transform integer labels and bool masks with mode='nearest'"
        )
    if mode == "flow" and (x.dim() < 4 or x.shape[-3] != 2):
        raise ValueError(
            f"x: mode='flow' expects shape (B, T, 2, H, W) or (B, 2, H, W) (dx, dy in pixels), "
            f"got {V.describe(x)}"
        )
    if x.shape[0] != transform.batch:
        raise ValueError(
            f"x: expected batch size B = {transform.batch} (the transform's), got {V.describe(x)}"
        )
    if tuple(x.shape[-2:]) != transform.in_size:
        raise ValueError(
            f"x: expected (H, W) = {transform.in_size} (the transform's in_size), "
            f"got {V.describe(x)}"
        )
    if x.device != transform.size.device:
        raise ValueError(
            f"x: expected a tensor on {transform.size.device} (the transform's device), "
            f"got {V.describe(x)}"
        )
    fill_value = _check_fill(fill, x)
    if torch.compiler.is_compiling() and not x.requires_grad:
        # the eager kernels inside compiled graphs: inductor's rewrite of the sampling
        # grid, the nearest gather and the padding fill ran up to 3x slower than eager
        out: Tensor = _apply_op(
            x,
            transform.size,
            transform.offset,
            transform.flip,
            list(transform.in_size),
            list(transform.out_size),
            mode,
            float(fill_value) if x.is_floating_point() else 0.0,
            0 if x.is_floating_point() else int(fill_value),
        )
        return out
    return _apply(
        x,
        transform.size,
        transform.offset,
        transform.flip,
        transform.in_size,
        transform.out_size,
        mode,
        fill_value,
    )


def _check_fill(fill: object, x: Tensor) -> float | int | bool:
    if fill is None:
        return 255 if not (x.is_floating_point() or x.dtype == torch.bool) else 0
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise TypeError(f"fill: expected a number, got {fill!r}")
    if x.is_floating_point():
        return float(fill)
    if x.dtype == torch.bool:
        if fill not in (0, 1):
            raise ValueError(f"fill: expected 0 or 1 for a bool x, got {fill!r}")
        return bool(fill)
    if not float(fill).is_integer():
        raise ValueError(f"fill: expected an integer for an integer x ({x.dtype}), got {fill!r}")
    info = torch.iinfo(x.dtype)
    if not info.min <= int(fill) <= info.max:
        raise ValueError(f"fill: expected a value in [{info.min}, {info.max}], got {fill!r}")
    return int(fill)


def _apply(
    x: Tensor,
    size: Tensor,
    offset: Tensor,
    flip: Tensor,
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    mode: str,
    fill: float | int | bool,
) -> Tensor:
    B = x.shape[0]
    H, W = in_size
    oh, ow = out_size
    dev = x.device
    ct = _coord_dtype(dev)
    # Resized-frame row / column read by each output pixel, per clip: (B, oh), (B, ow).
    rows = offset[:, 0:1] + torch.arange(oh, device=dev)
    cols = torch.arange(ow, device=dev).expand(B, ow)
    cols = offset[:, 1:2] + torch.where(flip.view(B, 1), ow - 1 - cols, cols)
    hs, ws = size[:, 0:1], size[:, 1:2]
    in_rows = ((rows >= 0) & (rows < hs)).view(B, 1, oh, 1)
    inside = in_rows & ((cols >= 0) & (cols < ws)).view(B, 1, 1, ow)
    planes = x.reshape(B, -1, H, W)
    out_shape = (*x.shape[:-2], oh, ow)
    if mode == "nearest":
        iy = _nearest_index(rows, hs, H)
        ix = _nearest_index(cols, ws, W)
        index = (iy.view(B, 1, oh, 1) * W + ix.view(B, 1, 1, ow)).view(B, 1, oh * ow)
        flat = planes.reshape(B, -1, H * W)
        out = flat.gather(2, index.expand(B, flat.shape[1], oh * ow))
        out = out.view(B, -1, oh, ow)
        out = out.masked_fill_(~inside, fill)  # out is ours: fill in place
        return out.reshape(out_shape)

    dt = V.compute_dtype(x.dtype)
    # Normalised coordinates (align_corners=False) are the same in the resized and in
    # the input frame: pixel i of a resized axis of n' sits at (2 i + 1) / n' - 1. One
    # grid_sample over all planes of all clips; "border" repeats the edge pixels as
    # F.interpolate does.
    gy = (2 * rows.to(ct) + 1) / hs.to(ct) - 1  # (B, oh)
    gx = (2 * cols.to(ct) + 1) / ws.to(ct) - 1  # (B, ow)
    grid = torch.stack(
        (gx.to(dt).view(B, 1, ow).expand(B, oh, ow), gy.to(dt).view(B, oh, 1).expand(B, oh, ow)),
        dim=-1,
    )
    out = _opaque.grid_sample(planes.to(dt), grid, "bilinear", "border")
    if mode == "flow":
        # (dx, dy) scale with the resize of their axis; a mirror negates dx.
        ratio = size.to(ct) / torch.tensor([H, W], device=dev, dtype=ct)  # (B, 2): (H'/H, W'/W)
        sign = torch.where(flip, -1.0, 1.0).to(ct)
        factor = torch.stack((ratio[:, 1] * sign, ratio[:, 0]), dim=1).to(dt)
        out = out.view(B, -1, 2, oh, ow) * factor.view(B, 1, 2, 1, 1)
        out = out.view(B, -1, oh, ow)
    out = out.masked_fill_(~inside, fill)  # out is ours: fill in place
    return out.reshape(out_shape).to(x.dtype)


@torch.library.custom_op("dastc::apply_clip_transform", mutates_args=())
def _apply_op(
    x: Tensor,
    size: Tensor,
    offset: Tensor,
    flip: Tensor,
    in_size: list[int],
    out_size: list[int],
    mode: str,
    fill_float: float,
    fill_int: int,
) -> Tensor:
    """:func:`_apply` as one custom op (no autograd: used only where ``x`` needs no
    gradient). ``fill_float`` is the padding of float ``x``, ``fill_int`` that of
    integer and bool ``x`` (an integer fill stays exact beyond 2**53)."""
    fill: float | int | bool = fill_float
    if x.dtype == torch.bool:
        fill = bool(fill_int)
    elif not x.is_floating_point():
        fill = fill_int
    oh, ow = out_size
    return _apply(x, size, offset, flip, (in_size[0], in_size[1]), (oh, ow), mode, fill)


@_apply_op.register_fake
def _(
    x: Tensor,
    size: Tensor,
    offset: Tensor,
    flip: Tensor,
    in_size: list[int],
    out_size: list[int],
    mode: str,
    fill_float: float,
    fill_int: int,
) -> Tensor:
    return x.new_empty((*x.shape[:-2], out_size[0], out_size[1]))


def _nearest_index(pos: Tensor, resized: Tensor, n: int) -> Tensor:
    """Input pixel read by resized pixel ``pos``: ``floor((pos + 0.5) * n / n')``, clamped.

    In exact integer arithmetic: the input pixel whose centre is nearest, the
    right one at a tie (where torch's float32 ``nearest-exact`` kernel may pick
    either).
    """
    idx = torch.div((2 * pos + 1) * n, 2 * resized, rounding_mode="floor")
    return idx.clamp(0, n - 1)
