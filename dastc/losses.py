"""Losses: category-aware prototype alignment across domains, weighted pseudo-label CE.

:class:`IntraInterClassAlignmentLoss` is a thin module over
:func:`dastc.functional.prototype_infonce` (default) and
:func:`dastc.functional.prototype_mmd`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from dastc._validate import check_positive
from dastc.functional.alignment import DEFAULT_MULTIPLIERS, prototype_infonce, prototype_mmd
from dastc.functional.cross_entropy import weighted_cross_entropy
from dastc.functional.prototypes import Prototypes

__all__ = ["IntraInterClassAlignmentLoss", "weighted_cross_entropy"]

_KINDS = ("infonce", "mmd")


class IntraInterClassAlignmentLoss(nn.Module):
    """Pull class ``k`` of the two domains together, push different classes apart.

    ``kind="infonce"`` (default) is the symmetric prototype InfoNCE of DA-STC:
    for every class ``k`` present in both domains,

    .. math::

        \\ell_k = -\\frac{1}{2}\\Big(\\log \\frac{e^{\\cos(t_k, s_k)/\\tau}}
            {\\sum_{j \\in \\mathcal{P}_s} e^{\\cos(t_k, s_j)/\\tau}}
          + \\log \\frac{e^{\\cos(s_k, t_k)/\\tau}}
            {\\sum_{j \\in \\mathcal{P}_t} e^{\\cos(s_k, t_j)/\\tau}}\\Big),

    averaged over those classes (:func:`dastc.functional.prototype_infonce`).
    ``kind="mmd"`` is the multi-kernel RBF MMD² between the two prototype sets
    (:func:`dastc.functional.prototype_mmd`), restricted to the classes present in
    both; with ``absent="zero"`` it is the public DA-STC code's ``mmd_rbf``, where
    every class counts and an absent one is a zero vector. Otherwise classes absent
    from either side contribute nothing, the loss is exactly 0 (with a graph) when
    no class is present in both, and it is never NaN.

    To align against the stable EMA source prototypes instead of the current
    source batch, pass ``agg.memory_prototypes()`` (see
    :meth:`dastc.SpatioTemporalPrototypeAggregator.memory_prototypes`) as ``src``.

    Args:
        temperature: InfoNCE temperature ``τ > 0``.
        kind: ``"infonce"`` or ``"mmd"``.
        symmetric: InfoNCE: average both directions (``True``) or use target →
            source only.
        multipliers: MMD kernel bandwidth multipliers.
        bandwidth: MMD fixed squared bandwidth, or ``None`` for the mean pairwise
            squared distance.
        eps: norm floor of the cosine (InfoNCE) / bandwidth floor (MMD).
        absent: MMD: ``"skip"`` (only classes present in both) or ``"zero"``
            (all classes, absent ones as zero vectors; the public code's rule).

    Shape:
        - src, tgt: :class:`~dastc.Prototypes` with ``vectors (K, C)`` and ``present (K,)``.
        - output: scalar.

    Examples:
        >>> import torch
        >>> from dastc.functional import class_prototypes
        >>> align = IntraInterClassAlignmentLoss(temperature=0.1)
        >>> f, y = torch.randn(2, 16, 8, 8), torch.randint(0, 5, (2, 32, 32))
        >>> src = class_prototypes(f, y, num_classes=5)
        >>> tgt = class_prototypes(f + 0.1, y, num_classes=5)
        >>> align(src, tgt).shape
        torch.Size([])
    """

    def __init__(
        self,
        temperature: float = 0.1,
        kind: str = "infonce",
        symmetric: bool = True,
        multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
        bandwidth: float | None = None,
        eps: float = 1e-8,
        absent: Literal["skip", "zero"] = "skip",
    ) -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"kind: expected one of {_KINDS}, got {kind!r}")
        if absent not in ("skip", "zero"):
            raise ValueError(f"absent: expected 'skip' or 'zero', got {absent!r}")
        self.absent: Literal["skip", "zero"] = absent
        self.temperature = check_positive(temperature, "temperature")
        self.kind = kind
        self.symmetric = bool(symmetric)
        self.multipliers = tuple(check_positive(m, "multipliers") for m in multipliers)
        if not self.multipliers:
            raise ValueError("multipliers: expected a non-empty sequence of floats > 0, got ()")
        self.bandwidth = None if bandwidth is None else check_positive(bandwidth, "bandwidth")
        self.eps = check_positive(eps, "eps")

    def extra_repr(self) -> str:
        if self.kind == "mmd":
            return (
                f"kind='mmd', multipliers={self.multipliers}, bandwidth={self.bandwidth}, "
                f"absent={self.absent!r}"
            )
        return f"kind='infonce', temperature={self.temperature}, symmetric={self.symmetric}"

    def forward(self, src: Prototypes, tgt: Prototypes) -> Tensor:
        """Alignment loss between source and target prototypes.

        Args:
            src: source :class:`~dastc.Prototypes` (batch or memory).
            tgt: target :class:`~dastc.Prototypes`, same ``K`` and ``C``.

        Returns:
            Scalar float32 (float64 for float64 prototypes).

        Raises:
            TypeError: vectors not floating, ``present`` not bool.
            ValueError: shapes differ between ``src`` and ``tgt``.
        """
        if self.kind == "mmd":
            return prototype_mmd(
                src.vectors,
                tgt.vectors,
                src.present,
                tgt.present,
                multipliers=self.multipliers,
                bandwidth=self.bandwidth,
                eps=self.eps,
                absent=self.absent,
            )
        return prototype_infonce(
            src.vectors,
            tgt.vectors,
            src.present,
            tgt.present,
            temperature=self.temperature,
            symmetric=self.symmetric,
            eps=self.eps,
        )
