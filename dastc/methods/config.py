"""MethodConfig: every knob of the whole method and its baselines, in one dataclass."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = ["PUBLIC_TAIL_CLASSES", "MethodConfig"]

PUBLIC_TAIL_CLASSES: dict[str, tuple[int, ...]] = {
    "viper": (3, 4, 5, 7, 13, 14),
    "synthia_seq": (3, 4, 5, 6, 10),
}
"""The tail classes that the public DA-STC code always pastes (``class_to_select`` in its
``train_video_DAVSS_DSF_cd_ablation_*.py``), per source dataset, as train ids: VIPER's
fence, traffic light, traffic sign, terrain, motorcycle, bicycle; SYNTHIA-Seq's fence,
pole, traffic light, traffic sign, rider."""

_PUBLIC: dict[str, Any] = {
    "mix_classes": 2,
    "mix_exclude": True,
    "mix_rare_t2s": False,
    "paste_threshold": 0.9,
    "mix_previous_source": True,
    "pseudo_threshold": 0.0,
    "class_balance": False,
    "align_kind": "mmd",
    "align_weight": 0.01,
    "align_memory": False,
    "align_on": "logits",
    "align_source": "correct",
    "align_absent": "zero",
    "prototype_pooling": "frame_mean",
    "prototype_min_pixels": 5,
    "adaptive_weights": False,
}


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
    mix_classes: int = _knob(
        0, "classes each clip mix pastes, instead of --class-fraction (0: off; public code: 2)"
    )
    rare_classes: tuple[int, ...] = field(default=())  # pasted whenever a source clip has them
    mix_rare_t2s: bool = _knob(
        True, "the rare classes are pasted target→source too (the public code: no)"
    )
    mix_exclude: bool = _knob(
        False, "the T→S mix skips the classes the S→T mix drew (the public code)"
    )
    paste_threshold: float = _knob(
        0.0, "T→S pastes only target pixels more confident than this (0: all; public: 0.9)"
    )
    mix_previous_source: bool = _knob(
        False, "the mix pastes the previous step's source clip (the public code)"
    )
    hue_jitter: float = _knob(0.0, "strong-aug hue range in turns (DACS: 0.1)")
    align_weight: float = _knob(0.1, "weight of the prototype alignment loss")
    align_kind: Literal["infonce", "mmd"] = _knob("infonce", "prototype alignment loss")
    align_temperature: float = _knob(0.1, "InfoNCE temperature / MMD bandwidth scale")
    align_memory: bool = _knob(True, "align to the source prototype memory, not the batch's")
    align_on: Literal["deep", "logits"] = _knob(
        "deep", "what the prototypes average: deep features or logits (the public code)"
    )
    align_source: Literal["label", "correct"] = _knob(
        "label",
        "source pixels of the prototypes: every labelled one, or those the student gets "
        "right (the public code)",
    )
    align_absent: Literal["skip", "zero"] = _knob(
        "skip", "MMD: classes absent on a side are left out, or count as zero rows (public)"
    )
    prototype_pooling: Literal["clip", "frame_mean"] = _knob(
        "clip", "one mean over the clips' pixels, or the mean of per-frame prototypes (public)"
    )
    prototype_min_pixels: int = _knob(
        1, "frame_mean: a class with fewer pixels in a frame has no prototype there (public: 5)"
    )
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
    mic: bool = _knob(
        False,
        "masked image consistency (MIC): the student on a block-masked target clip learns "
        "the teacher's pseudo-labels of the whole clip",
    )
    mic_patch: int = _knob(8, "MIC block size in pixels (MIC: 64 at 512x512 crops)")
    mic_ratio: float = _knob(0.7, "MIC: share of the blocks masked out")
    mic_per_frame: bool = _knob(False, "MIC draws a mask per frame (default: one per clip)")
    mic_weight: float = _knob(1.0, "weight of the MIC loss")
    warm_guard: Literal["off", "extend", "warn"] = _knob(
        "off",
        "at the warm start's end, check that no class vanished from the teacher's "
        "pseudo-labels (against the source class shares); extend the warm start or warn",
    )
    warm_guard_floor: float = _knob(
        0.1, "warm guard: a class vanished below this fraction of its source share"
    )
    warm_guard_max: int = _knob(300, "warm guard: most extra warm-start iterations")
    warm_guard_every: int = _knob(
        25, "warm guard: iterations per check (the teacher's labels of that many target batches)"
    )
    seed: int = field(default=0)  # the mixing generator's seed
    #: where the step's random draws (class mix, strong augmentation, MIC masks) come
    #: from: ``"generator"``, the method's own generator seeded with ``seed`` (saved in
    #: the state: bitwise resume; each draw breaks a ``torch.compile`` graph), or
    #: ``"global"``, torch's global generator (``torch.compile`` of the whole step
    #: gives one graph; compiled draws then come from inductor's generator)
    draws: Literal["generator", "global"] = field(default="generator")
    ignore_index: int = field(default=255)

    def __post_init__(self) -> None:
        self.rare_classes = tuple(int(k) for k in self.rare_classes)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(f.default, bool) != isinstance(v, bool):
                want = "True or False" if isinstance(f.default, bool) else "a number"
                raise TypeError(f"{f.name}: expected {want}, got {v!r}")
        for name in (
            "ema",
            "pseudo_threshold",
            "class_fraction",
            "paste_threshold",
            "warm_guard_floor",
        ):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v <= 1):
                raise ValueError(f"{name}: expected a number in [0, 1], got {v!r}")
        if not (isinstance(self.feature_blend, (int, float)) and 0 < self.feature_blend <= 1):
            raise ValueError(
                f"feature_blend: expected a number in (0, 1], got {self.feature_blend!r}"
            )
        for name in ("hue_jitter", "align_weight", "mic_weight"):
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
        choices = {
            "align_on": ("deep", "logits"),
            "align_source": ("label", "correct"),
            "align_absent": ("skip", "zero"),
            "prototype_pooling": ("clip", "frame_mean"),
            "warm_guard": ("off", "extend", "warn"),
            "draws": ("generator", "global"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        if not (isinstance(self.mix_classes, int) and self.mix_classes >= 0):
            raise ValueError(f"mix_classes: expected an int >= 0, got {self.mix_classes!r}")
        if not (isinstance(self.prototype_min_pixels, int) and self.prototype_min_pixels >= 1):
            raise ValueError(
                f"prototype_min_pixels: expected an int >= 1, got {self.prototype_min_pixels!r}"
            )
        if self.prototype_min_pixels > 1 and self.prototype_pooling != "frame_mean":
            raise ValueError(
                f"prototype_min_pixels: {self.prototype_min_pixels} needs "
                f"prototype_pooling='frame_mean', got {self.prototype_pooling!r}"
            )
        for name, lo in (("adapt_start", 0), ("mic_patch", 1), ("warm_guard_max", 0),
                         ("warm_guard_every", 1)):  # fmt: skip
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= lo):
                raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
        if self.warm_guard != "off" and self.adapt_start < 1:
            raise ValueError(
                f"warm_guard: {self.warm_guard!r} needs a warm start to guard "
                f"(adapt_start >= 1), got adapt_start={self.adapt_start}"
            )
        if not (isinstance(self.mic_ratio, (int, float)) and 0 <= self.mic_ratio < 1):
            raise ValueError(f"mic_ratio: expected a number in [0, 1), got {self.mic_ratio!r}")
        if any(k < 0 for k in self.rare_classes):
            raise ValueError(f"rare_classes: expected class ids >= 0, got {self.rare_classes!r}")

    @classmethod
    def official(cls, **overrides: Any) -> MethodConfig:
        """The public DA-STC code's settings, where dastc has them as knobs.

        2 classes per clip mix plus the tail classes (pass ``rare_classes``, e.g.
        ``PUBLIC_TAIL_CLASSES["viper"]``), pasted from the previous step's source
        clip; the T→S mix skips the S→T classes and pastes only pixels of
        confidence > 0.9; unweighted hard pseudo-labels, no class balance;
        alignment: RBF-MMD (weight 0.01) between the batch's source prototypes and
        the frame-averaged target prototypes of the logits, zero rows for absent
        classes and for classes under 5 pixels in a frame, source pixels only
        where the student is right. ``overrides`` replace any of these.

        Example:
            >>> cfg = MethodConfig.official(rare_classes=PUBLIC_TAIL_CLASSES["viper"])
            >>> cfg.mix_classes, cfg.align_kind, cfg.rare_classes
            (2, 'mmd', (3, 4, 5, 7, 13, 14))
        """
        return cls(**{**_PUBLIC, **overrides})

    @staticmethod
    def official_knobs() -> dict[str, Any]:
        """The fields that :meth:`official` sets, with their values (a copy)."""
        return dict(_PUBLIC)

    @classmethod
    def ablations(cls) -> dict[str, str]:
        """The component switches, ``{field name: what it switches}``, in table order."""
        return {f.name: f.metadata["ablation"] for f in fields(cls) if "ablation" in f.metadata}
