"""Accuracy and throughput of dastc's optical-flow estimation (``dastc.flow_estimation``).

Prints, for each available backend (DIS, zero flow, exact), the average end-point
error against the exact ``flow_prev`` of the synthetic clips and the label warp
agreement (share of valid pixels whose label survives warping the previous frame's
label with the flow), on the source clips and the default-shift target clips; then
the flow command's throughput (frames per second per worker).

    python benchmarks/flow_accuracy.py [--clips 32] [--picture docs/img/flow_estimation.png]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dastc.data import SyntheticDrivingClips
from dastc.data.flow import FlowJob, write_flows
from dastc.flow import flow_validity, warp
from dastc.flow_estimation import estimate_flow

SIZES = ((64, 128), (256, 512))


def _pairs(domain: str, n: int, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    ds = SyntheticDrivingClips(domain, "val", length=n, size=size)  # type: ignore[arg-type]
    items = [ds[i] for i in range(n)]
    return {
        "cur": torch.stack([it["clip"][1] for it in items]),  # type: ignore[index]
        "prev": torch.stack([it["clip"][0] for it in items]),  # type: ignore[index]
        "exact": torch.stack([it["flow_prev"][1] for it in items]),  # type: ignore[index]
        "label": torch.stack([it["label"] for it in items]),  # type: ignore[misc]
    }


def scores(flow: torch.Tensor, d: dict[str, torch.Tensor]) -> tuple[float, float]:
    valid = flow_validity(d["exact"])
    epe = (flow - d["exact"]).norm(dim=1)[valid].mean().item()
    warped = warp(d["label"][:, 0], flow, "nearest", fill=255)
    return epe, (warped == d["label"][:, 1])[valid].float().mean().item()


def accuracy(n: int) -> None:
    print("| domain | size | backend | EPE (px) | label warp agreement | ms / frame |")
    print("|---|---|---|---|---|---|")
    for size in SIZES:
        for domain in ("source", "target"):
            d = _pairs(domain, n, size)
            start = time.perf_counter()
            dis = estimate_flow(d["cur"], d["prev"])
            ms = 1000 * (time.perf_counter() - start) / n
            for name, flow, t in (
                ("DIS", dis, f"{ms:.1f}"),
                ("zero", torch.zeros_like(d["exact"]), "-"),
                ("exact", d["exact"], "-"),
            ):
                epe, agree = scores(flow, d)
                print(
                    f"| {domain} | {size[0]}x{size[1]} | {name} | {epe:.2f} | {agree:.3f} | {t} |"
                )


def throughput(n_frames: int = 12) -> None:
    print("\n| size | workers | frames / s / worker |")
    print("|---|---|---|")
    for size in ((512, 1024), (64, 128)):
        ds = SyntheticDrivingClips("source", "val", length=1, clip_len=n_frames, size=size)
        clip = ds[0]["clip"]  # type: ignore[index]
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            paths = []
            for t in range(n_frames):
                img = clip[t].permute(1, 2, 0).mul(255).round().byte().numpy()  # type: ignore[union-attr]
                paths.append(root / f"{t:04d}.png")
                Image.fromarray(img).save(paths[-1])
            for workers in (1,):  # more workers: same per-worker rate, plus ~2 s spawn start-up
                out = root / f"flow{workers}"
                jobs = [
                    FlowJob(out / f"{c.stem}_int16_x10.npy", c, p)
                    for p, c in itertools.pairwise(paths)
                ]
                start = time.perf_counter()
                write_flows(jobs, workers=workers, progress=False)
                fps = len(jobs) / (time.perf_counter() - start) / workers
                print(f"| {size[0]}x{size[1]} | {workers} | {fps:.1f} |")


def picture(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = _pairs("target", 1, (256, 512))
    dis = estimate_flow(d["cur"], d["prev"])
    exact = d["exact"]
    err = (dis - exact).norm(dim=1)[0]
    lim = float(exact.abs().max())
    fig, axes = plt.subplots(2, 3, figsize=(13, 4.6))
    panels = [
        (d["cur"][0].permute(1, 2, 0), "frame t (target)", {}),
        (dis[0, 0], "DIS dx (px)", {"cmap": "RdBu", "vmin": -lim, "vmax": lim}),
        (exact[0, 0], "exact dx (px)", {"cmap": "RdBu", "vmin": -lim, "vmax": lim}),
        (d["prev"][0].permute(1, 2, 0), "frame t-1", {}),
        (dis[0, 1], "DIS dy (px)", {"cmap": "RdBu", "vmin": -lim, "vmax": lim}),
        (
            err,
            f"end-point error (mean {err.mean():.2f} px)",
            {"cmap": "magma", "vmin": 0, "vmax": 5},
        ),
    ]
    for ax, (img, title, kw) in zip(axes.flat, panels, strict=True):
        im = ax.imshow(np.asarray(img), **kw)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        if kw:
            fig.colorbar(im, ax=ax, fraction=0.025)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--picture", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    accuracy(args.clips)
    if not args.no_throughput:
        throughput()
    if args.picture is not None:
        picture(args.picture)


if __name__ == "__main__":
    main()
