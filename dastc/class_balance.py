"""ClassBalance: class-balanced pseudo-label scores with a running per-class confidence."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dastc._dist import SyncedClassStats
from dastc.functional.class_balance import class_balanced_scores, class_confidence_stats

__all__ = ["ClassBalance"]


class ClassBalance(SyncedClassStats):
    """Self-adaptive per-class thresholds for pseudo-labels (CBST-style), with running state.

    Holds ``confidence`` ``(K,)``: per class, a running mean (momentum ``m``) of
    the teacher's confidence on the pixels its argmax gives that class. Each
    call folds the batch's means in (classes absent from the batch keep their
    value) and returns :func:`~dastc.functional.class_balanced_scores`:

    .. math::

        c_k \\leftarrow m \\, c_k + (1 - m) \\, \\bar c_k, \\qquad
        s_k = \\log(p_k / c_k)

    Under ``torch.distributed`` (``sync=True``) the per-class sums are summed over
    the processes first, so every process keeps the same ``confidence``.

    Args:
        num_classes: ``K``.
        momentum: ``m`` in [0, 1].
        process_group: the group to sum over (default: the world).
        sync: sum over processes when a process group is initialised.

    Example:
        >>> cb = ClassBalance(4)
        >>> cb(torch.randn(2, 3, 4, 8, 8)).shape
        torch.Size([2, 3, 4, 8, 8])
        >>> bool((cb.confidence != 1).any())
        True
    """

    confidence: Tensor

    def __init__(
        self,
        num_classes: int,
        momentum: float = 0.99,
        *,
        process_group: Any = None,
        sync: bool = True,
    ) -> None:
        super().__init__(num_classes, momentum, process_group, sync)
        self.register_buffer("confidence", torch.ones(self.num_classes))

    @torch.no_grad()
    def forward(self, logits: Tensor) -> Tensor:
        """Update ``confidence`` from ``logits`` and return the class-balanced scores.

        Args:
            logits: float ``(B, T, K, H, W)`` or ``(B, K, H, W)``, ``K = num_classes``.

        Returns:
            float32 scores, the shape of ``logits`` (no grad).

        Raises:
            TypeError: ``logits`` is not a float tensor.
            ValueError: wrong rank, or ``K != num_classes``.
        """
        stats = class_confidence_stats(logits)
        if stats.shape[1] != self.num_classes:
            raise ValueError(
                f"logits: expected {self.num_classes} classes (num_classes) at dim -3, "
                f"got shape {tuple(logits.shape)}"
            )
        sums, cnt = self._sum(stats)
        mean = torch.where(cnt > 0, sums / cnt.clamp(min=1), self.confidence)
        self.confidence.lerp_(mean, 1 - self.momentum)
        return class_balanced_scores(logits, self.confidence)
