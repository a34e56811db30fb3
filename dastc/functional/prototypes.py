"""Class prototypes: weighted per-class feature means over batch, time and space.

A prototype is the weighted mean of the deep features of every pixel of every
frame that carries a class label,

.. math::

    p_k = \\frac{\\sum_{b,t,i} w_{bti} [y_{bti} = k] f_{bti}}{\\sum_{b,t,i} w_{bti} [y_{bti} = k]},

computed in one fused pass: the labels (and weights) at feature resolution are
turned into a weighted one-hot map ``(N, K, hw)`` and contracted with the
features in their native layout ``(N, C, hw)`` by one batched matrix product.
The backward gathers each pixel's row of the ``(K, C)`` output gradient (times
its weight) instead of running another thin matrix product. Nothing of size
``pixels × K × C`` is built, there is no loop over classes, clips or frames,
and nothing reads back to the host.

The adaptive weights (pixel confidence × per-frame reliability) are built from
logits with :func:`confidence_weights`, :func:`frame_reliability` and
:func:`adaptive_weights`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from dastc import _opaque
from dastc._validate import (
    check_finite,
    check_float,
    check_ignore_index,
    check_labels,
    check_nonempty,
    check_num_classes,
    check_same_device,
    check_same_shape,
    check_tensor,
    compute_dtype,
    describe,
    upcast,
    value_checks_enabled,
)
from dastc.typing import (
    Features,
    LabelMap,
    Logits,
    PrototypeCounts,
    PrototypePresent,
    PrototypeVectors,
    Weights,
)

__all__ = [
    "Prototypes",
    "adaptive_weights",
    "class_prototypes",
    "class_sums",
    "confidence_weights",
    "frame_reliability",
    "prototypes_from_sums",
]

_FEATURE_LAYOUTS = ("B T C h w", "B C h w")
_LABEL_LAYOUTS = ("B T H W", "B H W")
_LOGIT_LAYOUTS = ("B T K H W", "B K H W")


class Prototypes(NamedTuple):
    """Per-class prototypes of one domain.

    Attributes:
        vectors: ``(K, C)`` float, the weighted mean feature of each class;
            ``0`` where the class is absent.
        counts: ``(K,)`` float, the total weight of each class's pixels.
        present: ``(K,)`` bool, ``counts > 0``.

    Examples:
        >>> p = Prototypes(vectors=torch.zeros(3, 8), counts=torch.zeros(3),
        ...                present=torch.zeros(3, dtype=torch.bool))
        >>> p.vectors.shape
        torch.Size([3, 8])
    """

    vectors: PrototypeVectors
    counts: PrototypeCounts
    present: PrototypePresent


def _nearest_index(size_in: int, size_out: int, device: torch.device) -> Tensor:
    """Source indices that ``F.interpolate(mode="nearest")`` picks along one axis."""
    if size_in == size_out:
        return torch.arange(size_out, device=device)
    grid = torch.arange(size_in, device=device, dtype=torch.float32).view(1, 1, size_in)
    return F.interpolate(grid, size=size_out, mode="nearest").view(size_out).long()


def _to_feature_grid(x: Tensor, h: int, w: int) -> Tensor:
    """Nearest-neighbour resize of ``(N, H, W)`` to ``(N, h, w)``.

    Gathers the pixels ``F.interpolate(x, size=(h, w), mode="nearest")`` would
    pick, so it works for ``torch.long`` labels (which ``interpolate`` rejects)
    without a float round trip, and reads only ``h * w`` values per frame.
    """
    height, width = x.shape[-2:]
    if (height, width) == (h, w):
        return x
    rows = _nearest_index(height, h, x.device)
    cols = _nearest_index(width, w, x.device)
    return x[:, rows.view(h, 1), cols.view(1, w)]


def _check_inputs(
    features: Tensor,
    labels: Tensor,
    weights: Tensor | None,
    num_classes: int,
    ignore_index: int,
) -> bool:
    """Validate the arguments of :func:`class_sums`; return whether the input is a clip."""
    check_float(features, "features", _FEATURE_LAYOUTS)
    check_tensor(labels, "labels", _LABEL_LAYOUTS, "long")
    check_num_classes(num_classes)
    check_ignore_index(ignore_index, num_classes)
    is_clip = features.dim() == 5
    if labels.dim() != features.dim() - 1:
        expected = "(B, T, H, W)" if is_clip else "(B, H, W)"
        raise ValueError(
            f"labels: expected shape {expected} long to match features "
            f"{tuple(features.shape)}, got {describe(labels)}"
        )
    lead = 2 if is_clip else 1
    if tuple(labels.shape[:lead]) != tuple(features.shape[:lead]):
        what = "(B, T)" if is_clip else "(B,)"
        raise ValueError(
            f"labels: expected {what} = {tuple(features.shape[:lead])} to match features "
            f"{tuple(features.shape)}, got {describe(labels)}"
        )
    if weights is not None:
        check_float(weights, "weights", _LABEL_LAYOUTS)
        check_same_shape(labels, "labels", weights, "weights")
    check_same_device(("features", features), ("labels", labels), ("weights", weights))
    # labels and weights are checked by _per_frame, at feature resolution: only the
    # pixels the op samples are read (a full-resolution int64 label map costs more to
    # read than the op itself); features by _refuse_nonfinite_features, on the result
    return is_clip


def _refuse_nonfinite_features(result: Tensor, features: Tensor) -> None:
    """Raise the finite check's ``ValueError`` for ``features`` when NaN or inf reached
    ``result`` (the op's small output), instead of reading every feature up front."""
    if value_checks_enabled() and not bool(torch.isfinite(result).all()):
        check_finite(features, "features")


def class_sums(
    features: Features,
    labels: LabelMap,
    num_classes: int,
    weights: Weights | None = None,
    ignore_index: int = 255,
) -> tuple[Tensor, Tensor]:
    """Weighted per-class feature sums and weight totals (the prototypes' sufficient statistics).

    .. math::

        S_k = \\sum_{b,t,i} w_{bti} [y_{bti} = k] f_{bti}, \\qquad
        n_k = \\sum_{b,t,i} w_{bti} [y_{bti} = k]

    Labels and weights are brought to feature resolution by nearest-neighbour
    sampling (the pixels ``F.interpolate(mode="nearest")`` picks). Pixels equal
    to ``ignore_index`` never count. Sums add up over processes and batches, so
    reduce them (``all_reduce``) before :func:`prototypes_from_sums`.

    Args:
        features: ``(B, T, C, h, w)`` or ``(B, C, h, w)`` float deep features.
        labels: ``(B, T, H, W)`` or ``(B, H, W)`` long, the rank matching
            ``features``, values in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: ``K``.
        weights: optional ``(B, T, H, W)`` or ``(B, H, W)`` float per-pixel
            weights, the shape of ``labels``; ``None`` means all ones.
        ignore_index: label value that never counts.

    Returns:
        ``(sums, counts)``: ``(K, C)`` and ``(K,)``, float32 (float64 for
        float64 features), accumulated in float32 also under autocast;
        differentiable w.r.t. ``features`` and ``weights``.

    Raises:
        TypeError: ``features``/``weights`` not floating, ``labels`` not long.
        ValueError: wrong ranks, ``labels`` not matching ``features`` in
            ``(B, T)``, ``weights`` not the shape of ``labels``, labels out of
            range or weights not finite at the pixels the resize samples (the
            others never reach the result and are not read), NaN or inf in
            ``features`` that reach the sums (checked on the sums), devices differ.

    Examples:
        >>> f = torch.randn(2, 3, 16, 8, 8)
        >>> y = torch.randint(0, 5, (2, 3, 32, 32))
        >>> sums, counts = class_sums(f, y, num_classes=5)
        >>> sums.shape, counts.shape
        (torch.Size([5, 16]), torch.Size([5]))
    """
    _check_inputs(features, labels, weights, num_classes, ignore_index)
    with torch.autocast(features.device.type, enabled=False):
        feats, idx, wt = _per_frame(features, labels, weights, num_classes, ignore_index)
        sums, counts = _class_sums_core(feats, idx, wt, num_classes)
    _refuse_nonfinite_features(sums, features)
    return sums, counts


def _per_frame(
    features: Tensor, labels: Tensor, weights: Tensor | None, num_classes: int, ignore_index: int
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Inputs checked by :func:`_check_inputs` as ``(N, C, hw)`` features in the compute
    dtype, ``(N, hw)`` class indices at feature resolution (``K`` for ignored pixels and
    any value outside ``[0, K)``) and ``(N, hw)`` weights (or None), over the ``N = B·T``
    frames. The value checks of labels and weights read the sampled pixels only."""
    channels, h, w = features.shape[-3:]
    frames = features.shape[0] * (features.shape[1] if features.dim() == 5 else 1)
    dtype = compute_dtype(features.dtype)
    feats = features.reshape(frames, channels, h * w).to(dtype)
    lab = _to_feature_grid(labels.reshape(frames, *labels.shape[-2:]), h, w)
    check_labels(lab, "labels", num_classes, ignore_index)
    lab = lab.reshape(frames, h * w)
    idx = torch.where((lab >= 0) & (lab < num_classes), lab, num_classes)
    wt = None
    if weights is not None:
        wt = _to_feature_grid(weights.reshape(frames, *weights.shape[-2:]), h, w)
        check_finite(wt, "weights")
        wt = wt.reshape(frames, h * w).to(dtype)
    return feats, idx, wt


class _ClassSums(torch.autograd.Function):
    """Fused per-class sums ``(K, C)`` and weight totals ``(K,)`` with a gather backward.

    Inputs (validated, at feature resolution, in the compute dtype): ``feats``
    ``(N, C, hw)``, ``index`` ``(N, hw)`` long in ``[0, K]`` (``K``: not
    counted), ``weights`` ``(N, hw)`` or ``None`` (all ones).

    Forward: a weighted one-hot ``(N, K + 1, hw)`` (small: ``(K + 1) / C`` of
    the features) whose first ``K`` rows are contracted with the features by
    one batched GEMM ``(N, K, hw) @ (N, hw, C)``, both operands contiguous
    along ``hw`` (faster than ``(N, C, hw) @ (N, hw, K)`` for a thin ``K``).

    Backward, without building anything of size ``pixels × K``:

    - ``grad_feats[n, :, i] = w[n, i] * grad_sums[index[n, i]]`` (a gather of
      the ``(C, K + 1)`` gradient table, zero row ``K`` for ignored pixels);
    - ``grad_weights[n, i] = <grad_sums[index[n, i]], f[n, :, i]>
      + grad_counts[index[n, i]]`` (one thin GEMM ``(K + 1, C) @ (C, hw)`` per
      frame, then a gather).

    The backward is written with differentiable ops, so double backward works.
    """

    @staticmethod
    def forward(
        ctx: Any, feats: Tensor, index: Tensor, weights: Tensor | None, num_classes: int
    ) -> tuple[Tensor, Tensor]:
        frames, _, hw = feats.shape
        if weights is None:
            src = torch.ones((), dtype=feats.dtype, device=feats.device).expand(frames, 1, hw)
        else:
            src = weights.unsqueeze(1)
        onehot = feats.new_zeros(frames, num_classes + 1, hw).scatter_(1, index.unsqueeze(1), src)
        sums = torch.bmm(onehot[:, :num_classes], feats.transpose(1, 2)).sum(0)
        counts = onehot[:, :num_classes].sum(dim=(0, 2))
        weights_need_grad = weights is not None and bool(ctx.needs_input_grad[2])
        ctx.num_classes = num_classes
        ctx.save_for_backward(index, weights, feats if weights_need_grad else None)
        return sums, counts

    @staticmethod
    def backward(
        ctx: Any, grad_sums: Tensor, grad_counts: Tensor
    ) -> tuple[Tensor | None, None, Tensor | None, None]:
        index, weights, feats = ctx.saved_tensors
        frames = index.shape[0]
        channels = grad_sums.shape[1]
        with torch.autocast(index.device.type, enabled=False):
            # Row K (ignored pixels) of every table is zero.
            rows = torch.cat([grad_sums, grad_sums.new_zeros(1, channels)])  # (K + 1, C)
            grad_feats = grad_weights = None
            if ctx.needs_input_grad[0]:
                # (N, C, hw); the eager gather also in compiled graphs
                grad_feats = _opaque.gather_class_rows(rows.t().contiguous(), index, weights)
            if feats is not None and ctx.needs_input_grad[2]:
                per_class = torch.bmm(rows.unsqueeze(0).expand(frames, -1, -1), feats)
                per_pixel = per_class.gather(1, index.unsqueeze(1)).squeeze(1)  # (N, hw)
                count_rows = torch.cat([grad_counts, grad_counts.new_zeros(1)])
                grad_weights = per_pixel + count_rows[index]
        return grad_feats, None, grad_weights, None


def _class_sums_core(
    feats: Tensor, index: Tensor, weights: Tensor | None, num_classes: int
) -> tuple[Tensor, Tensor]:
    out: tuple[Tensor, Tensor] = _ClassSums.apply(  # type: ignore[no-untyped-call]
        feats, index, weights, num_classes
    )
    return out


def prototypes_from_sums(sums: Tensor, counts: Tensor) -> Prototypes:
    """Turn per-class sums and weight totals into :class:`Prototypes`.

    .. math::

        p_k = S_k / n_k \\text{ where } n_k > 0, \\text{ else } 0

    Args:
        sums: ``(K, C)`` float per-class weighted feature sums.
        counts: ``(K,)`` float per-class weight totals.

    Returns:
        :class:`Prototypes` with ``present = counts > 0``; the division is
        guarded, so absent classes give zero vectors and zero gradients.

    Raises:
        TypeError: ``sums`` or ``counts`` not floating.
        ValueError: ``sums`` not ``(K, C)`` or ``counts`` not ``(K,)``.

    Examples:
        >>> p = prototypes_from_sums(torch.ones(4, 8), torch.tensor([2.0, 0.0, 1.0, 4.0]))
        >>> p.vectors.shape, p.present.tolist()
        (torch.Size([4, 8]), [True, False, True, True])
    """
    check_float(sums, "sums", ("K C",))
    check_float(counts, "counts", ("K",))
    if counts.shape[0] != sums.shape[0]:
        raise ValueError(
            f"counts: expected shape ({sums.shape[0]},) to match sums {tuple(sums.shape)}, "
            f"got {describe(counts)}"
        )
    check_same_device(("sums", sums), ("counts", counts))
    present = counts > 0
    safe = torch.where(present, counts, torch.ones_like(counts))
    vectors = torch.where(present.unsqueeze(1), sums / safe.unsqueeze(1), torch.zeros_like(sums))
    return Prototypes(vectors=vectors, counts=counts, present=present)


def class_prototypes(
    features: Features,
    labels: LabelMap,
    num_classes: int,
    weights: Weights | None = None,
    ignore_index: int = 255,
) -> Prototypes:
    """Weighted per-class mean features over batch, time and space, in one pass.

    .. math::

        p_k = \\frac{\\sum_{b,t,i} w_{bti} [y_{bti} = k] f_{bti}}
                    {\\sum_{b,t,i} w_{bti} [y_{bti} = k]}

    :func:`class_sums` followed by :func:`prototypes_from_sums`.

    Args:
        features: ``(B, T, C, h, w)`` or ``(B, C, h, w)`` float deep features.
        labels: ``(B, T, H, W)`` or ``(B, H, W)`` long, the rank matching
            ``features``, values in ``[0, num_classes)`` or ``ignore_index``;
            nearest-resized to ``(h, w)``.
        num_classes: ``K``.
        weights: optional per-pixel float weights, the shape of ``labels``
            (e.g. :func:`adaptive_weights`); ``None`` means all ones.
        ignore_index: label value that never counts.

    Returns:
        :class:`Prototypes` ``(vectors (K, C), counts (K,), present (K,))``,
        float32 (float64 for float64 features), differentiable w.r.t.
        ``features``; ``vectors[k] = 0`` where class ``k`` is absent.

    Raises:
        TypeError: ``features``/``weights`` not floating, ``labels`` not long.
        ValueError: wrong ranks or shapes, labels out of range (names the argument).

    Examples:
        >>> f = torch.randn(2, 16, 8, 8)
        >>> y = torch.randint(0, 5, (2, 32, 32))
        >>> p = class_prototypes(f, y, num_classes=5)
        >>> p.vectors.shape, p.counts.shape, p.present.dtype
        (torch.Size([5, 16]), torch.Size([5]), torch.bool)
    """
    sums, counts = class_sums(features, labels, num_classes, weights, ignore_index)
    return prototypes_from_sums(sums, counts)


def _check_logits(logits: object) -> Tensor:
    x = check_float(logits, "logits", _LOGIT_LAYOUTS)
    check_nonempty(x, "logits")
    return x


def confidence_weights(logits: Logits) -> Tensor:
    """Pixel confidence: the maximum softmax probability over classes.

    .. math::

        c_{i} = \\max_k \\operatorname{softmax}(z_i)_k
              = \\exp(\\max_k z_{ik} - \\operatorname{logsumexp}_k z_{ik})

    Args:
        logits: ``(B, T, K, H, W)`` or ``(B, K, H, W)`` float.

    Returns:
        ``(B, T, H, W)`` or ``(B, H, W)`` float32 (float64 for float64 input)
        in ``(0, 1]``. Differentiable; pass detached (teacher) logits for weights.

    Raises:
        TypeError: ``logits`` not floating.
        ValueError: ``logits`` of another rank.

    Examples:
        >>> confidence_weights(torch.randn(2, 3, 5, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    _check_logits(logits)
    dim = logits.dim() - 3
    with torch.autocast(logits.device.type, enabled=False):
        z = upcast(logits)
        return torch.exp(z.amax(dim) - torch.logsumexp(z, dim))


def frame_reliability(logits: Logits) -> Tensor:
    """Per-frame reliability: a softmax over frames of the negative mean prediction entropy.

    .. math::

        r_{bt} = \\operatorname{softmax}_t(-\\bar H_{bt}), \\qquad
        \\bar H_{bt} = \\frac{1}{HW} \\sum_i -\\sum_k p_{btik} \\log p_{btik}

    Frames the model is surer about get more weight; the weights of a clip sum
    to 1. Multiply them per frame into the pixel weights
    (:func:`adaptive_weights` does).

    Args:
        logits: ``(B, T, K, H, W)`` or ``(B, K, H, W)`` float.

    Returns:
        ``(B, T)`` float32 (float64 for float64 input); ``(B,)`` ones for an image.

    Raises:
        TypeError: ``logits`` not floating.
        ValueError: ``logits`` of another rank.

    Examples:
        >>> r = frame_reliability(torch.randn(2, 3, 5, 8, 8))
        >>> r.shape
        torch.Size([2, 3])
    """
    _check_logits(logits)
    is_clip = logits.dim() == 5
    with torch.autocast(logits.device.type, enabled=False):
        z = upcast(logits)
        if not is_clip:
            z = z.unsqueeze(1)
        logp = torch.log_softmax(z, dim=2)
        entropy = -(logp.exp() * logp).sum(dim=2).mean(dim=(-2, -1))
        rel = torch.softmax(-entropy, dim=1)
    return rel if is_clip else rel.squeeze(1)


def adaptive_weights(logits: Logits) -> Tensor:
    """Adaptive pixel weights: confidence × per-frame reliability.

    .. math::

        w_{bti} = c_{bti} \\cdot r_{bt}

    (:func:`confidence_weights` times :func:`frame_reliability`), at the
    resolution of ``logits``; pass them as ``weights`` to
    :func:`class_prototypes`.

    Args:
        logits: ``(B, T, K, H, W)`` or ``(B, K, H, W)`` float.

    Returns:
        ``(B, T, H, W)`` or ``(B, H, W)`` float32 (float64 for float64 input) in ``[0, 1]``.

    Raises:
        TypeError: ``logits`` not floating.
        ValueError: ``logits`` of another rank.

    Examples:
        >>> adaptive_weights(torch.randn(2, 3, 5, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    conf = confidence_weights(logits)
    rel = frame_reliability(logits)
    return conf * rel.view(*rel.shape, 1, 1)
