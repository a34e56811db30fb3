"""A tiny per-frame segmenter with the two stages DA-STC needs: shallow and deep."""

import torch.nn.functional as F
from torch import Tensor, nn


class TinyNet(nn.Module):
    """Clips ``(B, T, 3, H, W)`` -> logits ``(B, T, K, H, W)``; GroupNorm, so eval == train."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        c = width
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.GroupNorm(4, c), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.GroupNorm(4, c), nn.ReLU())
        self.head = nn.Conv2d(c, num_classes, 1)

    def shallow(self, x: Tensor) -> Tensor:  # (B, T, 3, H, W) -> (B, T, C, H/2, W/2)
        return self.stem(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def deep(self, f: Tensor) -> tuple[Tensor, Tensor]:  # -> deep features, logits at full size
        d = self.body(f.flatten(0, 1))
        logits = F.interpolate(self.head(d), scale_factor=2.0, mode="bilinear")
        return d.unflatten(0, f.shape[:2]), logits.unflatten(0, f.shape[:2])

    def forward(self, x: Tensor, with_deep: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        deep, logits = self.deep(self.shallow(x))
        return (deep, logits) if with_deep else logits
