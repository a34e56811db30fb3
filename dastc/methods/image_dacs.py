"""ImageDACS: the same pipeline on single frames (the strongest per-frame baseline here)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from dastc.methods.da_stc import DASTC

__all__ = ["ImageDACS"]

_FRAME_FIELDS = ("clip", "label", "flow", "flow_prev", "valid")


class ImageDACS(DASTC):
    """DACS-style image UDA: :class:`DASTC` with every frame an image and no alignment.

    Each ``(B, T, ...)`` batch is folded into ``B·T`` clips of one frame: the
    EMA teacher, class-balanced pseudo-labels, the bidirectional class mix
    (classes drawn per frame), strong augmentation and the shallow-feature mix
    all run per frame; no flow, no temporal fusion, no prototype alignment. The
    baseline that the video blocks must beat.
    """

    name: ClassVar[str] = "image_dacs"
    temporal_model: ClassVar[bool] = False
    aligns: ClassVar[bool] = False

    def _frames(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        for k, v in batch.items():
            if k in _FRAME_FIELDS and v.dim() >= 4:
                out[k] = v.reshape(v.shape[0] * v.shape[1], 1, *v.shape[2:])
            else:
                out[k] = v
        return out
