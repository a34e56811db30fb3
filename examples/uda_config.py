"""What defines a run of the UDA example, and the models it can train.

:class:`Config` holds the program's settings (data, model, schedule, files) and,
in ``method_config``, the method's own knobs (:class:`dastc.methods.MethodConfig`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from uda_data import DataSpec
from uda_optim import AMP, OPTIMIZERS

from dastc.methods import METHODS, MethodConfig

#: ``--preset``: ``official`` sets the public DA-STC code's method settings
#: (``MethodConfig.official()``); the others add the public code's training recipe
#: (``docs/guides/real-benchmarks.md``, the settings table) for one benchmark and
#: model family. Each maps program options to their values; the method's knobs
#: come from ``MethodConfig.official()``.
_CNN = {"optimizer": "sgd", "weight_decay": 5e-4, "head_lr_mult": 10.0, "warmup": 0,
        "model": "smp:deeplabv3plus:resnet101"}  # fmt: skip
_VIT = {"optimizer": "adamw", "weight_decay": 0.01, "head_lr_mult": 10.0, "warmup": 1500,
        "lr": 6e-5, "model": "smp:segformer:mit_b5"}  # fmt: skip
_REAL = {"target": "cityscapes_seq", "iters": 40000, "batch": 1, "size": [512, 1024],
         "crop": [512, 1024]}  # fmt: skip
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "official": {},
    "viper-cnn": {**_REAL, **_CNN, "source": "viper", "source_size": [720, 1280], "lr": 1e-4},
    "synthia-cnn": {
        **_REAL,
        **_CNN,
        "source": "synthia_seq",
        "source_size": [640, 1280],
        "lr": 2.5e-4,
    },
    "viper-vit": {**_REAL, **_VIT, "source": "viper", "source_size": [720, 1280]},
    "synthia-vit": {**_REAL, **_VIT, "source": "synthia_seq", "source_size": [640, 1280]},
}


@dataclass
class Config:
    """Everything that defines a run; saved in results.json and in checkpoints."""

    method: str = "dastc"
    preset: str = "default"  # "official": MethodConfig.official() and the public tail classes
    method_config: MethodConfig = field(default_factory=MethodConfig)
    iters: int = 1200
    batch: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # or "sgd" (momentum 0.9)
    head_lr_mult: float = 1.0  # decoder / head at this multiple of lr
    warmup: int = 0  # linear warm-up iterations
    amp: str = "off"  # "bf16" or "fp16" (with a gradient scaler)
    workers: int | None = None  # data-loading processes; None: 0 synthetic, else up to 4
    rare_below: float = 0.0
    rcs: float = 0.0  # rare class sampling temperature (DAFormer: 0.01); 0: off
    rcs_min_pixels: int | None = None  # None: 0.15% of a source clip's pixels
    model: str = "tiny"
    model_weights: str | None = None
    width: int = 32
    data: DataSpec = field(default_factory=DataSpec)
    seed: int = 0
    eval_every: int = 300
    log_every: int = 25
    ckpt_every: int = 300
    on_nan: str = "stop"
    threads: int = 0
    device: str = "cpu"
    render_workers: int = 2

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset: expected one of {list(PRESETS)}, got {self.preset!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.amp not in AMP:
            raise ValueError(f"amp: expected one of {AMP}, got {self.amp!r}")
        if not (self.head_lr_mult > 0 and self.warmup >= 0):
            raise ValueError(
                f"head_lr_mult, warmup: expected > 0 and >= 0, got {self.head_lr_mult}, "
                f"{self.warmup}"
            )
        if not (math.isfinite(self.rcs) and self.rcs >= 0):
            raise ValueError(f"rcs: expected a temperature >= 0 (0: off), got {self.rcs}")
        if self.rcs_min_pixels is not None and self.rcs_min_pixels < 0:
            raise ValueError(f"rcs_min_pixels: expected None or >= 0, got {self.rcs_min_pixels}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers: expected None or >= 0, got {self.workers}")
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {list(METHODS)}, got {self.method!r}")
        if isinstance(self.data, dict):
            d = dict(self.data)
            d["size"] = tuple(d["size"])
            self.data = DataSpec(**d)
        if isinstance(self.method_config, dict):
            self.method_config = MethodConfig(**self.method_config)

    @property
    def adapts(self) -> bool:
        return METHODS[self.method].adapts


def build_model(cfg: Config, num_classes: int, init_weights: bool = True) -> nn.Module:
    """The example's segmenter: ``--model tiny`` (the built-in temporal model) or
    ``--model smp:<arch>:<encoder>`` (a segmentation-models-pytorch model; see
    ``smp_segmenter.py``), initialised from ``cfg.model_weights`` when
    ``init_weights`` (a run restored from a checkpoint does not need them).

    Any :class:`dastc.methods.TwoStageSegmenter` can be dropped in here:
    ``forward(clip, flow_prev=None)``, ``shallow(clip)`` and
    ``deep(shallow_feats, flow_prev=None) -> (deep_feats, logits)``, plus a
    ``deep_channels`` attribute.
    """
    if cfg.model == "tiny":
        from tiny_segmenter import TinySegmenter

        if cfg.model_weights is not None:
            raise SystemExit("--model-weights: only for --model smp:<arch>:<encoder>")
        w = cfg.width
        return TinySegmenter(num_classes, widths=(w // 2, w, 2 * w), deep_channels=3 * w // 2)
    if cfg.model.startswith("smp:"):
        from smp_segmenter import SmpSegmenter, parse_smp_name

        try:
            arch, encoder = parse_smp_name(cfg.model)
            weights = cfg.model_weights if init_weights else None
            # frozen encoder BatchNorm whenever pretrained weights are (or were) loaded
            model: Any = SmpSegmenter(
                arch, encoder, num_classes, weights, freeze_bn=cfg.model_weights is not None
            )
        except (ImportError, ValueError) as e:
            raise SystemExit(f"--model {cfg.model}: {e}") from e
        h, w = cfg.data.size
        if h % model.output_stride or w % model.output_stride:
            raise SystemExit(
                f"--size: {cfg.model} needs a height and width divisible by "
                f"{model.output_stride}, got {h} {w}"
            )
        return model  # type: ignore[no-any-return]
    raise SystemExit(
        f"--model: expected 'tiny' or 'smp:<arch>:<encoder>' (see build_model for adding "
        f"your own), got {cfg.model!r}"
    )
