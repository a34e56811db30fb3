"""What a method takes and gives: the model contract, the batches, the step's output."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

from torch import Tensor

from dastc._validate import check_float, check_long, describe
from dastc.functional.class_mix import ClipMixOutput

__all__ = ["LastMix", "StepOutput", "TwoStageSegmenter", "check_batch"]


@runtime_checkable
class TwoStageSegmenter(Protocol):
    """The student a method trains: a video segmenter split into a shallow and a deep stage.

    ``forward(clip, flow_prev=None)`` gives logits ``(B, T, K, H, W)`` for a clip
    ``(B, T, 3, H, W)`` (with optional backward flow ``(B, T, 2, H, W)`` for a
    temporal model). ``shallow(clip)`` gives the shallow features
    ``(B, T, C1, h1, w1)`` the feature mix works on, and
    ``deep(shallow_feats, flow_prev=None)`` the deep features
    ``(B, T, C, h, w)`` (``C = deep_channels``, what prototypes are built from)
    and the logits; ``deep(shallow(x), f)`` must equal ``forward(x, f)``.

    A model with only ``forward`` can be trained with ``feature_mix=False`` and
    ``align=False``.
    """

    deep_channels: int

    def __call__(self, clip: Tensor, flow_prev: Tensor | None = None) -> Tensor: ...

    def shallow(self, clip: Tensor) -> Tensor: ...

    def deep(
        self, shallow_feats: Tensor, flow_prev: Tensor | None = None
    ) -> tuple[Tensor, Tensor]: ...


class StepOutput(NamedTuple):
    """One training step of a method.

    Attributes:
        loss: the scalar loss to back-propagate (float32, with grad).
        logs: detached tensors to log: scalar losses (``src``, ``s2t``, ``t2s``,
            ``f_s2t``, ``f_t2s``, ``align``, ``tgt_sup``, ``loss``), the confident
            fraction of the pseudo-labels ``pl_conf`` and their class histogram
            ``pl_hist`` ``(K,)``. Reading them is the only host sync.
    """

    loss: Tensor
    logs: dict[str, Tensor]


class LastMix(NamedTuple):
    """The inputs and output of the last step's clip mix (for pictures), detached."""

    source_clip: Tensor
    source_label: Tensor
    target_clip: Tensor
    pseudo_label: Tensor
    mix: ClipMixOutput


def check_batch(batch: Any, name: str, need_label: bool) -> dict[str, Tensor]:
    """Check a batch ``dict`` (``clip``, ``label``, optional ``flow_prev``) and return it.

    Raises:
        TypeError: not a dict, or a field of the wrong dtype.
        ValueError: a missing field, or shapes that do not match ``clip``.
    """
    if not isinstance(batch, dict):
        raise TypeError(
            f"{name}: expected a dict with 'clip' (B, T, 3, H, W) and 'label' (B, T, H, W), "
            f"got {type(batch).__name__}"
        )
    if "clip" not in batch:
        raise ValueError(f"{name}: expected a 'clip' entry (B, T, 3, H, W), got keys {list(batch)}")
    clip = check_float(batch["clip"], f"{name}['clip']", ("B T 3 H W",))
    if clip.shape[2] != 3:
        raise ValueError(f"{name}['clip']: expected (B, T, 3, H, W), got {describe(clip)}")
    B, T, _, H, W = clip.shape
    if need_label:
        if "label" not in batch:
            raise ValueError(
                f"{name}: expected a 'label' entry (B, T, H, W) long, got keys {list(batch)}"
            )
        label = check_long(batch["label"], f"{name}['label']", ("B T H W",))
        if tuple(label.shape) != (B, T, H, W):
            raise ValueError(
                f"{name}['label']: expected {(B, T, H, W)} (the clip's B, T, H, W), "
                f"got {describe(label)}"
            )
    flow = batch.get("flow_prev")
    if flow is not None:
        check_float(flow, f"{name}['flow_prev']", ("B T 2 H W",))
        if tuple(flow.shape) != (B, T, 2, H, W):
            raise ValueError(
                f"{name}['flow_prev']: expected {(B, T, 2, H, W)}, got {describe(flow)}"
            )
    return batch
