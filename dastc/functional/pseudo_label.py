"""Pseudo-labels with confidence and per-clip quality weights (DACS), and a temporal variant."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from dastc._validate import (
    check_dims,
    check_finite,
    check_float,
    check_ignore_index,
    check_nonempty,
    check_same_device,
    check_same_shape,
    check_unit_interval,
    compute_dtype,
    describe,
    upcast,
    value_checks_enabled,
)
from dastc.flow import flow_validity, warp

__all__ = ["PseudoLabel", "pseudo_label", "temporal_pseudo_label"]


class PseudoLabel(NamedTuple):
    """Pseudo-labels of a batch of images or clips.

    Attributes:
        label: long ``(B[, T], H, W)``, the predicted class (argmax over classes).
        confidence: float32 ``(B[, T], H, W)``, the max softmax probability.
        weight: float32 ``(B[, T], H, W)``, the per-clip quality weight (the fraction
            of the clip's pixels whose confidence exceeds the threshold), the same
            value at every pixel of a clip.
    """

    label: Tensor
    """long ``(B[, T], H, W)``: argmax over classes."""
    confidence: Tensor
    """float32 ``(B[, T], H, W)``: max softmax probability."""
    weight: Tensor
    """float32 ``(B[, T], H, W)``: per-clip fraction of pixels above the threshold."""


def _clip_weight(confidence: Tensor, threshold: float) -> Tensor:
    """Per clip (dim 0) fraction of pixels with confidence > threshold, broadcast back."""
    b = confidence.shape[0]
    frac = (confidence > threshold).flatten(1).to(confidence.dtype).mean(dim=1)
    shape = (b,) + (1,) * (confidence.dim() - 1)
    return frac.view(shape).expand(confidence.shape).contiguous()


def _check_logit_shape(logits: object, name: str) -> Tensor:
    logits = check_float(logits, name, ("B T K H W", "B K H W"))
    check_nonempty(logits, name)
    return logits


def _check_logits(logits: object, name: str) -> Tensor:
    logits = _check_logit_shape(logits, name)
    check_finite(logits, name)
    return logits


def pseudo_label(logits: Tensor, threshold: float = 0.968) -> PseudoLabel:
    """Pseudo-labels, confidences and per-clip quality weights from logits.

    .. math::

        \\mathrm{label} = \\arg\\max_k z_k, \\qquad
        \\mathrm{confidence} = \\max_k \\operatorname{softmax}(z)_k, \\qquad
        \\mathrm{weight}_b = \\frac{1}{|\\Omega_b|}
        \\sum_{(t, y, x) \\in \\Omega_b} [\\mathrm{confidence}_{b,t,y,x} > \\tau]

    where :math:`\\Omega_b` is every pixel of every frame of clip ``b`` (the DACS
    quality estimate, computed per clip). The weight is broadcast to every pixel
    of its clip. Everything is computed in float32 (float64 for float64 logits),
    also under autocast. On CPU without a gradient the work runs in blocks of
    pixels whose temporaries stay in cache (the same labels, and confidences
    equal to a few ulps).
    NaN or ``+inf`` logits are refused (they reach the confidence; the check reads
    the confidences and synchronises once); a ``-inf`` logit below a finite
    maximum is a probability of 0 and is accepted. Gradients flow to
    ``logits`` through ``confidence`` only; call it under ``torch.no_grad()`` (as
    :meth:`dastc.EMATeacher.pseudo_label` does) for targets.

    Args:
        logits: float ``(B, K, H, W)`` or ``(B, T, K, H, W)``, class scores.
        threshold: confidence threshold :math:`\\tau` in ``[0, 1]``.

    Returns:
        :class:`PseudoLabel` ``(label, confidence, weight)``, each ``(B, H, W)`` or
        ``(B, T, H, W)`` following the rank of ``logits``; ``label`` long,
        ``confidence`` and ``weight`` float32 (float64 for float64 logits).

    Raises:
        TypeError: ``logits`` is not floating point, or ``threshold`` not a number.
        ValueError: ``logits`` has the wrong rank or is empty, or ``threshold`` is
            outside ``[0, 1]``.

    Examples:
        >>> logits = torch.randn(2, 3, 5, 8, 8)
        >>> pl = pseudo_label(logits, threshold=0.9)
        >>> pl.label.shape, pl.label.dtype, pl.weight.shape
        (torch.Size([2, 3, 8, 8]), torch.int64, torch.Size([2, 3, 8, 8]))
    """
    logits = _check_logit_shape(logits, "logits")  # finite values: on the confidences
    threshold = check_unit_interval(threshold, "threshold")
    blocked = (
        logits.device.type == "cpu"
        and not (logits.requires_grad and torch.is_grad_enabled())
        and not torch.compiler.is_compiling()
    )
    if blocked:
        label, confidence = _label_confidence_blocked(logits)
    else:
        z = upcast(logits)
        top, label = z.max(dim=-3)
        confidence = torch.exp(top - torch.logsumexp(z, dim=-3))
    if value_checks_enabled() and not bool(torch.isfinite(confidence.sum())):
        check_finite(logits, "logits")  # NaN or +inf reached a confidence: name them
    return PseudoLabel(label, confidence, _clip_weight(confidence, threshold))


_BLOCK_ELEMENTS = 1 << 20
"""Logits per block of :func:`_label_confidence_blocked` (4 MB of float32: the
block's temporaries stay in cache)."""


def _label_confidence_blocked(logits: Tensor) -> tuple[Tensor, Tensor]:
    """``(argmax, max softmax)`` over dim -3 of CPU logits, in blocks of pixels.

    The steps of ``z.max(dim=-3)`` and ``exp(max - logsumexp(z))``, block by block:
    the same labels (first index on ties), and confidences equal to a few ulps
    (bitwise when one block holds the tensor; elsewhere a vectorised ``exp`` can
    round a block's last elements differently). The block count depends on the
    sizes only. The first index of the maximum is found by ``>=`` written to
    float (a comparison that writes ``bool`` is several times slower on CPU), times
    the reversed class index, and a max over classes.
    """
    k, h, w = logits.shape[-3:]
    z = logits.reshape(-1, k, h * w)
    n, p = z.shape[0], h * w
    dtype = compute_dtype(logits.dtype)
    label = torch.empty(n, p, dtype=torch.long)
    confidence = torch.empty(n, p, dtype=dtype)
    reverse = torch.arange(k - 1, -1, -1, dtype=dtype).view(k, 1)
    step = max(1, _BLOCK_ELEMENTS // (n * k))
    for start in range(0, p, step):
        c = z[:, :, start : start + step].to(dtype)
        top = c.amax(dim=1, keepdim=True)
        hit = torch.empty_like(c)
        torch.ge(c, top, out=hit)
        label[:, start : start + step] = (k - 1) - hit.mul_(reverse).amax(dim=1)
        shift = top.masked_fill(top.abs() == float("inf"), 0.0)
        lse = torch.sub(c, shift, out=hit).exp_().sum(dim=1).log_().add_(shift.squeeze(1))
        confidence[:, start : start + step] = torch.exp(top.squeeze(1) - lse)
    lead = logits.shape[:-3]
    return label.view(*lead, h, w), confidence.view(*lead, h, w)


def temporal_pseudo_label(
    prev_logits: Tensor,
    flow: Tensor,
    threshold: float = 0.968,
    current_logits: Tensor | None = None,
    *,
    ignore_index: int = 255,
) -> PseudoLabel:
    """Pseudo-labels for the current frame from an earlier frame's prediction, warped by flow.

    The earlier frame's class probabilities are backward-warped to the current
    frame (bilinear, :func:`dastc.functional.warp`), as in TPS:

    .. math::

        p = \\operatorname{warp}(\\operatorname{softmax}(z_{prev}), f), \\qquad
        p \\leftarrow \\tfrac12 \\big(p + \\operatorname{softmax}(z_{cur})\\big)
        \\text{ if current logits are given,}

    the plain mean of the two probability maps (equal weights). Then
    ``label = argmax p``, ``confidence = max p`` and ``weight`` is the per-clip
    fraction of pixels with ``confidence > threshold``, as in :func:`pseudo_label`.
    Pixels whose flow leaves the frame (:func:`dastc.functional.flow_validity`
    False) take the current prediction alone when ``current_logits`` is given;
    otherwise they get ``label = ignore_index`` and ``confidence = 0`` (and count
    as not confident in ``weight``).

    Args:
        prev_logits: float ``(B, K, H, W)`` or ``(B, T, K, H, W)``, logits of the
            earlier frame(s).
        flow: float ``(B[, T], 2, H, W)``, backward flow in pixels from the current
            frame to the earlier one (``B, T, H, W`` as ``prev_logits``).
        threshold: confidence threshold in ``[0, 1]``.
        current_logits: optional float logits of the current frame(s), the shape of
            ``prev_logits``.
        ignore_index: label given to out-of-frame pixels without a current
            prediction; an int outside ``[0, K)``.

    Returns:
        :class:`PseudoLabel`, each field ``(B[, T], H, W)``.

    Raises:
        TypeError: a tensor has the wrong dtype.
        ValueError: a rank or shape does not match, or ``threshold`` or
            ``ignore_index`` is out of range.

    Examples:
        >>> prev = torch.randn(2, 5, 8, 8)
        >>> flow = torch.zeros(2, 2, 8, 8)
        >>> temporal_pseudo_label(prev, flow, 0.9).label.shape
        torch.Size([2, 8, 8])
    """
    prev_logits = _check_logits(prev_logits, "prev_logits")
    flow = check_float(flow, "flow", ("B T 2 H W", "B 2 H W"))
    if flow.dim() != prev_logits.dim() or flow.shape[-3] != 2:
        expected = "(B, T, 2, H, W)" if prev_logits.dim() == 5 else "(B, 2, H, W)"
        raise ValueError(
            f"flow: expected shape {expected} to match prev_logits {tuple(prev_logits.shape)}, "
            f"got {describe(flow)}"
        )
    lead = prev_logits.dim() - 3
    dims = [*range(lead), lead + 1, lead + 2]
    check_dims(prev_logits, "prev_logits", dims, flow, "flow", dims, "(B[, T], H, W)")
    check_same_device(("prev_logits", prev_logits), ("flow", flow))
    if current_logits is not None:
        current_logits = check_float(current_logits, "current_logits", ("B T K H W", "B K H W"))
        check_same_shape(prev_logits, "prev_logits", current_logits, "current_logits")
        check_same_device(("prev_logits", prev_logits), ("current_logits", current_logits))
    threshold = check_unit_interval(threshold, "threshold")
    ignore_index = check_ignore_index(ignore_index, prev_logits.shape[-3])

    prob = warp(torch.softmax(upcast(prev_logits), dim=-3), flow)
    valid = flow_validity(flow).unsqueeze(-3)
    if current_logits is not None:
        cur = torch.softmax(upcast(current_logits), dim=-3).to(prob.dtype)
        prob = torch.where(valid, 0.5 * (prob + cur), cur)
        confidence, label = prob.max(dim=-3)
    else:
        confidence, label = prob.max(dim=-3)
        inside = valid.squeeze(-3)
        confidence = torch.where(inside, confidence, torch.zeros_like(confidence))
        label = torch.where(inside, label, torch.full_like(label, ignore_index))
    return PseudoLabel(label, confidence, _clip_weight(confidence, threshold))
