"""Category-aware alignment of two prototype sets (source and target domain).

:func:`prototype_infonce` pulls class ``k`` of one domain towards class ``k``
of the other and pushes it from the other classes (intra-class alignment and
inter-class separation). :func:`prototype_mmd` is the multi-kernel RBF MMD
between the two sets. Both count only the classes present in both domains,
are exactly 0 (with a graph) when there is none, never give NaN in values or
gradients, and read nothing back to the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from dastc._validate import (
    check_bool,
    check_float,
    check_positive,
    check_same_device,
    check_same_shape,
    compute_dtype,
    describe,
)
from dastc.typing import PrototypePresent, PrototypeVectors

__all__ = ["prototype_infonce", "prototype_mmd"]

DEFAULT_MULTIPLIERS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)


def _check_pair(
    src_vectors: Tensor,
    tgt_vectors: Tensor,
    src_present: Tensor | None,
    tgt_present: Tensor | None,
) -> tuple[Tensor, Tensor]:
    check_float(src_vectors, "src_vectors", ("K C",))
    check_float(tgt_vectors, "tgt_vectors", ("K C",))
    check_same_shape(src_vectors, "src_vectors", tgt_vectors, "tgt_vectors")
    num = src_vectors.shape[0]
    present = []
    for name, p in (("src_present", src_present), ("tgt_present", tgt_present)):
        if p is None:
            p = torch.ones(num, dtype=torch.bool, device=src_vectors.device)
        check_bool(p, name, ("K",))
        if p.shape[0] != num:
            raise ValueError(
                f"{name}: expected shape ({num},) bool to match src_vectors "
                f"{tuple(src_vectors.shape)}, got {describe(p)}"
            )
        present.append(p)
    check_same_device(
        ("src_vectors", src_vectors),
        ("tgt_vectors", tgt_vectors),
        ("src_present", present[0]),
        ("tgt_present", present[1]),
    )
    return present[0], present[1]


def _prepare(vectors: Tensor, present: Tensor, dtype: torch.dtype) -> Tensor:
    """Cast to the compute dtype and zero absent rows, so they cannot leak NaN/inf."""
    v = vectors.to(dtype)
    return torch.where(present.unsqueeze(1), v, torch.zeros_like(v))


def _normalize(x: Tensor, eps: float) -> Tensor:
    """``x / max(||x||, eps)`` row-wise: finite values and gradients for zero rows."""
    sq = x.pow(2).sum(dim=1, keepdim=True)
    return x * torch.rsqrt(sq.clamp_min(eps * eps))


def prototype_infonce(
    src_vectors: PrototypeVectors,
    tgt_vectors: PrototypeVectors,
    src_present: PrototypePresent | None = None,
    tgt_present: PrototypePresent | None = None,
    temperature: float = 0.1,
    symmetric: bool = True,
    eps: float = 1e-8,
) -> Tensor:
    """Prototype InfoNCE between two domains: intra-class alignment, inter-class separation.

    For every class ``k`` present in both domains (target anchor, source candidates),

    .. math::

        \\ell^{t \\to s}_k = -\\log \\frac{\\exp(\\cos(t_k, s_k) / \\tau)}
            {\\sum_{j \\in \\mathcal{P}_s} \\exp(\\cos(t_k, s_j) / \\tau)}

    where :math:`\\mathcal{P}_s` are the classes present in the source; the
    loss is the mean of :math:`\\ell^{t \\to s}_k` over the classes present in
    both, averaged with the mirrored :math:`\\ell^{s \\to t}_k` (negatives
    from :math:`\\mathcal{P}_t`) when ``symmetric``. Classes absent on either
    side change nothing (their vectors are never read); with no class present
    in both the loss is exactly 0 and still carries a graph.

    Args:
        src_vectors: ``(K, C)`` float source prototypes.
        tgt_vectors: ``(K, C)`` float target prototypes.
        src_present: ``(K,)`` bool, classes present in the source; ``None``: all.
        tgt_present: ``(K,)`` bool, classes present in the target; ``None``: all.
        temperature: ``τ > 0``.
        symmetric: average both directions (``True``) or use target → source only.
        eps: norm floor of the cosine similarity (zero vectors give cosine 0).

    Returns:
        Scalar float32 (float64 for float64 input) loss, computed in float32
        also under autocast.

    Raises:
        TypeError: vectors not floating, presence masks not bool.
        ValueError: shapes differ or are not ``(K, C)``/``(K,)``, ``temperature`` ≤ 0.

    Examples:
        >>> s, t = torch.randn(5, 16), torch.randn(5, 16)
        >>> prototype_infonce(s, t).shape
        torch.Size([])
    """
    sp, tp = _check_pair(src_vectors, tgt_vectors, src_present, tgt_present)
    tau = check_positive(temperature, "temperature")
    check_positive(eps, "eps")
    dtype = compute_dtype(src_vectors.dtype)
    with torch.autocast(src_vectors.device.type, enabled=False):
        s = _normalize(_prepare(src_vectors, sp, dtype), eps)
        t = _normalize(_prepare(tgt_vectors, tp, dtype), eps)
        both = sp & tp
        logits = (t @ s.transpose(0, 1)) / tau  # [k, j] = cos(t_k, s_j) / tau
        pos = torch.diagonal(logits)
        neg_inf = torch.full_like(logits, float("-inf"))
        # Rows of classes outside `both` keep every (finite) entry, so their
        # logsumexp and its gradient stay finite; they are masked out below.
        row_keep = sp.unsqueeze(0) | ~both.unsqueeze(1)
        loss_ts = torch.logsumexp(torch.where(row_keep, logits, neg_inf), dim=1) - pos
        per_class = loss_ts
        if symmetric:
            col_keep = tp.unsqueeze(1) | ~both.unsqueeze(0)
            loss_st = torch.logsumexp(torch.where(col_keep, logits, neg_inf), dim=0) - pos
            per_class = 0.5 * (loss_ts + loss_st)
        per_class = torch.where(both, per_class, torch.zeros_like(per_class))
        n = both.sum().clamp_min(1).to(dtype)
        return per_class.sum() / n


def prototype_mmd(
    src_vectors: PrototypeVectors,
    tgt_vectors: PrototypeVectors,
    src_present: PrototypePresent | None = None,
    tgt_present: PrototypePresent | None = None,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    bandwidth: float | None = None,
    eps: float = 1e-8,
    absent: Literal["skip", "zero"] = "skip",
) -> Tensor:
    """Multi-kernel RBF MMD² between the source and target prototype sets.

    Over the ``n`` classes present in both domains, with
    :math:`X = \\{s_k\\}`, :math:`Y = \\{t_k\\}` and
    :math:`\\kappa(a, b) = \\sum_m \\exp(-\\|a - b\\|^2 / (\\beta_m \\sigma^2))`,

    .. math::

        \\mathrm{MMD}^2 = \\frac{1}{n^2} \\Big(\\sum_{i,j} \\kappa(x_i, x_j)
            + \\sum_{i,j} \\kappa(y_i, y_j) - 2 \\sum_{i,j} \\kappa(x_i, y_j)\\Big)

    (the biased estimator, ≥ 0). :math:`\\sigma^2` is ``bandwidth`` or, when
    ``None``, the mean squared distance between distinct points of
    :math:`X \\cup Y` (detached), as in DAN. Exactly 0, with a graph, when no
    class is present in both.

    With ``absent="zero"`` the sets are all ``K`` rows of each side, a class
    absent on one side counting as a zero vector there (``n = K``): the public
    DA-STC code's ``mmd_rbf`` over its prototype matrices, zero rows included.

    Args:
        src_vectors: ``(K, C)`` float source prototypes.
        tgt_vectors: ``(K, C)`` float target prototypes.
        src_present: ``(K,)`` bool, classes present in the source; ``None``: all.
        tgt_present: ``(K,)`` bool, classes present in the target; ``None``: all.
        multipliers: kernel bandwidth multipliers :math:`\\beta_m`.
        bandwidth: fixed :math:`\\sigma^2 > 0`, or ``None`` for the data-driven one.
        eps: floor of :math:`\\sigma^2` (identical prototypes give no division by 0).
        absent: ``"skip"`` (default): only the classes present in both sides count;
            ``"zero"``: every class counts, absent ones as zero vectors.

    Returns:
        Scalar float32 (float64 for float64 input) MMD², computed in float32
        also under autocast.

    Raises:
        TypeError: vectors not floating, presence masks not bool.
        ValueError: shapes differ or are not ``(K, C)``/``(K,)``, empty or
            non-positive ``multipliers``, ``bandwidth`` ≤ 0, unknown ``absent``.

    Examples:
        >>> s, t = torch.randn(5, 16), torch.randn(5, 16)
        >>> prototype_mmd(s, t).shape
        torch.Size([])
    """
    sp, tp = _check_pair(src_vectors, tgt_vectors, src_present, tgt_present)
    if len(multipliers) == 0:
        raise ValueError("multipliers: expected a non-empty sequence of floats > 0, got ()")
    mults = [check_positive(m, "multipliers") for m in multipliers]
    if bandwidth is not None:
        check_positive(bandwidth, "bandwidth")
    check_positive(eps, "eps")
    if absent not in ("skip", "zero"):
        raise ValueError(f"absent: expected 'skip' or 'zero', got {absent!r}")
    dtype = compute_dtype(src_vectors.dtype)
    with torch.autocast(src_vectors.device.type, enabled=False):
        if absent == "zero":
            z = torch.cat([_prepare(src_vectors, sp, dtype), _prepare(tgt_vectors, tp, dtype)])
            both = torch.ones_like(sp)
        else:
            both = sp & tp
            z = torch.cat([_prepare(src_vectors, both, dtype), _prepare(tgt_vectors, both, dtype)])
        mask = torch.cat([both, both]).to(dtype)
        sq = z.pow(2).sum(dim=1)
        d2 = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (z @ z.transpose(0, 1))).clamp_min(0.0)
        if bandwidth is None:
            pair = mask.unsqueeze(1) * mask.unsqueeze(0)
            pair = pair * (1.0 - torch.eye(z.shape[0], dtype=dtype, device=z.device))
            sigma2 = (d2.detach() * pair).sum() / pair.sum().clamp_min(1.0)
            sigma2 = sigma2.clamp_min(eps)
        else:
            sigma2 = torch.tensor(float(bandwidth), dtype=dtype, device=z.device)
        kernel = torch.zeros_like(d2)
        for m in mults:  # a handful of bandwidths, each one fused over all pairs
            kernel = kernel + torch.exp(-d2 / (sigma2 * m))
        w = both.to(dtype) / both.sum().clamp_min(1).to(dtype)
        v = torch.cat([w, -w])
        return v @ kernel @ v
