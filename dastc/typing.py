"""Tensor aliases used in dastc signatures.

The annotation string names the axes, so a reader (and the API docs) see the
layout at a glance: ``Clip`` is ``(B, T, C, H, W)``, ``Image`` is
``(B, C, H, W)``. They are plain :class:`torch.Tensor` at run time.
"""

from __future__ import annotations

from typing import Annotated

from torch import Tensor

__all__ = [
    "Clip",
    "Image",
    "ClipOrImage",
    "LabelClip",
    "LabelImage",
    "LabelMap",
    "MaskClip",
    "Mask",
    "WeightClip",
    "Weights",
    "FeatureClip",
    "FeatureImage",
    "Features",
    "LogitClip",
    "LogitImage",
    "Logits",
    "FlowClip",
    "FlowImage",
    "Flow",
    "PrototypeVectors",
    "PrototypeCounts",
    "PrototypePresent",
]

Clip = Annotated[Tensor, "B T C H W"]
"""A float clip ``(B, T, C, H, W)``, oldest frame first."""
Image = Annotated[Tensor, "B C H W"]
"""A float image batch ``(B, C, H, W)``."""
ClipOrImage = Clip | Image
"""A clip ``(B, T, C, H, W)`` or an image batch ``(B, C, H, W)``."""

LabelClip = Annotated[Tensor, "B T H W"]
"""``torch.long`` labels ``(B, T, H, W)`` in ``[0, K)`` or ``ignore_index``."""
LabelImage = Annotated[Tensor, "B H W"]
"""``torch.long`` labels ``(B, H, W)``."""
LabelMap = LabelClip | LabelImage
"""``torch.long`` labels ``(B, T, H, W)`` or ``(B, H, W)``."""

MaskClip = Annotated[Tensor, "B T H W"]
"""``torch.bool`` mask ``(B, T, H, W)``."""
Mask = MaskClip | Annotated[Tensor, "B H W"]
"""``torch.bool`` mask ``(B, T, H, W)`` or ``(B, H, W)``."""

WeightClip = Annotated[Tensor, "B T H W"]
"""Float per-pixel weights ``(B, T, H, W)`` in ``[0, 1]``."""
Weights = WeightClip | Annotated[Tensor, "B H W"]
"""Float per-pixel weights ``(B, T, H, W)`` or ``(B, H, W)``."""

FeatureClip = Annotated[Tensor, "B T C h w"]
"""Float feature maps ``(B, T, C, h, w)``."""
FeatureImage = Annotated[Tensor, "B C h w"]
"""Float feature maps ``(B, C, h, w)``."""
Features = FeatureClip | FeatureImage
"""Float feature maps ``(B, T, C, h, w)`` or ``(B, C, h, w)``."""

LogitClip = Annotated[Tensor, "B T K H W"]
"""Float logits ``(B, T, K, H, W)``."""
LogitImage = Annotated[Tensor, "B K H W"]
"""Float logits ``(B, K, H, W)``."""
Logits = LogitClip | LogitImage
"""Float logits ``(B, T, K, H, W)`` or ``(B, K, H, W)``."""

FlowClip = Annotated[Tensor, "B T 2 H W"]
"""Backward flow ``(B, T, 2, H, W)``: (dx, dy) in pixels from frame t to the reference frame."""
FlowImage = Annotated[Tensor, "B 2 H W"]
"""Backward flow ``(B, 2, H, W)``: (dx, dy) in pixels."""
Flow = FlowClip | FlowImage
"""Backward flow ``(B, T, 2, H, W)`` or ``(B, 2, H, W)``."""

PrototypeVectors = Annotated[Tensor, "K C"]
"""Float class prototypes ``(K, C)``."""
PrototypeCounts = Annotated[Tensor, "K"]
"""Float per-class weight totals ``(K,)``."""
PrototypePresent = Annotated[Tensor, "K"]
"""``torch.bool`` ``(K,)``: the class was seen."""
