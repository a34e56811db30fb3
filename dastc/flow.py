"""Backward warping with optical flow, and flow validity / occlusion masks.

Optical flow in dastc is *backward* flow in pixels: ``flow[..., 0, y, x]`` (dx) and
``flow[..., 1, y, x]`` (dy) say where pixel ``(y, x)`` of the current frame lies in
the reference frame, so warping the reference frame reads

.. math::

    \\mathrm{out}[\\ldots, y, x] = \\mathrm{x}[\\ldots, y + f_y(y, x), x + f_x(y, x)],

with bilinear (or nearest) interpolation between pixels and a constant outside the
frame. Warping is one :func:`torch.nn.functional.grid_sample` call over all batch
elements and frames.

The functions here are exported from :mod:`dastc.functional`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from dastc import _opaque
from dastc._validate import check_dims, check_float, check_rank, check_same_device, describe

__all__ = [
    "compose_flow",
    "estimate_flow",
    "flow_from_last",
    "flow_validity",
    "occlusion_mask",
    "warp",
]


def _compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (half/bf16/int are computed in float32)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _check_flow(flow: object, name: str) -> Tensor:
    flow = check_float(flow, name, ("B T 2 H W", "B 2 H W"))
    if flow.shape[-3] != 2:
        raise ValueError(
            f"{name}: expected shape (B, T, 2, H, W) or (B, 2, H, W) (dx, dy in pixels), "
            f"got {describe(flow)}"
        )
    return flow


def _sample_coords(flow: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Pixel coordinates ``(x + dx, y + dy)`` each of shape ``flow.shape[:-3] + (H, W)``."""
    h, w = flow.shape[-2:]
    f = flow.to(dtype)
    xs = torch.arange(w, device=flow.device, dtype=dtype)
    ys = torch.arange(h, device=flow.device, dtype=dtype).unsqueeze(-1)
    return xs + f[..., 0, :, :], ys + f[..., 1, :, :]


def warp(
    x: Tensor,
    flow: Tensor,
    mode: Literal["bilinear", "nearest"] = "bilinear",
    *,
    fill: float | None = None,
) -> Tensor:
    """Backward-warp images, clips or label maps with optical flow.

    .. math::

        \\mathrm{out}[\\ldots, y, x] = \\mathrm{x}[\\ldots, y + f_y, x + f_x]

    where ``(f_x, f_y) = flow[..., :, y, x]`` in pixels (pixel centres at integer
    coordinates, as ``grid_sample`` with ``align_corners=True``), interpolated
    bilinearly or taken from the nearest pixel. Samples outside the frame read
    ``fill`` (bilinear samples near the border blend with it, as zero padding does).

    Float inputs are warped in float32 (float64 if ``x`` or ``flow`` is float64), also
    for half/bfloat16 inputs and under autocast, and cast back to ``x.dtype``.
    Integer (e.g. ``torch.long`` labels) and bool inputs need ``mode="nearest"``:
    they are warped as float and rounded back, exactly for values up to 2**24.

    Args:
        x: what to warp. Float ``(B, C, H, W)`` with ``flow`` ``(B, 2, H, W)``, or
            ``(B, T, C, H, W)`` with ``flow`` ``(B, T, 2, H, W)``. Label maps (integer
            or bool dtype) may also drop the channel axis: ``(B, H, W)`` with a
            ``(B, 2, H, W)`` flow, ``(B, T, H, W)`` with a ``(B, T, 2, H, W)`` flow.
        flow: float backward flow ``(B[, T], 2, H, W)``, (dx, dy) in pixels, from the
            output frame to ``x``'s frame. Its ``B, T, H, W`` must equal ``x``'s
            exactly (no broadcasting).
        mode: ``"bilinear"`` (images, features, probabilities; differentiable in
            ``x`` and ``flow``) or ``"nearest"`` (labels, masks).
        fill: the value read outside the frame. Default: 0 for float and bool
            inputs, 255 (the usual ``ignore_index``) for integer inputs.

    Returns:
        The warped tensor, the shape and dtype of ``x``.

    Raises:
        TypeError: ``flow`` is not floating point, or ``x`` is integer/bool with
            ``mode="bilinear"``.
        ValueError: a rank or shape does not match, ``mode`` is unknown, or the
            tensors are on different devices.

    Examples:
        >>> clip = torch.rand(2, 3, 3, 8, 8)
        >>> flow = torch.zeros(2, 3, 2, 8, 8)
        >>> warp(clip, flow).shape
        torch.Size([2, 3, 3, 8, 8])
        >>> label = torch.randint(0, 5, (2, 3, 8, 8))
        >>> warp(label, flow, mode="nearest").dtype
        torch.int64
    """
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode: expected 'bilinear' or 'nearest', got {mode!r}")
    flow = _check_flow(flow, "flow")
    is_float = isinstance(x, Tensor) and x.is_floating_point()
    if is_float:
        x = check_float(x, "x", ("B T C H W", "B C H W"))
        if x.dim() != flow.dim():
            raise ValueError(
                f"x: expected shape {'(B, T, C, H, W)' if flow.dim() == 5 else '(B, C, H, W)'} "
                f"to match flow {tuple(flow.shape)}, got {describe(x)}"
            )
        has_channel = True
    else:
        x = check_rank(x, "x", ("B T C H W", "B C H W", "B H W"))
        if x.is_complex():
            raise TypeError(f"x: expected a float, integer or bool tensor, got {describe(x)}")
        if mode != "nearest":
            raise TypeError(
                f"x: mode='bilinear' needs a floating-point x, got {describe(x)}; "
                "warp integer labels and bool masks with mode='nearest'"
            )
        # A label map without channel axis has rank flow.dim() - 1.
        if x.dim() == flow.dim():
            has_channel = True
        elif x.dim() == flow.dim() - 1:
            has_channel = False
        else:
            raise ValueError(
                f"x: expected rank {flow.dim()} (with a channel axis) or {flow.dim() - 1} "
                f"(a label map) to match flow {tuple(flow.shape)}, got {describe(x)}"
            )
    check_same_device(("x", x), ("flow", flow))
    lead = flow.dim() - 3  # 1 for images, 2 for clips
    x_dims = [*range(lead), x.dim() - 2, x.dim() - 1]
    flow_dims = [*range(lead), flow.dim() - 2, flow.dim() - 1]
    what = "(B, T, H, W)" if lead == 2 else "(B, H, W)"
    check_dims(x, "x", x_dims, flow, "flow", flow_dims, what)

    if fill is None:
        fill = 0.0 if (is_float or x.dtype == torch.bool) else 255.0
    fill = float(fill)

    dtype = _compute_dtype(x, flow)
    h, w = x.shape[-2:]
    xc = x if has_channel else x.unsqueeze(lead)
    xf = xc.reshape(-1, *xc.shape[lead:]).to(dtype)  # (N, C, H, W)
    if fill != 0.0:
        xf = xf - fill  # zero padding of (x - fill), shifted back: padding with `fill`
    gx, gy = _sample_coords(flow, dtype)
    # Normalise pixel coordinates for align_corners=False: pixel i of n sits at
    # (2 i + 1) / n - 1, which grid_sample maps back to exactly i; unlike the
    # align_corners=True form this stays exact when H or W is 1.
    grid = torch.stack(((2.0 * gx + 1.0) / w - 1.0, (2.0 * gy + 1.0) / h - 1.0), dim=-1)
    # the eager kernel, also inside compiled graphs (inductor's rewrite is slower)
    out = _opaque.grid_sample(xf, grid.reshape(-1, h, w, 2), mode)
    if fill != 0.0:
        out = out + fill
    out = out.reshape(xc.shape)
    if not has_channel:
        out = out.squeeze(lead)
    if is_float:
        return out.to(x.dtype)
    if x.dtype == torch.bool:
        return out > 0.5
    return out.round().to(x.dtype)


def flow_validity(flow: Tensor) -> Tensor:
    """Where backward flow lands inside the frame.

    .. math::

        \\mathrm{valid}[\\ldots, y, x] = (0 \\le x + f_x \\le W - 1) \\wedge
        (0 \\le y + f_y \\le H - 1)

    A valid pixel is warped from the reference frame with every bilinear tap inside
    it; an invalid one reads (partly) the fill value of :func:`warp`.

    Args:
        flow: float backward flow ``(B[, T], 2, H, W)`` in pixels.

    Returns:
        bool ``(B[, T], H, W)``, True where ``(x + dx, y + dy)`` is inside the frame.

    Raises:
        TypeError: ``flow`` is not floating point.
        ValueError: ``flow`` does not have shape ``(B[, T], 2, H, W)``.

    Examples:
        >>> flow = torch.zeros(2, 3, 2, 4, 4)
        >>> flow[..., 0, :, :] = 1.0  # everything moves one pixel left
        >>> v = flow_validity(flow)
        >>> v.shape, v[0, 0, 0].tolist()
        (torch.Size([2, 3, 4, 4]), [True, True, True, False])
    """
    flow = _check_flow(flow, "flow")
    h, w = flow.shape[-2:]
    gx, gy = _sample_coords(flow, _compute_dtype(flow))
    return (gx >= 0) & (gx <= w - 1) & (gy >= 0) & (gy <= h - 1)


def occlusion_mask(
    flow_fw: Tensor,
    flow_bw: Tensor,
    alpha1: float = 0.01,
    alpha2: float = 0.5,
) -> Tensor:
    """Forward-backward consistency check (UnFlow): True where a pixel is *not* occluded.

    For frames a and b, ``flow_fw`` maps each pixel of a to b (backward flow for
    warping b onto a) and ``flow_bw`` maps b to a. With
    ``b_w = warp(flow_bw, flow_fw)`` (the reverse flow read at the pixel's match),
    a pixel of a is valid when

    .. math::

        |f + b_w|^2 < \\alpha_1 (|f|^2 + |b_w|^2) + \\alpha_2

    and ``x + f`` lies inside the frame (:func:`flow_validity`). Occluded or
    out-of-frame pixels are False (Meister et al., UnFlow, AAAI 2018).

    Args:
        flow_fw: float flow ``(B[, T], 2, H, W)`` from frame a to frame b, in pixels.
        flow_bw: float flow from frame b to frame a, the shape of ``flow_fw``.
        alpha1: relative tolerance (on the squared flow magnitudes), >= 0.
        alpha2: absolute tolerance in squared pixels, >= 0.

    Returns:
        bool ``(B[, T], H, W)``: True where frame a's pixel is visible in frame b
        and its flow is consistent (safe to use warped values there).

    Raises:
        TypeError: a flow is not floating point.
        ValueError: a flow has the wrong shape, the shapes differ, or an alpha is
            negative.

    Examples:
        >>> fw = torch.zeros(1, 2, 2, 8, 8)
        >>> occlusion_mask(fw, -fw).shape
        torch.Size([1, 2, 8, 8])
    """
    flow_fw = _check_flow(flow_fw, "flow_fw")
    flow_bw = _check_flow(flow_bw, "flow_bw")
    if flow_bw.shape != flow_fw.shape:
        raise ValueError(
            f"flow_bw: expected the shape of flow_fw {tuple(flow_fw.shape)}, "
            f"got {describe(flow_bw)}"
        )
    check_same_device(("flow_fw", flow_fw), ("flow_bw", flow_bw))
    for name, value in (("alpha1", alpha1), ("alpha2", alpha2)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name}: expected a float >= 0, got {value!r}")
        if not value >= 0:
            raise ValueError(f"{name}: expected a float >= 0, got {value!r}")
    dtype = _compute_dtype(flow_fw, flow_bw)
    f = flow_fw.to(dtype)
    b_w = warp(flow_bw.to(dtype), f)
    sq = (f + b_w).square().sum(dim=-3)
    mag = f.square().sum(dim=-3) + b_w.square().sum(dim=-3)
    consistent = sq < alpha1 * mag + alpha2
    return consistent & flow_validity(f)


# -- chaining and resizing backward flows (the public flow files) ----------------------


def _resize_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of a ``(N, 2, h, w)`` flow to ``size``, rescaling the vectors."""
    h, w = flow.shape[-2:]
    if (h, w) == size:
        return flow
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / w, size[0] / h], dtype=out.dtype).view(1, 2, 1, 1)
    return out * scale


def compose_flow(first: Tensor, second: Tensor) -> Tensor:
    """Chain two backward flows: ``a -> b`` then ``b -> c`` gives ``a -> c``.

    ``out(p) = first(p) + second(p + first(p))``, ``second`` sampled bilinearly
    (pixel centres at integer coordinates) with border values outside the frame.

    Args:
        first: float ``(..., 2, H, W)`` flow on frame a's grid pointing into frame b.
        second: float ``(..., 2, H, W)`` flow on frame b's grid pointing into frame c.

    Returns:
        float ``(..., 2, H, W)`` flow on frame a's grid pointing into frame c.

    Examples:
        >>> a = torch.ones(2, 4, 5)
        >>> compose_flow(a, 2 * a)[:, 0, 0].tolist()
        [3.0, 3.0]
    """
    h, w = first.shape[-2:]
    lead = first.shape[:-3]
    a = first.reshape(-1, 2, h, w)
    b = second.reshape(-1, 2, h, w)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=a.dtype, device=a.device),
        torch.arange(w, dtype=a.dtype, device=a.device),
        indexing="ij",
    )
    gx = (xs + a[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + a[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    sampled = F.grid_sample(b, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return (a + sampled).reshape(*lead, 2, h, w)


def flow_from_last(flow_prev: Tensor) -> Tensor:
    """Flow from the last frame of a clip to each of its frames, chained from per-frame flows.

    ``flow_prev[..., t, :, :, :]`` is the backward flow of frame ``t`` into frame
    ``t - 1`` (the item field ``"flow_prev"``; the public ``*_int16_x10.npy``
    files). This returns ``out`` with ``out[T-1] = 0``, ``out[T-2] = flow_prev[T-1]``
    and ``out[t] = compose_flow(out[t + 1], flow_prev[t + 1])``: the flow on the
    **last** frame's grid pointing into frame ``t``, so that
    ``warp(x[t], out[t])`` brings frame ``t`` (or its predictions) onto the last
    frame. Chaining accumulates the error of each step and cannot see through
    occlusions.

    Args:
        flow_prev: float ``(T, 2, H, W)`` or ``(B, T, 2, H, W)``.

    Returns:
        float tensor of the same shape.

    Raises:
        ValueError: ``flow_prev`` is not ``(..., T, 2, H, W)``.

    Examples:
        >>> fp = torch.zeros(3, 2, 4, 5)
        >>> fp[1:, 0] = 1.0  # every frame moved 1 px right of the one before
        >>> flow_from_last(fp)[:, 0, 0, 0].tolist()
        [2.0, 1.0, 0.0]
    """
    if not isinstance(flow_prev, Tensor) or flow_prev.dim() not in (4, 5):
        raise ValueError(
            "flow_prev: expected shape (T, 2, H, W) or (B, T, 2, H, W), "
            f"got {getattr(flow_prev, 'shape', type(flow_prev).__name__)}"
        )
    if flow_prev.shape[-3] != 2:
        raise ValueError(
            f"flow_prev: expected shape (T, 2, H, W) or (B, T, 2, H, W), got {flow_prev.shape}"
        )
    t = flow_prev.shape[-4]
    out = [torch.zeros_like(flow_prev[..., 0, :, :, :])]
    for k in range(t - 2, -1, -1):  # a chain: each step needs the one after it
        nxt = flow_prev[..., k + 1, :, :, :]
        out.append(nxt if k == t - 2 else compose_flow(out[-1], nxt))
    return torch.stack(out[::-1], dim=-4)


from dastc.flow_estimation import estimate_flow  # noqa: E402  (re-export; no cycle)
