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
field of :class:`dastc.data.SyntheticDrivingClips`) warps frame ``t - 1``'s
logits to frame ``t`` (``grid_sample`` backward warp: ``prev[y + fy, x + fx]``)
and fuses ``[current | warped previous]`` with a 1×1 convolution initialised
to ``[I | 0]``, i.e. the identity on the current frame. Frame 0 has no
previous frame and is fused with itself; pixels whose previous position falls
outside the image also use the current logits. The clip-to-last-frame flow
(``"flow"``) points the other way (from earlier frames to the last one), so
fusing a previous frame into a later one needs ``flow_prev``.

Run ``python examples/tiny_segmenter.py`` for a parameter count and a shape check.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TinySegmenter", "backward_warp"]


def backward_warp(x: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
    """Backward-warp ``x`` with ``flow``: ``out[:, :, y, x] = x[:, :, y + fy, x + fx]``.

    Args:
        x: float ``(N, C, H, W)``.
        flow: float ``(N, 2, H, W)``, (dx, dy) in pixels.

    Returns:
        The warped tensor ``(N, C, H, W)`` (bilinear, zeros outside) and a float mask
        ``(N, 1, H, W)``, 1 where the sampling position lies inside the image.
    """
    _, _, h, w = x.shape
    ys = torch.arange(h, device=x.device, dtype=flow.dtype)
    xs = torch.arange(w, device=x.device, dtype=flow.dtype)
    px = xs.view(1, 1, w) + flow[:, 0]
    py = ys.view(1, h, 1) + flow[:, 1]
    gx = 2 * px / max(w - 1, 1) - 1
    gy = 2 * py / max(h - 1, 1) - 1
    grid = torch.stack([gx, gy], dim=-1).to(x.dtype)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    return out, inside[:, None].to(x.dtype)


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
        self.fuse = nn.Conv2d(2 * num_classes, num_classes, 1)
        with torch.no_grad():
            self.fuse.weight.zero_()
            self.fuse.weight[:, :num_classes, 0, 0] = torch.eye(num_classes)
            self.fuse.bias.zero_()

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
            logits = self.fuse_temporal(logits, flow_prev)
        return deep, logits

    def fuse_temporal(self, logits: Tensor, flow_prev: Tensor) -> Tensor:
        """Fuse each frame's logits with the previous frame's, warped by ``flow_prev``.

        ``out[t] = conv1x1([logits[t] | warp(logits[t-1], flow_prev[t])])``, with the
        warped term replaced by ``logits[t]`` for ``t = 0`` and outside the image.

        Args:
            logits: ``(B, T, K, H, W)``.
            flow_prev: ``(B, T, 2, H, W)``, backward flow from frame t to frame t-1.

        Returns:
            ``(B, T, K, H, W)``.
        """
        b, t, _, h, w = logits.shape
        if flow_prev.shape != (b, t, 2, h, w):
            raise ValueError(
                f"flow_prev: expected shape {(b, t, 2, h, w)}, got {tuple(flow_prev.shape)}"
            )
        prev = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)  # frame t-1 (t=0: itself)
        warped, inside = backward_warp(prev.flatten(0, 1), flow_prev.flatten(0, 1))
        cur = logits.flatten(0, 1)
        warped = inside * warped + (1 - inside) * cur
        first = torch.zeros(b, t, 1, 1, 1, dtype=cur.dtype, device=cur.device)
        first[:, 0] = 1
        warped = torch.where(first.flatten(0, 1).bool(), cur, warped)
        out = self.fuse(torch.cat([cur, warped], dim=1))
        return out.unflatten(0, (b, t))

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
