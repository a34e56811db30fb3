"""Which classes vanished from pseudo-labels: shares against a source prior, no target labels."""

from __future__ import annotations

import torch
from torch import Tensor

from dastc._validate import check_float, check_same_device, check_unit_interval

__all__ = ["vanished_classes"]


def vanished_classes(
    pseudo_share: Tensor, prior: Tensor, floor: float = 0.1, min_prior: float = 0.005
) -> Tensor:
    """The classes that the pseudo-labels give far less often than the source does.

    Class ``k`` has vanished when the source gives it a real share of the pixels
    (``prior[k] >= min_prior``) and the pseudo-labels less than ``floor`` of it:

    .. math::

        v_k = [\\pi_k \\ge \\pi_{\\min}] \\wedge [q_k < f \\, \\pi_k]

    where ``q`` is ``pseudo_share`` and ``π`` is ``prior``. A self-training run
    whose teacher has stopped predicting a class teaches the student to forget
    it; this is the label-free check of that. Shares need not sum to 1 (they are
    compared as given). No host sync.

    Args:
        pseudo_share: float ``(K,)``, each class's share of the pseudo-labelled
            target pixels (e.g. ``bincount(label) / label.numel()``).
        prior: float ``(K,)``, each class's share of the labelled source pixels.
        floor: ``f`` in [0, 1]: the fraction of its prior below which a class
            counts as vanished.
        min_prior: ``π_min`` in [0, 1]: classes rarer than this at the source
            are never reported (their share is too noisy to judge).

    Returns:
        bool ``(K,)``: True for each vanished class.

    Raises:
        TypeError, ValueError: not float ``(K,)`` tensors of the same length and
            device, ``floor`` or ``min_prior`` outside [0, 1].

    Example:
        >>> import torch
        >>> prior = torch.tensor([0.5, 0.3, 0.2])
        >>> vanished_classes(torch.tensor([0.78, 0.2, 0.02]), prior, floor=0.2).tolist()
        [False, False, True]
    """
    check_float(pseudo_share, "pseudo_share", ["K"])
    check_float(prior, "prior", ["K"])
    if pseudo_share.shape != prior.shape:
        raise ValueError(
            f"pseudo_share: expected the shape of prior {tuple(prior.shape)} (K,), "
            f"got {tuple(pseudo_share.shape)}"
        )
    check_same_device(("pseudo_share", pseudo_share), ("prior", prior))
    f = check_unit_interval(floor, "floor")
    m = check_unit_interval(min_prior, "min_prior")
    dtype = torch.promote_types(pseudo_share.dtype, prior.dtype)
    q, p = pseudo_share.to(dtype), prior.to(dtype)
    return (p >= m) & (q < f * p)
