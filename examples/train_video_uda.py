"""Train a video UDA segmenter with DA-STC (or a baseline) and report target mIoU.

Default: the built-in synthetic source → target driving clips, the tiny temporal
segmenter, a few minutes on a laptop CPU::

    python examples/train_video_uda.py                       # DA-STC, writes runs/dastc
    python examples/train_video_uda.py --method source_only  # lower bound
    python examples/train_video_uda.py --method oracle       # trained on target labels
    python examples/train_video_uda.py --method image_dacs   # per-frame image UDA baseline
    python examples/train_video_uda.py --no-align --no-feature-mix   # ablations

Real benchmarks (see the docs for the folder layouts)::

    python examples/train_video_uda.py --source viper --source-root /data/viper \\
        --target cityscapes-seq --target-root /data/cityscapes --size 512 1024 --iters 40000
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from uda_data import DataSpec
from uda_training import METHODS, Config, train

ABLATIONS = {
    "clip_mix": "sequence-level bidirectional clip mix",
    "s2t": "the source→target direction (clip and feature mix)",
    "t2s": "the target→source direction (clip and feature mix)",
    "feature_mix": "shallow-feature mix",
    "align": "prototype alignment loss",
    "temporal": "flow-based temporal fusion of the previous frame",
    "adaptive_weights": "confidence × frame-reliability prototype weights",
    "strong_aug": "colour jitter and blur on mixed clips",
    "class_balance": "class-balanced pseudo-labels (per-class running confidence)",
}


def parse_args(
    argv: list[str] | None = None, clip_len: int = 2
) -> tuple[Config, Path, Path | None, bool]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    d = Config()
    p.add_argument("--method", choices=METHODS, default=d.method)
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<method>)")
    p.add_argument(
        "--resume", type=Path, default=None, help="resume from a run folder or checkpoint"
    )
    p.add_argument("--iters", type=int, default=d.iters)
    p.add_argument("--batch", type=int, default=d.batch, help="clips per domain per iteration")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--ema", type=float, default=d.ema, help="EMA teacher momentum")
    p.add_argument("--pseudo-threshold", type=float, default=d.pseudo_threshold)
    p.add_argument(
        "--pseudo-weight",
        choices=("clip", "pixel"),
        default=d.pseudo_weight,
        help="weight of target pixels: the clip's confident fraction (DACS) or 1 where confident",
    )
    p.add_argument("--class-fraction", type=float, default=d.class_fraction)
    p.add_argument(
        "--hue-jitter",
        type=float,
        default=d.hue_jitter,
        help="strong-aug hue range in turns (DACS: 0.1)",
    )
    p.add_argument(
        "--rare-below",
        type=float,
        default=d.rare_below,
        help="source classes rarer than this pixel share are always pasted (0: off)",
    )
    p.add_argument("--align-weight", type=float, default=d.align_weight)
    p.add_argument("--align-kind", choices=("infonce", "mmd"), default=d.align_kind)
    p.add_argument("--align-temperature", type=float, default=d.align_temperature)
    p.add_argument(
        "--no-align-memory", action="store_true", help="align to batch source prototypes"
    )
    p.add_argument("--feature-blend", type=float, default=d.feature_blend)
    p.add_argument(
        "--dist-align",
        action="store_true",
        help="align the teacher's class distribution to the source's (ReMixMatch-style)",
    )
    p.add_argument(
        "--adapt-start", type=int, default=d.adapt_start, help="source-only iterations first"
    )
    for key, what in ABLATIONS.items():
        p.add_argument(
            f"--no-{key.replace('_', '-')}", action="store_true", help=f"switch off {what}"
        )
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
    p.add_argument("--train-clips", type=int, default=d.data.train_clips)
    p.add_argument("--val-clips", type=int, default=d.data.val_clips)
    p.add_argument(
        "--shift",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one field of the default synthetic target shift (repeatable)",
    )
    p.add_argument("--source", default="synthetic", choices=("synthetic", "viper", "synthia-seq"))
    p.add_argument("--target", default="synthetic", choices=("synthetic", "cityscapes-seq"))
    p.add_argument("--source-root")
    p.add_argument("--target-root")
    p.add_argument("--source-flow-root")
    p.add_argument("--target-flow-root")
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
    data = DataSpec(
        source=a.source,
        target=a.target,
        source_root=a.source_root,
        target_root=a.target_root,
        source_flow_root=a.source_flow_root,
        target_flow_root=a.target_flow_root,
        size=(a.size[0], a.size[1]),
        clip_len=a.clip_len,
        train_clips=a.train_clips,
        val_clips=a.val_clips,
        seed=a.seed,
        shift=shift or None,
    )
    cfg = Config(
        method=a.method,
        iters=a.iters,
        batch=a.batch,
        lr=a.lr,
        ema=a.ema,
        pseudo_threshold=a.pseudo_threshold,
        pseudo_weight=a.pseudo_weight,
        class_fraction=a.class_fraction,
        hue_jitter=a.hue_jitter,
        rare_below=a.rare_below,
        align_weight=a.align_weight,
        align_kind=a.align_kind,
        align_temperature=a.align_temperature,
        align_memory=not a.no_align_memory,
        feature_blend=a.feature_blend,
        adapt_start=a.adapt_start,
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
        dist_align=a.dist_align,
        render_workers=a.render_workers,
        **{k: not getattr(a, f"no_{k}") for k in ABLATIONS},
    )
    out = a.out or Path("runs") / a.method
    return cfg, out, a.resume, not a.no_progress


def main(argv: list[str] | None = None, clip_len: int = 2) -> dict[str, object]:
    cfg, out, resume, progress = parse_args(argv, clip_len)
    res = train(cfg, out, resume=resume, progress=progress)
    if "miou" in res and res.get("rank", 0) == 0:
        print(
            f"{cfg.method}: target mIoU {res['miou']:.1f} (student), {res['miou_teacher']:.1f} "
            f"(EMA teacher) after {res['iters']} iterations in {res['seconds']:.0f} s"
        )
        print(f"results: {out / 'results.json'}; pictures: {out}/*.png; log: {out / 'log.txt'}")
    return res


if __name__ == "__main__":
    main()
