"""The example's clip augmentation: random rescale, crop and flip, drawn once per clip
(:func:`dastc.functional.draw_clip_transform`) and applied to every field of a batch.

The draw of iteration ``i`` comes from a generator seeded with ``(seed, i, domain)``,
so a resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dastc.functional import apply_clip_transform, draw_clip_transform


def augment_batch(
    batch: dict[str, Tensor],
    crop: tuple[int, int],
    scale: tuple[float, float],
    flip: float,
    seed: int,
    iteration: int,
    domain: int,
) -> dict[str, Tensor]:
    """``batch`` (``clip`` ``(B, T, 3, H, W)``, ``label``, optional ``flow_prev``...)
    rescaled, cropped to ``crop`` and flipped, one draw per clip for every field."""
    clip = batch["clip"]
    g = torch.Generator(device=clip.device).manual_seed((seed * 1_000_003 + iteration) * 2 + domain)
    in_size = (clip.shape[-2], clip.shape[-1])
    tf = draw_clip_transform(
        clip.shape[0], in_size, crop, scale=scale, flip=flip, generator=g, device=clip.device
    )
    out = {}
    for key, value in batch.items():
        if tuple(value.shape[-2:]) != in_size:  # not a per-pixel field
            out[key] = value
        else:
            out[key] = apply_clip_transform(tf, value, mode="flow" if key == "flow_prev" else None)
    return out
