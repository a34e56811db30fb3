"""Distribution alignment of a teacher's predictions (as in ReMixMatch).

Classes the teacher under-predicts on the target, relative to their source
frequency (small objects whose appearance shifted), lose their share of the
argmax and vanish from the pseudo-labels. Multiplying the target class
probabilities by ``p_source(k) / p_teacher(k)`` and renormalising (adding the
log-ratio to the logits) gives them their share back.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dastc._rank import as_clip
from dastc._validate import check_float, check_long, describe

__all__ = ["align_distribution", "class_distribution_stats"]


def class_distribution_stats(logits: Tensor, source_labels: Tensor) -> Tensor:
    """The sums behind the two class distributions, packed for one all-reduce.

    Args:
        logits: the teacher's target logits, float ``(B, T, K, H, W)`` or ``(B, K, H, W)``.
        source_labels: long source labels ``(B', T', H', W')`` or ``(B', H', W')``
            (any size); values outside ``[0, K)`` (``ignore_index``) do not count.

    Returns:
        float32 ``(2K + 1,)``: the source pixel count per class, the target
        probability mass per class (softmax over classes, summed over pixels),
        and the number of target pixels.

    Raises:
        TypeError: wrong dtypes.
        ValueError: wrong ranks.

    Example:
        >>> class_distribution_stats(torch.randn(1, 2, 4, 8, 8),
        ...                          torch.zeros(1, 2, 8, 8, dtype=torch.long)).shape
        torch.Size([9])
    """
    x = as_clip(check_float(logits, "logits", ("B T K H W", "B K H W")), 5)
    check_long(source_labels, "source_labels", ("B T H W", "B H W"))
    K = x.shape[2]
    ys = source_labels
    lab = torch.where((ys >= 0) & (ys < K), ys, K).flatten()
    prob = x.float().softmax(dim=2)
    return torch.cat(
        [
            # source class counts (a scatter: bincount syncs the host on GPU)
            torch.zeros(K + 1, dtype=torch.long, device=lab.device)
            .scatter_add_(0, lab, torch.ones_like(lab))[:K]
            .float(),
            prob.sum(dim=(0, 1, 3, 4)),  # target probability mass
            prob.new_tensor([prob[:, :, 0].numel()]),  # target pixels
        ]
    )


def align_distribution(
    logits: Tensor, source_prior: Tensor, target_prior: Tensor, eps: float = 1e-6
) -> Tensor:
    """Logits whose softmax is ``p_k · (s_k + eps) / (t_k + eps)``, renormalised.

    Args:
        logits: float ``(B, T, K, H, W)`` or ``(B, K, H, W)``.
        source_prior: float ``(K,)``, the source class distribution.
        target_prior: float ``(K,)``, the teacher's mean predicted distribution.
        eps: added to both priors.

    Returns:
        ``logits + log((source_prior + eps) / (target_prior + eps))`` along the
        class axis (float32 for float32 inputs; the promoted dtype otherwise).

    Raises:
        TypeError: non-float inputs.
        ValueError: wrong ranks or prior shapes.

    Example:
        >>> z = align_distribution(torch.zeros(1, 2, 1, 1), torch.tensor([0.5, 0.5]),
        ...                        torch.tensor([0.9, 0.1]))
        >>> [round(v, 2) for v in z.softmax(1).flatten().tolist()]
        [0.1, 0.9]
    """
    check_float(logits, "logits", ("B T K H W", "B K H W"))
    K = logits.shape[-3]
    for name, prior in (("source_prior", source_prior), ("target_prior", target_prior)):
        check_float(prior, name, ("K",))
        if prior.shape[0] != K:
            raise ValueError(f"{name}: expected ({K},) (one per class), got {describe(prior)}")
    shape = [1] * logits.dim()
    shape[-3] = K
    ratio = (source_prior + eps) / (target_prior + eps)
    return logits + ratio.log().view(shape)
