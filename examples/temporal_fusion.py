"""Flow-guided temporal fusion of per-frame logits (METHOD step 6), for any segmenter.

``TemporalFusion(K)(logits, flow_prev)`` warps each frame's previous-frame logits
to it with :func:`dastc.functional.warp` (``flow_prev[t]`` is the backward flow
from frame ``t`` to frame ``t - 1``, the ``"flow_prev"`` field of
:class:`dastc.data.SyntheticDrivingClips`) and fuses ``[current | warped
previous]`` with a 1×1 convolution initialised to ``[I | 0]``: at
initialisation the fusion is the identity on the current frame, so a
per-frame model trained without it computes the same function. Frame 0 has no
previous frame and is fused with itself; pixels whose previous position falls
outside the image also use the current logits.

Both example models (``TinySegmenter`` and ``SmpSegmenter``) use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dastc.functional import flow_validity, warp

__all__ = ["TemporalFusion"]


class TemporalFusion(nn.Module):
    """``out[t] = conv1x1([logits[t] | warp(logits[t-1], flow_prev[t])])``.

    Args:
        num_classes: ``K``, the channels of the logits.

    Shapes:
        ``forward(logits (B, T, K, H, W), flow_prev (B, T, 2, H, W)) -> (B, T, K, H, W)``.

    Its parameters are ``weight`` ``(K, 2K, 1, 1)`` and ``bias`` ``(K,)``, the
    names a plain ``nn.Conv2d`` would have.

    Example:
        >>> fuse = TemporalFusion(4)
        >>> logits = torch.randn(2, 3, 4, 8, 8)
        >>> torch.equal(fuse(logits, torch.zeros(2, 3, 2, 8, 8)), logits)
        True
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
        k = num_classes
        weight = torch.zeros(k, 2 * k, 1, 1)
        weight[:, :k, 0, 0] = torch.eye(k)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(k))

    def forward(self, logits: Tensor, flow_prev: Tensor) -> Tensor:
        if logits.dim() != 5 or logits.shape[2] != self.bias.shape[0]:
            raise ValueError(
                f"logits: expected (B, T, {self.bias.shape[0]}, H, W), got {tuple(logits.shape)}"
            )
        b, t, _, h, w = logits.shape
        if flow_prev.shape != (b, t, 2, h, w):
            raise ValueError(
                f"flow_prev: expected shape {(b, t, 2, h, w)}, got {tuple(flow_prev.shape)}"
            )
        prev = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)  # frame t-1 (t=0: itself)
        warped = warp(prev, flow_prev)
        use_prev = flow_validity(flow_prev).unsqueeze(2)  # (B, T, 1, H, W)
        use_prev[:, 0] = False
        warped = torch.where(use_prev, warped, logits)
        fused = F.conv2d(torch.cat([logits, warped], dim=2).flatten(0, 1), self.weight, self.bias)
        return fused.unflatten(0, (b, t))
