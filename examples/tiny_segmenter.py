"""A small temporal segmenter for CPU experiments with dastc.

``TinySegmenter`` is a per-frame encoder–decoder (about 180k parameters) with
GroupNorm only, so train and eval mode compute the same function (no running
statistics for a teacher copy to get wrong). It exposes the two stages the
DA-STC blocks need:

* ``model.shallow(x)``: the stem (stride 2), whose output is mixed by
  :class:`dastc.ShallowFeatureMix`;
* ``model.deep(shallow_feats)``: encoder (to stride 8), decoder (back to
  stride 4) and a 1×1 classifier; returns the deep features (for prototype
  alignment) and the logits at input size.

so that ``model(x) == model.deep(model.shallow(x))[1]``.

Temporal fusion (optional): ``model(clip, flow_prev)`` with ``flow_prev`` the
backward flow from each frame ``t`` to frame ``t - 1`` (the ``"flow_prev"``
field of :class:`dastc.data.SyntheticDrivingClips`) fuses each frame's logits
with the previous frame's, warped by the flow (``temporal_fusion.py``; at
initialisation the identity on the current frame). The clip-to-last-frame flow
(``"flow"``) points the other way (from earlier frames to the last one), so
fusing a previous frame into a later one needs ``flow_prev``.

Run ``python examples/tiny_segmenter.py`` for a parameter count and a shape check.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from temporal_fusion import TemporalFusion
from torch import Tensor, nn

__all__ = ["TinySegmenter"]


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1, groups: int = 8) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.GroupNorm(min(groups, cout), cout),
        nn.ReLU(inplace=True),
    )


class TinySegmenter(nn.Module):
    """Per-frame GroupNorm encoder–decoder with optional flow-guided temporal fusion.

    Args:
        num_classes: number of output classes ``K``.
        widths: channels of the stem (stride 2) and of the two encoder stages
            (strides 4 and 8).
        deep_channels: channels ``Cd`` of the decoder's output (the deep features).
        in_channels: input channels.

    Shapes:
        * ``forward(x, flow_prev=None)``: ``(B, T, 3, H, W) -> (B, T, K, H, W)`` or
          ``(B, 3, H, W) -> (B, K, H, W)``; ``H`` and ``W`` divisible by 8.
        * ``shallow(x)``: ``-> (B, T, widths[0], H/2, W/2)`` (same rank as ``x``).
        * ``deep(f, flow_prev=None)``: ``-> (deep (B, T, Cd, H/4, W/4),
          logits (B, T, K, H, W))`` (same rank as ``f``).

    Example:
        >>> model = TinySegmenter(num_classes=9)
        >>> clip = torch.rand(2, 3, 3, 64, 128)
        >>> model(clip).shape
        torch.Size([2, 3, 9, 64, 128])
        >>> feats = model.shallow(clip)
        >>> deep, logits = model.deep(feats)
        >>> feats.shape, deep.shape
        (torch.Size([2, 3, 16, 32, 64]), torch.Size([2, 3, 48, 16, 32]))
    """

    def __init__(
        self,
        num_classes: int,
        widths: tuple[int, int, int] = (16, 32, 64),
        deep_channels: int = 48,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        w0, w1, w2 = widths
        self.num_classes = num_classes
        self.shallow_channels = w0
        self.deep_channels = deep_channels
        self.stem = nn.Sequential(_block(in_channels, w0, stride=2), _block(w0, w0))
        self.enc1 = nn.Sequential(_block(w0, w1, stride=2), _block(w1, w1))
        self.enc2 = nn.Sequential(
            _block(w1, w2, stride=2), _block(w2, w2, dilation=2), _block(w2, w2, dilation=4)
        )
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(w2, w2, 1), nn.ReLU())
        self.decoder = nn.Sequential(
            _block(w2 + w1, deep_channels), _block(deep_channels, deep_channels)
        )
        self.classifier = nn.Conv2d(deep_channels, num_classes, 1)
        self.fuse = TemporalFusion(num_classes)

    @staticmethod
    def _frames(x: Tensor, rank: int) -> tuple[Tensor, tuple[int, ...] | None]:
        if x.dim() == rank + 1:
            b, t = x.shape[:2]
            return x.flatten(0, 1), (b, t)
        if x.dim() != rank:
            raise ValueError(
                f"x: expected a clip (B, T, C, H, W) or image (B, C, H, W), got {tuple(x.shape)}"
            )
        return x, None

    @staticmethod
    def _unframes(y: Tensor, bt: tuple[int, ...] | None) -> Tensor:
        return y if bt is None else y.unflatten(0, bt)

    def shallow(self, x: Tensor) -> Tensor:
        """Shallow features (stride 2): ``(B[, T], 3, H, W) -> (B[, T], Cs, H/2, W/2)``."""
        xf, bt = self._frames(x, 4)
        return self._unframes(self.stem(xf), bt)

    def deep(self, feats: Tensor, flow_prev: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Deep features (stride 4) and logits at input size from shallow features.

        Args:
            feats: shallow features ``(B, T, Cs, h, w)`` or ``(B, Cs, h, w)``.
            flow_prev: optional flow ``(B, T, 2, 2h, 2w)`` from each frame to the previous
                one; fuses the previous frame's logits into each frame (clips only).

        Returns:
            ``(deep, logits)``: ``(B[, T], Cd, h/2, w/2)`` and ``(B[, T], K, 2h, 2w)``.
        """
        ff, bt = self._frames(feats, 4)
        s4 = self.enc1(ff)
        s8 = self.enc2(s4)
        s8 = s8 + self.context(s8)
        up = F.interpolate(s8, size=s4.shape[-2:], mode="bilinear", align_corners=False)
        d = self.decoder(torch.cat([up, s4], dim=1))
        size = (2 * ff.shape[-2], 2 * ff.shape[-1])
        logits = F.interpolate(self.classifier(d), size=size, mode="bilinear", align_corners=False)
        deep = self._unframes(d, bt)
        logits = self._unframes(logits, bt)
        if flow_prev is not None:
            if bt is None:
                raise ValueError("flow_prev: temporal fusion needs a clip (B, T, Cs, h, w)")
            logits = self.fuse(logits, flow_prev)
        return deep, logits

    def forward(self, x: Tensor, flow_prev: Tensor | None = None) -> Tensor:
        """Logits at input size, same rank as ``x`` (see the class docstring)."""
        return self.deep(self.shallow(x), flow_prev)[1]


if __name__ == "__main__":
    model = TinySegmenter(num_classes=9)
    n_params = sum(p.numel() for p in model.parameters())
    clip = torch.rand(2, 2, 3, 64, 128)
    flow_prev = torch.zeros(2, 2, 2, 64, 128)
    out = model(clip)
    fused = model(clip, flow_prev)
    print(f"TinySegmenter: {n_params} parameters; logits {tuple(out.shape)}")
    print(f"fusion initialised to identity: {torch.allclose(out, fused, atol=1e-5)}")
