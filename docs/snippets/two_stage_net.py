"""A tiny per-frame segmenter with the interface dastc.methods trains (a TwoStageSegmenter)."""

import torch.nn.functional as F
from torch import Tensor, nn


class TwoStageNet(nn.Module):
    """Clips ``(B, T, 3, H, W)`` -> logits ``(B, T, K, H, W)``; GroupNorm, so eval == train."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        c = width
        self.deep_channels = c  # C of the deep features: the size of the class prototypes
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.GroupNorm(4, c), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.GroupNorm(4, c), nn.ReLU())
        self.head = nn.Conv2d(c, num_classes, 1)

    def shallow(self, clip: Tensor) -> Tensor:  # (B, T, 3, H, W) -> (B, T, C, H/2, W/2)
        return self.stem(clip.flatten(0, 1)).unflatten(0, clip.shape[:2])

    def deep(self, f: Tensor, flow_prev: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # -> deep features (B, T, C, H/2, W/2), logits (B, T, K, H, W); a per-frame
        # model ignores flow_prev, a temporal one fuses the previous frame with it
        d = self.body(f.flatten(0, 1))
        logits = F.interpolate(self.head(d), scale_factor=2.0, mode="bilinear")
        return d.unflatten(0, f.shape[:2]), logits.unflatten(0, f.shape[:2])

    def forward(self, clip: Tensor, flow_prev: Tensor | None = None) -> Tensor:
        return self.deep(self.shallow(clip), flow_prev)[1]
