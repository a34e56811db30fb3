"""Sequence- and feature-level bidirectional mixing modules (DA-STC step 2 and 3).

Thin ``nn.Module`` wrappers that hold configuration and call
:mod:`dastc.functional`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dastc import _validate as V
from dastc.functional.class_mix import ClipMixOutput, _check_class_count, bidirectional_clip_mix
from dastc.functional.feature_mix import shallow_feature_mix

__all__ = ["BidirectionalClipMix", "ShallowFeatureMix"]


class BidirectionalClipMix(nn.Module):
    """Bidirectional class mix of clips: source→target and target→source in one call.

    For each clip, ``round_half_up(class_fraction * n)`` of its ``n`` valid
    classes present are drawn once (never ``ignore_index``), and their pixels in
    every frame are pasted on the other domain's clip. See
    :func:`dastc.functional.bidirectional_clip_mix` for the formulas.

    A partly labelled clip (frames read as ``ignore_index``, as the public VIPER
    download leaves frame ``t - 1``) pastes a drawn class only in the frames where
    it is labelled: the mask is where the label equals a drawn class, and
    ``ignore_index`` is never drawn.

    Args:
        num_classes: ``K``.
        ignore_index: label value that is never drawn (default 255).
        class_fraction: fraction of the present classes drawn per clip (default 0.5).
        paste_threshold: optional; only target pixels whose confidence exceeds it are
            pasted on the source (the public code's 0.9); the call must then give
            ``tgt_confidence``. Off by default.
        rare_classes: optional class ids always pasted when present. Off by default.
        exclude_s2t_classes: the target draw skips the classes drawn at random on the
            source side.
        class_count: optional; each side draws this many classes (all when fewer
            are present) instead of ``class_fraction`` of them (the public code: 2).
        rare_t2s: ``rare_classes`` are pasted target → source too (default True;
            the public code: source → target only).

    The public DA-STC code's class mix is ``class_count=2``, its fixed tail
    classes as ``rare_classes`` with ``rare_t2s=False``, ``exclude_s2t_classes=True``
    and ``paste_threshold=0.9`` (see the guide's comparison with the public code).

    Shape:
        - clips: ``(B, T, C, H, W)`` or ``(B, C, H, W)``; labels and weights
          ``(B, T, H, W)`` or ``(B, H, W)``; flows ``(B, T, 2, H, W)`` or ``(B, 2, H, W)``.
        - output: :class:`ClipMixOutput` of the input's rank.

    Examples:
        >>> mix = BidirectionalClipMix(num_classes=4)
        >>> g = torch.Generator().manual_seed(0)
        >>> xs, xt = torch.rand(2, 2, 3, 16, 16), torch.rand(2, 2, 3, 16, 16)
        >>> ys, yt = torch.randint(0, 4, (2, 2, 16, 16)), torch.randint(0, 4, (2, 2, 16, 16))
        >>> out = mix(xs, ys, xt, yt, generator=g)
        >>> out.t2s_clip.shape, out.s2t_flow is None
        (torch.Size([2, 2, 3, 16, 16]), True)
    """

    rare_mask: Tensor | None

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        class_fraction: float = 0.5,
        *,
        paste_threshold: float | None = None,
        rare_classes: Sequence[int] | None = None,
        exclude_s2t_classes: bool = False,
        class_count: int | None = None,
        rare_t2s: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = V.check_num_classes(num_classes)
        self.ignore_index = V.check_ignore_index(ignore_index, self.num_classes)
        self.class_fraction = V.check_unit_interval(class_fraction, "class_fraction")
        self.paste_threshold = (
            None
            if paste_threshold is None
            else V.check_unit_interval(paste_threshold, "paste_threshold")
        )
        self.exclude_s2t_classes = bool(exclude_s2t_classes)
        self.class_count = _check_class_count(class_count)
        self.rare_t2s = bool(rare_t2s)
        if rare_classes is None:
            self.register_buffer("rare_mask", None, persistent=False)
        else:
            ids = list(rare_classes)
            bad = [c for c in ids if not isinstance(c, int) or not 0 <= c < self.num_classes]
            if bad:
                raise ValueError(
                    f"rare_classes: expected class ids in [0, {self.num_classes}), got {bad}"
                )
            mask = torch.zeros(self.num_classes, dtype=torch.bool)
            mask[ids] = True
            self.register_buffer("rare_mask", mask, persistent=False)

    def forward(
        self,
        src_clip: Tensor,
        src_label: Tensor,
        tgt_clip: Tensor,
        tgt_label: Tensor,
        tgt_weight: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        src_flow: Tensor | None = None,
        tgt_flow: Tensor | None = None,
        tgt_confidence: Tensor | None = None,
    ) -> ClipMixOutput:
        """Mix a batch of source and target clips.

        Args:
            src_clip: float ``(B, T, C, H, W)`` / ``(B, C, H, W)`` source clips.
            src_label: long ``(B, T, H, W)`` / ``(B, H, W)`` source labels.
            tgt_clip: float, like ``src_clip``: target clips.
            tgt_label: long, like ``src_label``: target pseudo-labels.
            tgt_weight: optional float like ``tgt_label``: pseudo-label weights (None = 1).
            generator: optional ``torch.Generator`` on the inputs' device.
            src_flow: optional source flow ``(B, T, 2, H, W)``; mixed with the same masks.
            tgt_flow: optional target flow (give both flows or neither).
            tgt_confidence: per-pixel confidence, required with ``paste_threshold``.

        Returns:
            :class:`ClipMixOutput`.
        """
        rare = self.rare_mask
        if rare is not None and rare.device != src_label.device:
            rare = rare.to(src_label.device)
        return bidirectional_clip_mix(
            src_clip,
            src_label,
            tgt_clip,
            tgt_label,
            tgt_weight,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            class_fraction=self.class_fraction,
            generator=generator,
            src_flow=src_flow,
            tgt_flow=tgt_flow,
            tgt_confidence=tgt_confidence,
            paste_threshold=self.paste_threshold,
            rare_classes=rare,
            exclude_s2t_classes=self.exclude_s2t_classes,
            class_count=self.class_count,
            rare_t2s=self.rare_t2s,
        )

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"class_fraction={self.class_fraction}"
            + ("" if self.class_count is None else f", class_count={self.class_count}")
        )


class ShallowFeatureMix(nn.Module):
    """Mix shallow features of the two domains with the clip-mix masks.

    ``s2t_feat = where(s2t_mask, src_feat, tgt_feat)`` and
    ``t2s_feat = where(t2s_mask, tgt_feat, src_feat)``, masks nearest-resized to the
    feature resolution; with ``blend < 1`` the pasted feature is blended inside the
    mask (see :func:`dastc.functional.shallow_feature_mix`).

    Args:
        blend: weight of the pasted feature inside the mask, in ``(0, 1]`` (default 1).

    Shape:
        - features: ``(B, T, C, h, w)`` or ``(B, C, h, w)``; masks ``(B, T, H, W)`` /
          ``(B, H, W)`` bool at any resolution.
        - output: two tensors shaped like the features.

    Examples:
        >>> fmix = ShallowFeatureMix()
        >>> fs, ft = torch.randn(1, 2, 8, 4, 4), torch.randn(1, 2, 8, 4, 4)
        >>> m = torch.ones(1, 2, 16, 16, dtype=torch.bool)
        >>> s2t, t2s = fmix(fs, ft, m, m)
        >>> torch.equal(s2t, fs), torch.equal(t2s, ft)
        (True, True)
    """

    def __init__(self, blend: float = 1.0) -> None:
        super().__init__()
        self.blend = V.check_unit_interval(blend, "blend", low_open=True)

    def forward(
        self, src_feat: Tensor, tgt_feat: Tensor, s2t_mask: Tensor, t2s_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Return ``(s2t_feat, t2s_feat)``, each shaped like ``src_feat``."""
        return shallow_feature_mix(src_feat, tgt_feat, s2t_mask, t2s_mask, self.blend)

    def extra_repr(self) -> str:
        return f"blend={self.blend}"
