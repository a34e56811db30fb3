"""SpatioTemporalPrototypeAggregator: class prototypes over batch, time and space, with memory.

A thin stateful wrapper over :func:`dastc.functional.class_sums` and
:func:`dastc.functional.prototypes_from_sums` that (1) sums the per-class
statistics over the process group under ``torch.distributed`` before dividing
and (2) keeps an EMA memory bank of the prototypes.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dastc._validate import (
    check_bool,
    check_float,
    check_ignore_index,
    check_num_classes,
    check_unit_interval,
    describe,
)
from dastc.functional.frame_prototypes import frame_mean_prototypes
from dastc.functional.prototypes import Prototypes, class_sums, prototypes_from_sums
from dastc.typing import Features, LabelMap, Weights

__all__ = ["SpatioTemporalPrototypeAggregator"]


class _AllReduceSum(torch.autograd.Function):
    """Differentiable ``all_reduce(SUM)``: the backward all-reduces the gradient too.

    Every process computes its loss from the global sums, so the gradient of
    the local sums is the sum of every process's gradient of the global sums.
    """

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any) -> Tensor:
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        out = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=ctx.group)
        return out, None


def _all_reduce_sum(tensor: Tensor, group: Any) -> Tensor:
    out: Tensor = _AllReduceSum.apply(tensor, group)  # type: ignore[no-untyped-call]
    return out


class SpatioTemporalPrototypeAggregator(nn.Module):
    """Per-class prototypes aggregated over batch, time and space, with an EMA memory bank.

    .. math::

        p_k = \\frac{\\sum_{b,t,i} w_{bti} [y_{bti} = k] f_{bti}}
                    {\\sum_{b,t,i} w_{bti} [y_{bti} = k]}, \\qquad
        m_k \\leftarrow \\mu\\, m_k + (1 - \\mu)\\, p_k

    ``forward`` returns the batch's :class:`~dastc.Prototypes` (differentiable
    w.r.t. the features); :meth:`update` folds them into the memory bank
    (``memory[k] = p_k`` the first time class ``k`` is seen, EMA afterwards,
    classes absent from the batch untouched); :meth:`memory_prototypes` gives
    the memory as :class:`~dastc.Prototypes`, e.g. as the stable source side of
    :class:`~dastc.IntraInterClassAlignmentLoss`.

    Distributed: when ``torch.distributed`` is initialised with more than one
    process and ``sync=True``, the per-class sums and weight totals are summed
    over ``process_group`` (default: the world) before dividing, so every
    process gets the prototypes of the whole global batch. The sum is
    differentiable: its backward sums the gradient over the processes too, so a
    loss computed (identically) on every process gives each process ``N`` times
    the full-batch gradient of its own features, and DDP's gradient averaging
    then yields exactly the full-batch gradient. Every process of the group
    must call ``forward`` (and ``backward``) the same number of times.

    Args:
        num_classes: ``K``.
        feat_dim: ``C``, the channel count of the features.
        ignore_index: label value that never counts.
        momentum: EMA momentum ``μ`` in ``[0, 1]`` of the memory bank.
        process_group: the group to sum over; ``None``: the default (world) group.
        sync: sum over processes when distributed; ``False`` keeps prototypes local.
        pooling: ``"clip"`` (default): one weighted mean over every pixel of the
            batch, as above; ``"frame_mean"``: one prototype set per frame, zero
            rows for classes absent from a frame, averaged over the frames with
            equal weights (:func:`~dastc.functional.frame_mean_prototypes`; the
            public DA-STC code's 0.5 / 0.5 average of two frame predictions).
        min_pixels: ``"frame_mean"`` only: a class with fewer pixels (at feature
            resolution) in a frame gets a zero row there (the public code: 5).

    Shape:
        - features: ``(B, T, C, h, w)`` or ``(B, C, h, w)`` float.
        - labels: ``(B, T, H, W)`` or ``(B, H, W)`` long (rank matching features).
        - weights: the shape of ``labels``, float in ``[0, 1]``.
        - output: ``Prototypes(vectors (K, C), counts (K,), present (K,) bool)``.

    Buffers (in ``state_dict``):
        memory: ``(K, C)`` float32 memory bank (zeros until a class is seen).
        initialized: ``(K,)`` bool, whether each class has been seen.

    Examples:
        >>> agg = SpatioTemporalPrototypeAggregator(num_classes=5, feat_dim=16)
        >>> f = torch.randn(2, 3, 16, 8, 8)
        >>> y = torch.randint(0, 5, (2, 3, 32, 32))
        >>> p = agg(f, y)
        >>> agg.update(p)
        >>> p.vectors.shape, agg.memory.shape, agg.memory_prototypes().present.shape
        (torch.Size([5, 16]), torch.Size([5, 16]), torch.Size([5]))
    """

    memory: Tensor
    initialized: Tensor

    def __init__(
        self,
        num_classes: int,
        feat_dim: int,
        ignore_index: int = 255,
        momentum: float = 0.99,
        *,
        process_group: Any = None,
        sync: bool = True,
        pooling: Literal["clip", "frame_mean"] = "clip",
        min_pixels: int = 1,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.feat_dim = check_num_classes(feat_dim, "feat_dim")
        self.ignore_index = check_ignore_index(ignore_index, num_classes)
        self.momentum = check_unit_interval(momentum, "momentum")
        self.process_group = process_group
        self.sync = bool(sync)
        if pooling not in ("clip", "frame_mean"):
            raise ValueError(f"pooling: expected 'clip' or 'frame_mean', got {pooling!r}")
        self.pooling: Literal["clip", "frame_mean"] = pooling
        if isinstance(min_pixels, bool) or not isinstance(min_pixels, int) or min_pixels < 1:
            raise ValueError(f"min_pixels: expected an int >= 1, got {min_pixels!r}")
        if min_pixels > 1 and pooling == "clip":
            raise ValueError(
                f"min_pixels: {min_pixels} needs pooling='frame_mean' (the clip pooling "
                "counts every pixel of the batch), got pooling='clip'"
            )
        self.min_pixels = min_pixels
        self.register_buffer("memory", torch.zeros(num_classes, feat_dim))
        self.register_buffer("initialized", torch.zeros(num_classes, dtype=torch.bool))

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, feat_dim={self.feat_dim}, "
            f"ignore_index={self.ignore_index}, momentum={self.momentum}, sync={self.sync}"
            + (
                ""
                if self.pooling == "clip"
                else f", pooling='frame_mean', min_pixels={self.min_pixels}"
            )
        )

    def _distributed(self) -> bool:
        if not (self.sync and dist.is_available() and dist.is_initialized()):
            return False
        return bool(dist.get_world_size(self.process_group) > 1)

    def forward(
        self, features: Features, labels: LabelMap, weights: Weights | None = None
    ) -> Prototypes:
        """Prototypes of the (global) batch; see the class docstring.

        Args:
            features: ``(B, T, C, h, w)`` or ``(B, C, h, w)`` float, ``C = feat_dim``.
            labels: ``(B, T, H, W)`` or ``(B, H, W)`` long, values in
                ``[0, num_classes)`` or ``ignore_index``; nearest-resized to ``(h, w)``.
            weights: optional per-pixel float weights, the shape of ``labels``.

        Returns:
            :class:`~dastc.Prototypes`, float32 (float64 for float64 features).

        Raises:
            TypeError: wrong dtypes.
            ValueError: wrong ranks or shapes, ``C != feat_dim``, labels out of range.
        """
        check_float(features, "features", ("B T C h w", "B C h w"))
        if features.shape[-3] != self.feat_dim:
            raise ValueError(
                f"features: expected {self.feat_dim} channels (feat_dim) at dim "
                f"{features.dim() - 3}, got {describe(features)}"
            )
        if self.pooling == "frame_mean":
            return self._frame_mean(features, labels, weights)
        sums, counts = class_sums(features, labels, self.num_classes, weights, self.ignore_index)
        if self._distributed():
            # One collective for both statistics: (K, C + 1).
            packed = torch.cat([sums, counts.unsqueeze(1).to(sums.dtype)], dim=1)
            packed = _all_reduce_sum(packed, self.process_group)
            sums, counts = packed[:, :-1], packed[:, -1]
        return prototypes_from_sums(sums, counts)

    def _frame_mean(self, features: Tensor, labels: Tensor, weights: Tensor | None) -> Prototypes:
        """``pooling="frame_mean"``: the mean over every process's frames when distributed."""
        p = frame_mean_prototypes(
            features, labels, self.num_classes, weights, self.ignore_index, self.min_pixels
        )
        if not self._distributed():
            return p
        frames = features.shape[0] * (features.shape[1] if features.dim() == 5 else 1)
        # One collective: (K, C + 2) = [sum of frame rows | frames with a prototype | frames].
        n = torch.full_like(p.counts, float(frames)).unsqueeze(1)
        packed = torch.cat([p.vectors * n, p.counts.unsqueeze(1), n], dim=1)
        packed = _all_reduce_sum(packed, self.process_group)
        counts = packed[:, -2]
        return Prototypes(packed[:, :-2] / packed[:, -1:], counts, counts > 0)

    @torch.no_grad()
    def update(self, protos: Prototypes) -> None:
        """Fold a batch's prototypes into the memory bank (no grad, no host sync).

        .. math::

            m_k \\leftarrow \\begin{cases}
                p_k & k \\text{ present, first time seen} \\\\
                \\mu\\, m_k + (1 - \\mu)\\, p_k & k \\text{ present, seen before} \\\\
                m_k & k \\text{ absent}
            \\end{cases}

        Args:
            protos: :class:`~dastc.Prototypes` with ``vectors (K, C)`` and
                ``present (K,)`` bool (``counts`` is not used).

        Raises:
            TypeError: ``protos.vectors`` not floating or ``protos.present`` not bool.
            ValueError: shapes other than ``(num_classes, feat_dim)`` / ``(num_classes,)``.
        """
        vectors = check_float(protos.vectors, "protos.vectors", ("K C",))
        present = check_bool(protos.present, "protos.present", ("K",))
        if tuple(vectors.shape) != (self.num_classes, self.feat_dim):
            raise ValueError(
                f"protos.vectors: expected shape ({self.num_classes}, {self.feat_dim}), "
                f"got {describe(vectors)}"
            )
        if present.shape[0] != self.num_classes:
            raise ValueError(
                f"protos.present: expected shape ({self.num_classes},) bool, "
                f"got {describe(present)}"
            )
        if vectors.device != self.memory.device or present.device != self.memory.device:
            raise ValueError(
                f"protos: expected tensors on {self.memory.device} (the memory bank's device), "
                f"got vectors {describe(vectors)}, present {describe(present)}"
            )
        vec = vectors.detach().to(self.memory.dtype)
        ema = torch.lerp(vec, self.memory, self.momentum)  # m * memory + (1 - m) * vec
        new = torch.where(self.initialized.unsqueeze(1), ema, vec)
        self.memory.copy_(torch.where(present.unsqueeze(1), new, self.memory))
        self.initialized.logical_or_(present)

    def memory_prototypes(self) -> Prototypes:
        """The memory bank as :class:`~dastc.Prototypes` (a detached copy).

        ``present`` is ``initialized`` (classes seen at least once) and
        ``counts`` is ``initialized`` as float (1 seen, 0 never seen). Use it as
        the source side of :class:`~dastc.IntraInterClassAlignmentLoss` to align
        target prototypes with the EMA source prototypes, stable when a class
        is missing from the current source batch.

        Returns:
            ``Prototypes(memory.clone(), initialized.float(), initialized.clone())``.
        """
        return Prototypes(
            vectors=self.memory.clone(),
            counts=self.initialized.to(self.memory.dtype),
            present=self.initialized.clone(),
        )

    @torch.no_grad()
    def reset(self) -> None:
        """Empty the memory bank (zeros, nothing initialised)."""
        self.memory.zero_()
        self.initialized.zero_()
