"""MethodConfig: every knob of the whole method and its baselines, in one dataclass."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = ["MethodConfig"]


def _knob(default: Any, help: str, ablation: str | None = None) -> Any:
    """A field with its command-line help (and, for a component switch, what it switches)."""
    meta: dict[str, str] = {"help": help}
    if ablation is not None:
        meta["ablation"] = ablation
    return field(default=default, metadata=meta)


@dataclass
class MethodConfig:
    """The knobs of :class:`~dastc.methods.DASTC` and its baselines (defaults: the example's).

    Fields with a ``help`` in their metadata are the example's command-line
    options (``--pseudo-threshold``, ``--no-align``, ...); the component switches
    (metadata ``ablation``) are the rows of the ablation table, listed by
    :meth:`ablations`. A config round-trips through ``dataclasses.asdict`` and
    JSON (``MethodConfig(**d)``).

    Example:
        >>> MethodConfig(align=False).align_weight
        0.1
        >>> "feature_mix" in MethodConfig.ablations()
        True
    """

    ema: float = _knob(0.99, "EMA teacher momentum (DACS warm-up of the momentum)")
    pseudo_threshold: float = _knob(0.968, "confidence threshold of the pseudo-label weight")
    pseudo_weight: Literal["clip", "pixel"] = _knob(
        "clip",
        "weight of target pixels: the clip's confident fraction (DACS) or 1 where confident",
    )
    class_fraction: float = _knob(0.5, "share of the present classes each clip mix pastes")
    rare_classes: tuple[int, ...] = field(default=())  # pasted whenever a source clip has them
    hue_jitter: float = _knob(0.0, "strong-aug hue range in turns (DACS: 0.1)")
    align_weight: float = _knob(0.1, "weight of the prototype alignment loss")
    align_kind: Literal["infonce", "mmd"] = _knob("infonce", "prototype alignment loss")
    align_temperature: float = _knob(0.1, "InfoNCE temperature / MMD bandwidth scale")
    align_memory: bool = _knob(True, "align to the source prototype memory, not the batch's")
    feature_blend: float = _knob(1.0, "weight of the pasted features inside the mask (1: paste)")
    dist_align: bool = _knob(
        False, "align the teacher's class distribution to the source's (ReMixMatch-style)"
    )
    adapt_start: int = _knob(300, "source-only iterations first (the teacher warms up)")
    clip_mix: bool = _knob(True, "", "sequence-level bidirectional clip mix")
    s2t: bool = _knob(True, "", "the source→target direction (clip and feature mix)")
    t2s: bool = _knob(True, "", "the target→source direction (clip and feature mix)")
    feature_mix: bool = _knob(True, "", "shallow-feature mix")
    align: bool = _knob(True, "", "prototype alignment loss")
    temporal: bool = _knob(True, "", "flow-based temporal fusion of the previous frame")
    adaptive_weights: bool = _knob(True, "", "confidence × frame-reliability prototype weights")
    strong_aug: bool = _knob(True, "", "colour jitter and blur on mixed clips")
    class_balance: bool = _knob(
        True, "", "class-balanced pseudo-labels (per-class running confidence)"
    )
    seed: int = field(default=0)  # the mixing generator's seed
    ignore_index: int = field(default=255)

    def __post_init__(self) -> None:
        self.rare_classes = tuple(int(k) for k in self.rare_classes)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(f.default, bool) != isinstance(v, bool):
                want = "True or False" if isinstance(f.default, bool) else "a number"
                raise TypeError(f"{f.name}: expected {want}, got {v!r}")
        for name in ("ema", "pseudo_threshold", "class_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v <= 1):
                raise ValueError(f"{name}: expected a number in [0, 1], got {v!r}")
        if not (isinstance(self.feature_blend, (int, float)) and 0 < self.feature_blend <= 1):
            raise ValueError(
                f"feature_blend: expected a number in (0, 1], got {self.feature_blend!r}"
            )
        for name in ("hue_jitter", "align_weight"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
        if not (isinstance(self.align_temperature, (int, float)) and self.align_temperature > 0):
            raise ValueError(
                f"align_temperature: expected a number > 0, got {self.align_temperature!r}"
            )
        if self.pseudo_weight not in ("clip", "pixel"):
            raise ValueError(
                f"pseudo_weight: expected 'clip' or 'pixel', got {self.pseudo_weight!r}"
            )
        if self.align_kind not in ("infonce", "mmd"):
            raise ValueError(f"align_kind: expected 'infonce' or 'mmd', got {self.align_kind!r}")
        if not (isinstance(self.adapt_start, int) and self.adapt_start >= 0):
            raise ValueError(f"adapt_start: expected an int >= 0, got {self.adapt_start!r}")
        if any(k < 0 for k in self.rare_classes):
            raise ValueError(f"rare_classes: expected class ids >= 0, got {self.rare_classes!r}")

    @classmethod
    def ablations(cls) -> dict[str, str]:
        """The component switches, ``{field name: what it switches}``, in table order."""
        return {f.name: f.metadata["ablation"] for f in fields(cls) if "ablation" in f.metadata}
