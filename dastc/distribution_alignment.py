"""DistributionAlignment: a teacher's class distribution pulled to the source's (ReMixMatch)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dastc._dist import SyncedClassStats
from dastc.functional.distribution_alignment import align_distribution, class_distribution_stats

__all__ = ["DistributionAlignment"]


class DistributionAlignment(SyncedClassStats):
    """Running source and teacher class distributions, and logits re-weighted by their ratio.

    Holds ``source_prior`` and ``target_prior`` ``(K,)`` (uniform at first). Each
    call folds in the batch's source class frequencies (from the source labels)
    and the teacher's mean predicted distribution on the target, with momentum
    ``m``, and returns :func:`~dastc.functional.align_distribution` of the logits:

    .. math::

        \\tilde p_k \\propto p_k \\, \\frac{s_k + \\epsilon}{t_k + \\epsilon}

    A batch without any labelled source pixel keeps ``source_prior``. Under
    ``torch.distributed`` (``sync=True``) the sums are summed over the processes
    first, so every process keeps the same priors.

    Args:
        num_classes: ``K``.
        momentum: ``m`` in [0, 1].
        process_group: the group to sum over (default: the world).
        sync: sum over processes when a process group is initialised.

    Example:
        >>> da = DistributionAlignment(3)
        >>> da(torch.randn(2, 2, 3, 8, 8), torch.zeros(2, 2, 8, 8, dtype=torch.long)).shape
        torch.Size([2, 2, 3, 8, 8])
        >>> bool(da.source_prior[0] > da.source_prior[1])
        True
    """

    source_prior: Tensor
    target_prior: Tensor

    def __init__(
        self,
        num_classes: int,
        momentum: float = 0.99,
        *,
        process_group: Any = None,
        sync: bool = True,
    ) -> None:
        super().__init__(num_classes, momentum, process_group, sync)
        self.register_buffer("source_prior", torch.full((self.num_classes,), 1.0 / num_classes))
        self.register_buffer("target_prior", torch.full((self.num_classes,), 1.0 / num_classes))

    @torch.no_grad()
    def forward(self, logits: Tensor, source_labels: Tensor) -> Tensor:
        """Update both priors and return the aligned logits.

        Args:
            logits: the teacher's target logits, float ``(B, T, K, H, W)`` or
                ``(B, K, H, W)``, ``K = num_classes``.
            source_labels: long ``(B', T', H', W')`` or ``(B', H', W')``; values
                outside ``[0, K)`` do not count.

        Returns:
            The aligned logits, the shape of ``logits`` (no grad).

        Raises:
            TypeError: wrong dtypes.
            ValueError: wrong ranks, or ``K != num_classes``.
        """
        K = self.num_classes
        if logits.dim() in (4, 5) and logits.shape[-3] != K:
            raise ValueError(
                f"logits: expected {K} classes (num_classes) at dim -3, "
                f"got shape {tuple(logits.shape)}"
            )
        stats = self._sum(class_distribution_stats(logits, source_labels))
        cnt, mass, npix = stats[:K], stats[K : 2 * K], stats[2 * K]
        total = cnt.sum()
        src = torch.where(total > 0, cnt / total.clamp(min=1), self.source_prior)
        m = self.momentum
        self.source_prior.lerp_(src, 1 - m)
        self.target_prior.lerp_(mass / npix, 1 - m)
        return align_distribution(logits, self.source_prior, self.target_prior)
