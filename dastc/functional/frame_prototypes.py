"""Frame-averaged class prototypes: one prototype set per frame, averaged with equal weights.

:func:`~dastc.functional.class_prototypes` pools every pixel of a batch of clips
into one mean per class. The public DA-STC code computes one prototype set per
prediction instead (a frame of one clip), keeps a zero row for a class that is
absent from that frame or has fewer than 5 pixels there, and averages the sets
of the two predictions of a clip 0.5 / 0.5 (``temporal_moudle``). This module is
that rule, vectorised over batch, time and classes:

.. math::

    p^{(n)}_k = \\frac{\\sum_i w_{ni} [y_{ni} = k] f_{ni}}{\\sum_i w_{ni} [y_{ni} = k]}
        \\text{ if } \\#\\{i : y_{ni} = k\\} \\ge m \\text{, else } 0, \\qquad
    p_k = \\frac{1}{N} \\sum_{n=1}^{N} p^{(n)}_k

over the ``N = B·T`` frames. A class seen in one frame of a two-frame clip gets
half its frame's vector, as in the public code.
"""

from __future__ import annotations

import torch

from dastc.functional.prototypes import (
    Prototypes,
    _check_inputs,
    _per_frame,
    _refuse_nonfinite_features,
)
from dastc.typing import Features, LabelMap, Weights

__all__ = ["frame_mean_prototypes"]


def frame_mean_prototypes(
    features: Features,
    labels: LabelMap,
    num_classes: int,
    weights: Weights | None = None,
    ignore_index: int = 255,
    min_pixels: int = 1,
) -> Prototypes:
    """Per-frame class prototypes averaged over frames, zero rows for absent classes.

    Labels (and weights) are brought to feature resolution by nearest-neighbour
    sampling, as in :func:`~dastc.functional.class_sums`. In each frame ``n``,
    class ``k`` has a prototype when at least ``min_pixels`` of its pixels at
    feature resolution carry label ``k`` and their total weight is positive;
    otherwise its row is 0. The result is the plain mean of the frames' rows.

    Args:
        features: ``(B, T, C, h, w)`` or ``(B, C, h, w)`` float features (deep
            features or logits).
        labels: ``(B, T, H, W)`` or ``(B, H, W)`` long, the rank matching
            ``features``, values in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: ``K``.
        weights: optional per-pixel float weights, the shape of ``labels``;
            ``None`` means all ones (the public code's hard masks).
        ignore_index: label value that never counts.
        min_pixels: a class with fewer pixels in a frame gets a zero row there
            (the public code skips classes with fewer than 5); ``>= 1``.

    Returns:
        :class:`~dastc.functional.Prototypes`: ``vectors`` ``(K, C)`` (the frame
        mean), ``counts`` ``(K,)`` float, the number of frames in which each class
        has a prototype, and ``present = counts > 0``. float32 (float64 for
        float64 features), differentiable w.r.t. ``features`` and ``weights``.

    Raises:
        TypeError: ``features``/``weights`` not floating, ``labels`` not long.
        ValueError: wrong ranks or shapes, labels out of range, ``min_pixels < 1``.

    Examples:
        >>> f = torch.randn(1, 2, 8, 4, 4)
        >>> y = torch.zeros(1, 2, 4, 4, dtype=torch.long)
        >>> y[:, 1] = 1                        # class 0 in frame 0, class 1 in frame 1
        >>> p = frame_mean_prototypes(f, y, num_classes=3)
        >>> torch.allclose(p.vectors[0], 0.5 * f[0, 0].mean(dim=(1, 2)))
        True
        >>> p.counts.tolist()
        [1.0, 1.0, 0.0]
    """
    _check_inputs(features, labels, weights, num_classes, ignore_index)
    if isinstance(min_pixels, bool) or not isinstance(min_pixels, int) or min_pixels < 1:
        raise ValueError(f"min_pixels: expected an int >= 1, got {min_pixels!r}")
    with torch.autocast(features.device.type, enabled=False):
        feats, idx, wt = _per_frame(features, labels, weights, num_classes, ignore_index)
        frames, _, hw = feats.shape
        # (N, K + 1, hw) one-hot: row K collects ignored pixels and is dropped.
        hits = feats.new_zeros(frames, num_classes + 1, hw).scatter_(1, idx.unsqueeze(1), 1.0)
        hits = hits[:, :num_classes]
        pixels = hits.sum(2)  # (N, K) unweighted pixel counts
        if wt is not None:
            hits = hits * wt.unsqueeze(1)
        mass = hits.sum(2)  # (N, K)
        sums = torch.bmm(hits, feats.transpose(1, 2))  # (N, K, C)
        has = (pixels >= min_pixels) & (mass > 0)
        safe = torch.where(has, mass, torch.ones_like(mass))
        per_frame = torch.where(has.unsqueeze(2), sums / safe.unsqueeze(2), 0.0)
        counts = has.to(feats.dtype).sum(0)
        vectors = per_frame.mean(0)
    _refuse_nonfinite_features(vectors, features)
    return Prototypes(vectors=vectors, counts=counts, present=counts > 0)
