"""Train a video UDA segmenter with DA-STC (or a baseline) and report target mIoU.

Default: the built-in synthetic source → target driving clips, the tiny temporal
segmenter, a few minutes on a laptop CPU::

    python examples/train_video_uda.py                       # DA-STC, writes runs/dastc
    python examples/train_video_uda.py --method source_only  # lower bound
    python examples/train_video_uda.py --method oracle       # trained on target labels
    python examples/train_video_uda.py --method image_dacs   # per-frame image UDA baseline
    python examples/train_video_uda.py --no-align --no-feature-mix   # ablations
    python examples/train_video_uda.py --preset official     # the public code's settings

Real benchmarks (see the docs for the folder layouts)::

    python examples/train_video_uda.py --source viper --source-root /data/viper \\
        --target cityscapes_seq --target-root /data/cityscapes --size 512 1024 --iters 40000

The method's options (``--ema`` ... ``--no-class-balance``) are the fields of
``dastc.methods.MethodConfig``; the methods are ``dastc.methods.METHODS``.
"""

from __future__ import annotations

import argparse
import sys
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from uda_config import PRESETS, Config
from uda_data import DataSpec
from uda_optim import AMP, OPTIMIZERS
from uda_training import train

from dastc.data.check import IMAGE_SOURCES, IMAGE_TARGETS, VIDEO_SOURCES, VIDEO_TARGETS
from dastc.methods import METHODS, PUBLIC_TAIL_CLASSES, MethodConfig

ABLATIONS = MethodConfig.ablations()


def _dataset(name: str) -> str:
    return name.replace("-", "_")  # cityscapes-seq and cityscapes_seq alike


def _add_method_options(p: argparse.ArgumentParser) -> None:
    """One option per field of MethodConfig that has command-line help."""
    hints = typing.get_type_hints(MethodConfig)
    for f in fields(MethodConfig):
        if "help" not in f.metadata:
            continue
        flag, default = f"--{f.name.replace('_', '-')}", f.default
        if "ablation" in f.metadata:
            p.add_argument(f"--no-{flag[2:]}", dest=f.name, action="store_false",
                           help=f"switch off {f.metadata['ablation']}")  # fmt: skip
        elif isinstance(default, bool):
            off = f"--no-{flag[2:]}"
            p.add_argument(*((off,) if default else (flag,)), dest=f.name,
                           action="store_false" if default else "store_true",
                           help=f.metadata["help"])  # fmt: skip
        elif typing.get_origin(hints[f.name]) is typing.Literal:
            p.add_argument(flag, choices=typing.get_args(hints[f.name]), default=default,
                           help=f.metadata["help"])  # fmt: skip
        else:
            p.add_argument(flag, type=type(default), default=default, help=f.metadata["help"])


def parse_args(
    argv: list[str] | None = None, clip_len: int = 2
) -> tuple[Config, Path, Path | None, bool]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    d = Config()
    p.add_argument("--method", choices=list(METHODS), default=d.method)
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="default",
        help="official: the public DA-STC code's method settings (MethodConfig.official(), "
        "its tail classes for viper/synthia_seq) as the defaults of the method's options; "
        "viper-cnn, synthia-cnn, viper-vit, synthia-vit: those and the public code's "
        "training recipe for that benchmark and model (options given still win)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<method>)")
    p.add_argument(
        "--resume", type=Path, default=None, help="resume from a run folder or checkpoint"
    )
    p.add_argument("--iters", type=int, default=d.iters)
    p.add_argument("--batch", type=int, default=d.batch, help="clips per domain per iteration")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                   help="adamw, or sgd with momentum 0.9 (the public CNN recipe)")  # fmt: skip
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--head-lr-mult", type=float, default=d.head_lr_mult,
                   help="lr multiple of the decoder / head (public code: 10)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up iterations")
    p.add_argument("--amp", choices=AMP, default=d.amp,
                   help="mixed precision (fp16 with a gradient scaler)")  # fmt: skip
    p.add_argument("--workers", type=int, default=None,
                   help="data-loading processes (default: 0 for the synthetic clips, "
                   "else up to 4)")  # fmt: skip
    p.add_argument(
        "--rare-below",
        type=float,
        default=d.rare_below,
        help="source classes rarer than this pixel share are always pasted (0: off)",
    )
    p.add_argument(
        "--rcs",
        type=float,
        default=d.rcs,
        help="rare class sampling of the source clips with this temperature (DAFormer: "
        "0.01; 0: off); the class statistics are cached in the output folder",
    )
    p.add_argument(
        "--rcs-min-pixels",
        type=int,
        default=None,
        help="rare class sampling draws a clip for a class only when it has more pixels "
        "of it than this (default: 0.15%% of a source clip's pixels, DAFormer's 3000 of "
        "1914x1052)",
    )
    _add_method_options(p)
    p.add_argument(
        "--model",
        default=d.model,
        help="'tiny' (the built-in temporal segmenter) or smp:<arch>:<encoder> "
        "(segmentation-models-pytorch, e.g. smp:deeplabv3plus:resnet101; no download)",
    )
    p.add_argument(
        "--model-weights",
        default=None,
        help="local state-dict file for an smp model or its encoder (e.g. torchvision ResNet)",
    )
    p.add_argument("--width", type=int, default=d.width, help="tiny model width")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--size", type=int, nargs=2, default=list(d.data.size), metavar=("H", "W"))
    p.add_argument("--clip-len", type=int, default=clip_len)
    p.add_argument("--source-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="source frames read at this size (default --size)")  # fmt: skip
    p.add_argument("--crop", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="random crop of the source clips, drawn per clip")  # fmt: skip
    p.add_argument("--crop-scale", type=float, nargs=2, default=[1.0, 1.0],
                   metavar=("MIN", "MAX"), help="random rescale before the crop")  # fmt: skip
    p.add_argument("--flip", type=float, default=0.0,
                   help="probability of a horizontal flip of a cropped clip")  # fmt: skip
    p.add_argument("--crop-target", action="store_true",
                   help="crop (rescale, flip) the target clips too")  # fmt: skip
    p.add_argument("--train-clips", type=int, default=d.data.train_clips)
    p.add_argument("--val-clips", type=int, default=d.data.val_clips)
    p.add_argument(
        "--shift",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one field of the default synthetic target shift (repeatable)",
    )
    images = clip_len == 1  # train_image_uda.py: the image benchmarks too
    sources = ("synthetic", *VIDEO_SOURCES, *(IMAGE_SOURCES if images else ()))
    targets = ("synthetic", *VIDEO_TARGETS, *(IMAGE_TARGETS if images else ()))
    p.add_argument("--source", default="synthetic", type=_dataset, choices=sources)
    p.add_argument("--target", default="synthetic", type=_dataset, choices=targets)
    p.add_argument("--source-root")
    p.add_argument("--target-root")
    p.add_argument(
        "--source-list",
        help="public split list of the source's labelled frames (DA-VSN/TPS train.txt); "
        "the public VIPER flows and labels cover only those",
    )
    p.add_argument("--flow", choices=("exact", "dis"), default="exact",
                   help="synthetic data: the renderer's exact flow, or flow estimated "
                   "from the frames with OpenCV's DIS (the flow extra)")  # fmt: skip
    p.add_argument("--source-flow-root")
    p.add_argument("--target-flow-root")
    p.add_argument("--eval-window", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="sliding-window evaluation: H x W windows, logits averaged where they "
                   "overlap (mmseg slide_inference)")  # fmt: skip
    p.add_argument("--eval-stride", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="stride of --eval-window (default: half the window)")  # fmt: skip
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--on-nan", choices=("stop", "skip"), default=d.on_nan)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--render-workers", type=int, default=2, help="processes rendering the synthetic clips"
    )
    p.add_argument("--no-progress", action="store_true")
    preset = p.parse_known_args(argv)[0].preset
    if preset != "default":
        p.set_defaults(**MethodConfig.official_knobs(), **PRESETS[preset])
    a = p.parse_args(argv)

    shift: dict[str, float] = {}
    for kv in a.shift:
        key, _, val = kv.partition("=")
        try:
            shift[key.strip()] = float(val)
        except ValueError:
            p.error(f"--shift: expected KEY=VALUE with a number, got {kv!r}")
    from dastc.data import Shift

    known = {f.name for f in fields(Shift)}
    unknown = set(shift) - known
    if unknown:
        p.error(f"--shift: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    try:
        data = DataSpec(
            source=a.source,
            target=a.target,
            source_root=a.source_root,
            target_root=a.target_root,
            source_flow_root=a.source_flow_root,
            source_list=a.source_list,
            target_flow_root=a.target_flow_root,
            size=(a.size[0], a.size[1]),
            clip_len=a.clip_len,
            train_clips=a.train_clips,
            val_clips=a.val_clips,
            seed=a.seed,
            shift=shift or None,
            flow=a.flow,
            source_size=None if a.source_size is None else (a.source_size[0], a.source_size[1]),
            crop=None if a.crop is None else (a.crop[0], a.crop[1]),
            crop_scale=(a.crop_scale[0], a.crop_scale[1]),
            flip=a.flip,
            crop_target=a.crop_target,
            eval_window=None if a.eval_window is None else (a.eval_window[0], a.eval_window[1]),
            eval_stride=None if a.eval_stride is None else (a.eval_stride[0], a.eval_stride[1]),
        )
    except ValueError as e:
        p.error(str(e))
    knobs: dict[str, Any] = {f.name: getattr(a, f.name) for f in fields(MethodConfig)
                             if "help" in f.metadata}  # fmt: skip
    if a.preset != "default":
        knobs["rare_classes"] = PUBLIC_TAIL_CLASSES.get(a.source, ())
    try:
        method_config = MethodConfig(**knobs)
    except ValueError as e:
        p.error(str(e))
    cfg = Config(
        method=a.method,
        preset=a.preset,
        method_config=method_config,
        iters=a.iters,
        batch=a.batch,
        lr=a.lr,
        weight_decay=a.weight_decay,
        optimizer=a.optimizer,
        head_lr_mult=a.head_lr_mult,
        warmup=a.warmup,
        amp=a.amp,
        workers=a.workers,
        rare_below=a.rare_below,
        rcs=a.rcs,
        rcs_min_pixels=a.rcs_min_pixels,
        model=a.model,
        model_weights=a.model_weights,
        width=a.width,
        data=data,
        seed=a.seed,
        eval_every=a.eval_every,
        ckpt_every=a.ckpt_every,
        log_every=a.log_every,
        on_nan=a.on_nan,
        threads=a.threads,
        device=a.device,
        render_workers=a.render_workers,
    )
    out = a.out or Path("runs") / a.method
    return cfg, out, a.resume, not a.no_progress


def main(argv: list[str] | None = None, clip_len: int = 2) -> dict[str, object]:
    cfg, out, resume, progress = parse_args(argv, clip_len)
    res = train(cfg, out, resume=resume, progress=progress)
    if "miou" in res and res.get("rank", 0) == 0:
        more = "".join(
            f"; over {len(v['mean_over'])} classes {v['miou']:.1f} / {v['miou_teacher']:.1f}"
            for k, v in res.items()
            if k.startswith("scoring_") and isinstance(v, dict)
        )
        print(
            f"{cfg.method}: target mIoU {res['miou']:.1f} (student), {res['miou_teacher']:.1f} "
            f"(EMA teacher){more} after {res['iters']} iterations in {res['seconds']:.0f} s"
        )
        print(f"results: {out / 'results.json'}; pictures: {out}/*.png; log: {out / 'log.txt'}")
    return res


if __name__ == "__main__":
    main()
