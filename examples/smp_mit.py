"""The shallow/deep split of smp's MiT encoders (SegFormer's Mix Transformer, ``mit_b0-5``).

smp's ``MixVisionTransformerEncoder`` has four stages, each an overlapping
patch embedding (a strided convolution and a LayerNorm), a sequence of
transformer blocks and a LayerNorm: ``patch_embed{i} → block{i} → norm{i}``,
at strides 4, 8, 16 and 32 (deeplabv3/deeplabv3plus dilate the last one or
two). Its forward returns ``[x, dummy, s1, s2, s3, s4]`` (cut at the encoder's
depth), where ``dummy`` is an empty ``(B, 0, H/2, W/2)`` tensor standing for
the stride-2 level MiT does not have. :class:`smp_segmenter.SmpSegmenter` uses

* :func:`mit_shallow`: the first stage, ``(N, 3, H, W) -> (N, C1, H/4, W/4)``,
  the shallow features DA-STC's feature mix works on;
* :func:`mit_features`: the remaining stages on those features, returning the
  list the encoder's forward would have returned (the decoders read only the
  shapes of its first two entries).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["MIT_STRIDE", "is_mit", "mit_features", "mit_shallow"]

#: stride of MiT's first stage (its overlapping 7x7 patch embedding)
MIT_STRIDE = 4
_PARTS = ("patch_embed", "block", "norm")


def is_mit(encoder: nn.Module) -> bool:
    """Whether ``encoder`` has MiT's four ``patch_embed{i}``/``block{i}``/``norm{i}`` stages."""
    return all(hasattr(encoder, f"{p}{i}") for p in _PARTS for i in range(1, 5))


def _stage(encoder: nn.Module, i: int, x: Tensor) -> Tensor:
    """Stage ``i`` (1-4), as the encoder's forward runs it."""
    x = getattr(encoder, f"patch_embed{i}")(x)
    x = getattr(encoder, f"block{i}")(x)
    return getattr(encoder, f"norm{i}")(x).contiguous()  # type: ignore[no-any-return]


def mit_shallow(encoder: nn.Module, x: Tensor) -> Tensor:
    """The first stage: ``(N, 3, H, W) -> (N, C1, H/4, W/4)`` (``H``, ``W`` divisible by 4)."""
    return _stage(encoder, 1, x)


def mit_features(encoder: nn.Module, s1: Tensor) -> list[Tensor]:
    """The encoder's feature list from the first stage's output ``s1`` ``(N, C1, h, w)``.

    Returns ``[empty (N, 0, 4h, 4w), empty (N, 0, 2h, 2w), s1, s2, ...]`` with as
    many stages as the encoder's depth (``len(encoder.out_channels) - 2``).
    """
    n, _, h, w = s1.shape
    features = [
        s1.new_empty(n, 0, MIT_STRIDE * h, MIT_STRIDE * w),  # the input: only its size is read
        s1.new_empty(n, 0, MIT_STRIDE * h // 2, MIT_STRIDE * w // 2),  # the encoder's dummy
        s1,
    ]
    x = s1
    for i in range(2, len(encoder.out_channels) - 1):
        x = _stage(encoder, i, x)
        features.append(x)
    return features
