"""Measure how large the built-in synthetic domain shift is for the example's model.

Trains :class:`TinySegmenter` twice with the same budget, once on source labels
(source-only) and once on target labels (the oracle), and evaluates both on the
target validation clips. A useful benchmark shift has a large gap
``oracle - source_only`` and a source-only score well above zero, so that
adaptation has something to recover.

    OMP_NUM_THREADS=1 python examples/shift_check.py --seed 0

Options choose the budget (``--iters``, ``--batch``, ``--lr``, ``--threads``) and
override fields of the default target shift (``--hue 60 --blur 0`` ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

import torch
import torch.nn.functional as F
from tiny_segmenter import TinySegmenter
from torch import Tensor, nn

from dastc.data import DEFAULT_TARGET_SHIFT, Shift, SyntheticDrivingClips
from dastc.metrics import ConfusionMatrix


def materialise(ds: SyntheticDrivingClips) -> tuple[Tensor, Tensor]:
    """Render every clip of ``ds`` once: ``(N, T, 3, H, W)`` clips, ``(N, T, H, W)`` labels."""
    items = [ds[i] for i in range(len(ds))]
    clips = torch.stack([it["clip"] for it in items])  # type: ignore[misc]
    labels = torch.stack([it["label"] for it in items])  # type: ignore[misc]
    return clips, labels


def train(clips: Tensor, labels: Tensor, iters: int, batch: int, lr: float, seed: int) -> nn.Module:
    """Train a fresh TinySegmenter with Adam and per-pixel cross-entropy."""
    torch.manual_seed(seed)
    model = TinySegmenter(SyntheticDrivingClips.NUM_CLASSES)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed + 1)
    model.train()
    for _ in range(iters):
        idx = torch.randint(0, clips.shape[0], (batch,), generator=g)
        logits = model(clips[idx])
        loss = F.cross_entropy(logits.flatten(0, 1), labels[idx].flatten(0, 1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def evaluate(
    model: nn.Module, clips: Tensor, labels: Tensor, batch: int = 8
) -> tuple[Tensor, float]:
    """Per-class IoU (float64 ``(K,)``, NaN for absent classes) and mIoU on ``clips``."""
    model.eval()
    cm = ConfusionMatrix(SyntheticDrivingClips.NUM_CLASSES)
    for i in range(0, clips.shape[0], batch):
        cm.update(model(clips[i : i + batch]).argmax(2), labels[i : i + batch])
    iou, miou = cm.compute()
    return iou, float(miou)


@torch.no_grad()
def train_eval_gap(model: nn.Module, clips: Tensor) -> float:
    """Max |logits(train mode) - logits(eval mode)| (0 for a GroupNorm model)."""
    model.train()
    a = model(clips)
    model.eval()
    b = model(clips)
    return float((a - b).abs().max())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    d = DEFAULT_TARGET_SHIFT
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="data and training seed")
    p.add_argument("--train-clips", type=int, default=512)
    p.add_argument("--val-clips", type=int, default=96)
    p.add_argument("--clip-len", type=int, default=2)
    p.add_argument("--methods", default="source_only,oracle")
    for f in dataclasses.fields(Shift):
        p.add_argument(
            f"--{f.name if f.name != 'seed' else 'shift-seed'}",
            type=type(getattr(d, f.name)),
            default=getattr(d, f.name),
        )
    p.add_argument("--json", default=None, help="write the results to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shift = Shift(
        **{
            f.name: getattr(args, f.name if f.name != "seed" else "shift_seed")
            for f in dataclasses.fields(Shift)
        }
    )
    size = (64, 128)
    kw: dict[str, Any] = {"clip_len": args.clip_len, "size": size, "seed": args.seed}

    t0 = time.perf_counter()
    val = materialise(SyntheticDrivingClips("target", "val", args.val_clips, shift=shift, **kw))
    data = {
        "source_only": ("source", None),
        "oracle": ("target", shift),
    }
    print(f"shift: {shift}")
    print(
        f"budget: {args.iters} iterations, batch {args.batch} clips of T={args.clip_len} at "
        f"{size[0]}x{size[1]}, Adam lr {args.lr}, {args.threads} thread(s), seed {args.seed}"
    )
    results: dict[str, Any] = {"shift": dataclasses.asdict(shift), "args": vars(args)}
    for method in args.methods.split(","):
        domain, sh = data[method]
        train_set = SyntheticDrivingClips(domain, "train", args.train_clips, shift=sh, **kw)
        t1 = time.perf_counter()
        clips, labels = materialise(train_set)
        t2 = time.perf_counter()
        model = train(clips, labels, args.iters, args.batch, args.lr, args.seed)
        t3 = time.perf_counter()
        iou, miou = evaluate(model, *val)
        _, miou_src = evaluate(
            model, *materialise(SyntheticDrivingClips(domain, "val", 32, shift=sh, **kw))
        )
        gap = train_eval_gap(model, val[0][:4])
        results[method] = {
            "miou": miou,
            "iou": iou.tolist(),
            "train_s": t3 - t2,
            "render_s": t2 - t1,
            "train_eval_max_abs_diff": gap,
            "miou_own_domain_val": miou_src,
        }
        print(
            f"\n{method}: target val mIoU {100 * miou:.1f}  (own-domain val {100 * miou_src:.1f}; "
            f"train {t3 - t2:.0f} s, render {t2 - t1:.1f} s; |train-eval| {gap:.1e})"
        )
        print(
            "  "
            + "  ".join(
                f"{c} {100 * v:.1f}"
                for c, v in zip(SyntheticDrivingClips.CLASSES, iou.tolist(), strict=True)
            )
        )
    if "source_only" in results and "oracle" in results:
        gap_miou = 100 * (results["oracle"]["miou"] - results["source_only"]["miou"])
        results["gap"] = gap_miou
        total = time.perf_counter() - t0
        print(f"\noracle - source_only = {gap_miou:.1f} mIoU  (total {total:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
