"""Temporal consistency and mIoU of ``examples/predict.py``'s temporal path vs frame by frame.

Trains the example's default model (``examples/train_video_uda.py``, DA-STC on
the synthetic clips; ``--iters`` iterations, the example's default 1200) or
loads a run folder (``--checkpoint RUN``), then segments ``--videos`` synthetic
target val videos of ``--frames`` frames (the run's size, shift and seed) with
:func:`predict.segment_video` three ways:

* ``frame by frame``: ``model(frame)``, no flow (``predict.py --no-temporal``);
* ``temporal, exact flow``: frame ``t`` as the last frame of the clip
  ``(t - 1, t)`` with the renderer's exact ``flow_prev``;
* ``temporal, DIS flow``: the same with the flow estimated by OpenCV's DIS
  (``dastc.flow_estimation.estimate_flow(..., "dis")``; what ``predict.py``
  does on your own videos).

Reported per path:

* ``consistency``: the share of pixels (frames ``t >= 1``, previous position
  inside the frame) whose predicted class equals the previous frame's
  prediction warped by the *exact* flow (nearest), :func:`predict.temporal_consistency`;
  the ground-truth labels' own consistency is printed as the ceiling (it is
  below 1 where the flow's target is occluded);
* ``mIoU``: over every frame of every video (and ``mIoU last``: the last frames
  only, the example's evaluation protocol on clips of ``--frames`` frames);
* ``ms/frame``: segmentation time per frame (flow estimation included).

::

    python benchmarks/predict_consistency.py --iters 600 --keep /tmp/pc_run
    python benchmarks/predict_consistency.py --checkpoint /tmp/pc_run --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import predict  # noqa: E402
from uda_data import _shift  # noqa: E402

import dastc  # noqa: E402
from dastc.data import SyntheticDrivingClips  # noqa: E402


def exact_flow_fn(clip: torch.Tensor, flow_prev: torch.Tensor) -> predict.FlowFn:
    """The renderer's ``flow_prev`` of each frame handed to the flow callable."""

    def fn(frames: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        idx = [next(t for t in range(1, clip.shape[0]) if torch.equal(clip[t], f)) for f in frames]
        return flow_prev[idx]

    return fn


def train_run(out: Path, iters: int | None, extra: list[str]) -> None:
    from train_video_uda import main

    args = ["--out", str(out), "--no-progress", *extra]
    if iters is not None:
        args += ["--iters", str(iters)]
    main(args)


def evaluate(
    run: Path, which: str, videos: int, frames: int, batch: int
) -> dict[str, Any]:  # fmt: skip
    model, cfg, k, _ = predict.load_run(run, which, torch.device("cpu"))
    if cfg.data.source != "synthetic" or cfg.data.target != "synthetic":
        raise SystemExit(f"{run}: needs a run on the synthetic clips")
    size = (int(cfg.data.size[0]), int(cfg.data.size[1]))
    ds = SyntheticDrivingClips(
        "target", "val", videos, clip_len=frames, size=size, seed=cfg.data.seed,
        shift=_shift(cfg.data),
    )  # fmt: skip
    items = [ds[i] for i in range(videos)]
    paths: dict[str, tuple[bool, Any]] = {
        "frame by frame": (False, None),
        "temporal, exact flow": (True, "exact"),
        "temporal, DIS flow": (True, "dis"),
    }
    rows = []
    for name, (temporal, flow) in paths.items():
        cm, cm_last = dastc.ConfusionMatrix(k), dastc.ConfusionMatrix(k)
        agree = seen = 0.0
        secs = 0.0
        for it in items:
            clip, flow_prev, label = it["clip"], it["flow_prev"], it["label"]
            fn = exact_flow_fn(clip, flow_prev) if flow == "exact" else flow
            t0 = time.perf_counter()
            pred = predict.segment_video(model, clip, fn, temporal, size=size, batch=batch)
            secs += time.perf_counter() - t0
            cm.update(pred, label)
            cm_last.update(pred[-1:], label[-1:])
            c, s = _agree_seen(pred, flow_prev)
            agree, seen = agree + c, seen + s
        rows.append({
            "path": name,
            "consistency": agree / max(seen, 1.0),
            "miou": float(cm.compute()[1]) * 100,
            "miou_last": float(cm_last.compute()[1]) * 100,
            "ms_per_frame": secs / (videos * frames) * 1000,
        })  # fmt: skip
    a = s = 0.0
    for it in items:
        c, n = _agree_seen(it["label"], it["flow_prev"])
        a, s = a + c, s + n
    return {
        "run": str(run), "model": which, "method": cfg.method, "iters": cfg.iters,
        "temporal_run": predict.run_is_temporal(cfg), "videos": videos, "frames": frames,
        "size": list(size), "label_consistency": a / max(s, 1.0), "rows": rows,
    }  # fmt: skip


def _agree_seen(pred: torch.Tensor, flow_prev: torch.Tensor) -> tuple[float, float]:
    """Agreeing and counted pixels of :func:`predict.temporal_consistency` (pooled over videos)."""
    from dastc.flow import warp

    warped = warp(pred[:-1], flow_prev[1:], mode="nearest", fill=255)
    seen = warped != 255
    return float(((warped == pred[1:]) & seen).sum()), float(seen.sum())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", type=Path, default=None, help="a run folder to load")
    p.add_argument("--iters", type=int, default=None, help="training iterations (default 1200)")
    p.add_argument("--keep", type=Path, default=None, help="train into this folder (kept)")
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                   help="further train_video_uda.py options (last)")  # fmt: skip
    p.add_argument("--model", choices=("student", "teacher"), default="teacher")
    p.add_argument("--videos", type=int, default=16)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        run = a.checkpoint
        if run is None:
            run = a.keep if a.keep is not None else Path(tmp) / "run"
            t0 = time.perf_counter()
            train_run(run, a.iters, a.train_args)
            print(f"trained {run} in {time.perf_counter() - t0:.0f} s")
        res = evaluate(run, a.model, a.videos, a.frames, a.batch)
    print(
        f"{res['method']} ({res['model']}, {res['iters']} iterations), {res['videos']} target "
        f"videos x {res['frames']} frames at {res['size'][0]}x{res['size'][1]}; "
        f"label consistency under the exact flow: {res['label_consistency']:.4f}"
    )
    print(f"{'path':<22} {'consistency':>11} {'mIoU':>6} {'mIoU last':>9} {'ms/frame':>8}")
    for r in res["rows"]:
        print(
            f"{r['path']:<22} {r['consistency']:>11.4f} {r['miou']:>6.2f} "
            f"{r['miou_last']:>9.2f} {r['ms_per_frame']:>8.1f}"
        )
    if a.json is not None:
        a.json.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
