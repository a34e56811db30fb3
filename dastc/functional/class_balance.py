"""Class-balanced pseudo-label scores: self-adaptive per-class confidence (as in CBST).

A teacher predicts large, easy classes (road, sky) with high confidence and
small objects with low confidence, so a plain argmax lets the easy classes
take over the pseudo-labels and small classes vanish. Dividing each class's
probability by a running mean of the confidence with which the teacher
predicts that class levels the field: the argmax of
``log(p_k / c_k)`` gives a class the teacher predicts with lower confidence
the pixels where it is relatively likely.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dastc._rank import as_clip
from dastc._validate import check_float, describe

__all__ = ["class_balanced_scores", "class_confidence_stats"]


def _class_dim_logits(logits: object, name: str = "logits") -> Tensor:
    x = check_float(logits, name, ("B T K H W", "B K H W"))
    return as_clip(x, 5)


def class_confidence_stats(logits: Tensor) -> Tensor:
    """Per class, the summed confidence and the number of pixels the argmax gives it.

    With ``p = softmax(logits)`` over classes, ``c = max_k p`` and ``y = argmax_k p``
    per pixel: ``stats[0, k] = sum(c over pixels with y = k)`` and
    ``stats[1, k] = #pixels with y = k``; ``stats[0] / stats[1]`` is the mean
    confidence of class ``k``. Sums, so that they add up over processes.

    Args:
        logits: float ``(B, T, K, H, W)`` or ``(B, K, H, W)`` (any float dtype;
            computed in float32).

    Returns:
        float32 ``(2, K)``.

    Raises:
        TypeError: ``logits`` is not a float tensor.
        ValueError: wrong rank.

    Example:
        >>> class_confidence_stats(torch.randn(2, 3, 5, 8, 8)).shape
        torch.Size([2, 5])
    """
    x = _class_dim_logits(logits)
    K = x.shape[2]
    conf, lab = x.float().softmax(dim=2).max(dim=2)
    lab, conf = lab.flatten(), conf.flatten()
    stats = torch.zeros(2, K, device=x.device)
    stats[0].scatter_add_(0, lab, conf)
    stats[1].scatter_add_(0, lab, torch.ones_like(conf))
    return stats


def class_balanced_scores(logits: Tensor, class_confidence: Tensor) -> Tensor:
    """Class-balanced scores ``log(p_k / c_k)``, ``p = softmax(logits)`` over classes.

    Their argmax is the class-balanced pseudo-label; pass them to
    :func:`~dastc.functional.pseudo_label` in place of the logits (its softmax
    renormalises, so the confidence becomes ``(p_k / c_k) / sum_j (p_j / c_j)``).

    Args:
        logits: float ``(B, T, K, H, W)`` or ``(B, K, H, W)``.
        class_confidence: float ``(K,)``, each class's (running) mean confidence,
            > 0 (e.g. :class:`~dastc.ClassBalance`'s ``confidence``).

    Returns:
        float32 scores, the shape of ``logits`` (``p`` clamped at 1e-12 before the log).

    Raises:
        TypeError: non-float inputs.
        ValueError: wrong ranks, ``class_confidence`` not ``(K,)``.

    Example:
        >>> s = class_balanced_scores(torch.tensor([0.55, 0.45]).log().view(1, 2, 1, 1),
        ...                           torch.tensor([0.99, 0.6]))
        >>> int(s.argmax(1))  # the low-confidence class wins the pixel
        1
    """
    x = _class_dim_logits(logits)
    K = x.shape[2]
    check_float(class_confidence, "class_confidence", ("K",))
    if class_confidence.shape[0] != K:
        raise ValueError(
            f"class_confidence: expected ({K},) (one per class of logits), "
            f"got {describe(class_confidence)}"
        )
    prob = logits.float().softmax(dim=logits.dim() - 3)
    shape = [1] * logits.dim()
    shape[-3] = K
    return (prob / class_confidence.float().view(shape)).clamp(min=1e-12).log()
