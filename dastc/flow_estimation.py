"""Optical flow estimation for your own videos, in dastc's backward-flow convention.

:func:`estimate_flow` returns what the public ``*_int16_x10.npy`` files hold and
what :func:`dastc.flow.warp` consumes: *backward* flow in pixels, ``(dx, dy)``,
such that pixel ``(y, x)`` of a frame shows the scene point at ``(y + dy, x + dx)``
of its reference (previous) frame, so ``warp(reference, flow)`` reproduces the
frame. Backends:

* ``"dis"`` (default): OpenCV's DIS optical flow (``DISOPTICAL_FLOW_PRESET_MEDIUM``)
  on grayscale ``uint8`` frames, on the CPU. Needs ``pip install "dastc[flow]"``
  (``opencv-python-headless``).
* ``"raft"``, ``"raft_large"``, ``"raft_small"``: torchvision's RAFT with weights
  from a local file (nothing is downloaded); ``"raft"`` picks the architecture
  matching the file. Runs on the frames' device.
* any callable ``(frames, reference) -> (N, 2, H, W)``: used as is.

``python -m dastc.data.flow`` writes the files for a dataset tree or a folder of
frames with it (see :mod:`dastc.data.flow`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dastc._validate import check_float, describe, value_checks_enabled

__all__ = ["METHODS", "estimate_flow"]

METHODS: tuple[str, ...] = ("dis", "raft", "raft_large", "raft_small")
"""The named backends of :func:`estimate_flow`."""

_FlowFn = Callable[[Tensor, Tensor], Tensor]


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 is installed for the tests
        raise ImportError(
            'estimate_flow(method="dis") needs OpenCV: pip install "dastc[flow]" '
            f"(opencv-python-headless); importing cv2 failed: {exc}"
        ) from exc
    return cv2


def _to_gray_u8(x: Tensor) -> Any:
    """``(N, 3, H, W)`` float in [0, 1] -> numpy uint8 ``(N, H, W)`` (ITU-R 601 luma)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32)
    gray = torch.einsum("nchw,c->nhw", x.detach().to("cpu", torch.float32), w)
    return gray.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def _dis(frames: Tensor, reference: Tensor) -> Tensor:
    """OpenCV DIS: ``calc(prev=frame, next=reference)`` gives frame(y, x) ~ reference(y +
    fy, x + fx), i.e. dastc's backward flow of the frame into the reference."""
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    cur, ref = _to_gray_u8(frames), _to_gray_u8(reference)
    out = [
        torch.from_numpy(dis.calc(c, r, None)).permute(2, 0, 1)
        for c, r in zip(cur, ref, strict=True)
    ]
    return torch.stack(out).to(torch.float32)


def _raft_model(method: str, weights: str | os.PathLike[str] | None, device: torch.device) -> Any:
    if weights is None:
        raise ValueError(
            f"weights: method={method!r} needs a local RAFT state-dict file "
            "(e.g. torchvision's raft_large_C_T_SKHT_V2 .pth, downloaded by you); got None"
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (weights: a RAFT state-dict file)")
    try:
        optical_flow = importlib.import_module("torchvision.models.optical_flow")
    except Exception as exc:  # ImportError, or a torchvision built for another torch
        raise ImportError(
            f"estimate_flow(method={method!r}) needs torchvision built for this torch "
            f"(torchvision.models.optical_flow); importing it failed: {exc}"
        ) from exc
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    archs = {"raft_large": ("raft_large",), "raft_small": ("raft_small",)}.get(
        method, ("raft_large", "raft_small")
    )
    errors = []
    for arch in archs:
        model = getattr(optical_flow, arch)(weights=None, progress=False)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            errors.append(f"{arch}: {str(exc).splitlines()[0]}")
            continue
        return model.eval().to(device)
    raise ValueError(f"weights: {path} is not a state dict of {' or '.join(archs)} ({errors})")


def _raft(model: Any, frames: Tensor, reference: Tensor) -> Tensor:
    """RAFT(image1=frame, image2=reference) is the flow of the frame into the reference:
    frame(y, x) ~ reference(y + fy, x + fx), dastc's backward flow. Inputs are scaled to
    [-1, 1] and padded (replicate) to a multiple of 8."""
    h, w = frames.shape[-2:]
    ph, pw = (-h) % 8, (-w) % 8
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)

    def prep(x: Tensor) -> Tensor:
        x = x.to(torch.float32) * 2.0 - 1.0
        return F.pad(x, pad, mode="replicate") if ph or pw else x

    with torch.inference_mode():
        flow: Tensor = model(prep(frames), prep(reference))[-1]
    return flow[..., pad[2] : pad[2] + h, pad[0] : pad[0] + w].to(torch.float32)


def _check_image(x: object, name: str) -> Tensor:
    x = check_float(x, name, ("N 3 H W", "3 H W"))
    if x.shape[-3] != 3:
        raise ValueError(
            f"{name}: expected shape (N, 3, H, W) or (3, H, W) (RGB), got {describe(x)}"
        )
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise ValueError(f"{name}: expected H, W >= 2, got {describe(x)}")
    if value_checks_enabled() and x.numel():
        lo, hi = torch.aminmax(x.detach())
        if (
            not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi)))
            or lo < -1e-3
            or hi > 1 + 1e-3
        ):
            raise ValueError(
                f"{name}: expected values in [0, 1] (RGB scaled by 1/255), got values in "
                f"[{float(lo):.4g}, {float(hi):.4g}]"
            )
    return x


def estimate_flow(
    frames: Tensor,
    reference: Tensor,
    method: str | Callable[[Tensor, Tensor], Tensor] = "dis",
    *,
    weights: str | os.PathLike[str] | None = None,
) -> Tensor:
    """Backward optical flow of ``frames`` into ``reference`` (dastc's convention).

    ``flow[n, :, y, x] = (dx, dy)`` in pixels says that pixel ``(y, x)`` of
    ``frames[n]`` shows the scene point at ``(y + dy, x + dx)`` of
    ``reference[n]``, so :func:`dastc.flow.warp` ``(reference, flow)`` reproduces
    ``frames``: for a clip, ``estimate_flow(clip[1:], clip[:-1])`` is the
    ``flow_prev[1:]`` of :class:`~dastc.data.ClipItem` (and what the public
    ``*_int16_x10.npy`` files hold).

    Args:
        frames: float ``(N, 3, H, W)`` or ``(3, H, W)``, RGB in ``[0, 1]``: the
            current frames.
        reference: float, the shape of ``frames`` (or ``(1, 3, H, W)`` / ``(3,
            H, W)``, used for every frame): the reference (previous) frames.
        method: ``"dis"`` (OpenCV DIS, medium preset, on grayscale uint8; CPU),
            ``"raft"`` / ``"raft_large"`` / ``"raft_small"`` (torchvision RAFT,
            with ``weights``; runs on the frames' device), or a callable
            ``(frames (N, 3, H, W), reference (N, 3, H, W)) -> (N, 2, H, W)``
            returning flow in this convention.
        weights: the local RAFT state-dict file (RAFT only; nothing is downloaded).

    Returns:
        float32 ``(N, 2, H, W)`` (``(2, H, W)`` for a ``(3, H, W)`` ``frames``) on
        ``frames``' device.

    Raises:
        TypeError: ``frames`` / ``reference`` not floating point tensors.
        ValueError: bad shapes, values outside ``[0, 1]``, an unknown ``method``,
            ``weights`` given to a backend without weights or missing for RAFT,
            or a callable returning the wrong shape.
        ImportError: OpenCV missing (``pip install "dastc[flow]"``) for
            ``"dis"``, or torchvision missing for RAFT.

    Examples:
        >>> x = torch.rand(1, 3, 32, 48)
        >>> ref = torch.roll(x, 2, dims=-1)  # the scene moved 2 px left from ref to x
        >>> flow = estimate_flow(x, ref)
        >>> flow.shape, flow.dtype
        (torch.Size([1, 2, 32, 48]), torch.float32)
    """
    frames_ = _check_image(frames, "frames")
    reference_ = _check_image(reference, "reference")
    unbatched = frames_.dim() == 3
    cur = frames_.unsqueeze(0) if unbatched else frames_
    ref = reference_.unsqueeze(0) if reference_.dim() == 3 else reference_
    if ref.shape[-2:] != cur.shape[-2:] or ref.shape[0] not in (1, cur.shape[0]):
        raise ValueError(
            f"reference: expected the shape of frames {tuple(frames_.shape)} (or one "
            f"frame (3, H, W) for all), got {describe(reference_)}"
        )
    if ref.device != cur.device:
        raise ValueError(
            f"reference: expected a tensor on {cur.device} (the device of frames), "
            f"got {describe(reference_)}"
        )
    ref = ref.expand_as(cur)
    n, _, h, w = cur.shape

    fn: _FlowFn
    if callable(method):
        if weights is not None:
            raise ValueError("weights: only used by the RAFT methods, not by a callable method")
        fn = method
    elif isinstance(method, str) and method == "dis":
        if weights is not None:
            raise ValueError(
                f"weights: only used by the RAFT methods, not by 'dis'; got {weights!r}"
            )
        fn = _dis
    elif isinstance(method, str) and method in METHODS:
        model = _raft_model(method, weights, cur.device)

        def fn(a: Tensor, b: Tensor) -> Tensor:
            return _raft(model, a, b)
    else:
        raise ValueError(f"method: expected one of {list(METHODS)} or a callable, got {method!r}")

    if n == 0:
        out = torch.zeros(0, 2, h, w)
    else:
        out = fn(cur, ref)
        if not isinstance(out, Tensor) or tuple(out.shape) != (n, 2, h, w):
            raise ValueError(
                f"method: expected the flow function to return a (N, 2, H, W) = "
                f"{(n, 2, h, w)} tensor, got {describe(out)}"
            )
        if not out.is_floating_point():
            raise ValueError(f"method: expected a floating point flow, got {describe(out)}")
    out = out.to(device=cur.device, dtype=torch.float32)
    return out[0] if unbatched else out
