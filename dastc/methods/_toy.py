"""A two-stage toy segmenter for the docstring examples and tests (not a model to train)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ToySegmenter(nn.Module):
    """``shallow``: a stride-2 conv; ``deep``: a conv and a 1×1 head, upsampled to the input."""

    def __init__(self, num_classes: int, width: int = 8) -> None:
        super().__init__()
        self.deep_channels = width
        self.stem = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.body = nn.Conv2d(width, width, 3, padding=1)
        self.head = nn.Conv2d(width, num_classes, 1)

    def shallow(self, clip: Tensor) -> Tensor:
        x: Tensor = F.relu(self.stem(clip.flatten(0, 1)))
        return x.view(*clip.shape[:2], *x.shape[1:])

    def deep(self, feats: Tensor, flow_prev: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x: Tensor = F.relu(self.body(feats.flatten(0, 1)))
        logits = F.interpolate(self.head(x), scale_factor=2.0, mode="bilinear")
        B, T = feats.shape[:2]
        return x.view(B, T, *x.shape[1:]), logits.view(B, T, *logits.shape[1:])

    def forward(self, clip: Tensor, flow_prev: Tensor | None = None) -> Tensor:
        return self.deep(self.shallow(clip), flow_prev)[1]
