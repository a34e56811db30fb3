"""Compare finished runs of the UDA example: mIoU, per-class IoU and pseudo-labels, per group.

Each run folder holds the ``results.json`` that ``train_video_uda.py`` writes. Runs are
grouped by a label (``LABEL=FOLDER[,FOLDER...]``, e.g. one label per method, the seeds
of each as its folders); the program prints, per group, the mean ± SD of the mIoU over
its runs, the mean IoU of each class and the mean final pseudo-label share of each
class (with the source-free confident fraction), and draws the per-class IoUs as
grouped bars::

    python examples/compare_runs.py \\
        image_dacs=runs/image_dacs_s0,runs/image_dacs_s1 dastc=runs/dastc_s0,runs/dastc_s1 \\
        --plot per_class.png --title "default shift"
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any


def load_group(spec: str) -> tuple[str, list[dict[str, Any]]]:
    """``LABEL=F1,F2`` -> the label and the runs' results (folders or results.json files)."""
    if "=" not in spec:
        raise SystemExit(f"group: expected LABEL=FOLDER[,FOLDER...], got {spec!r}")
    label, folders = spec.split("=", 1)
    runs = []
    for f in folders.split(","):
        path = Path(f)
        path = path / "results.json" if path.is_dir() else path
        if not path.is_file():
            raise SystemExit(f"{label}: no results.json at {path} (is the run finished?)")
        runs.append(json.loads(path.read_text()))
    return label, runs


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def summarize(groups: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per group: ``miou`` (mean, SD), ``runs`` (each mIoU), ``iou`` and ``pl_share`` per
    class (means over the runs; a class without an IoU in a run is left out of its mean),
    ``confident`` (mean confident fraction)."""
    out: dict[str, dict[str, Any]] = {}
    for label, runs in groups.items():
        classes = list(runs[0]["per_class_iou"])
        iou = {}
        for c in classes:
            vals = [r["per_class_iou"].get(c) for r in runs]
            got = [v for v in vals if v is not None]
            iou[c] = statistics.fmean(got) if got else math.nan
        hists = [r["pseudo_label_hist"] for r in runs if r.get("pseudo_label_hist")]
        share = [statistics.fmean(h[k] for h in hists) if hists else math.nan
                 for k in range(len(classes))]  # fmt: skip
        conf = [r["pseudo_label_confident_fraction"] for r in runs
                if r.get("pseudo_label_confident_fraction") is not None]  # fmt: skip
        out[label] = {
            "runs": [r["miou"] for r in runs],
            "miou": _mean_sd([r["miou"] for r in runs]),
            "iou": iou,
            "pl_share": dict(zip(classes, share, strict=True)),
            "confident": statistics.fmean(conf) if conf else math.nan,
        }
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    """The summary as Markdown: one row per group, then per-class IoU and share columns."""
    labels = list(summary)
    classes = list(summary[labels[0]]["iou"])
    lines = ["| group | runs | mIoU | " + " | ".join(classes) + " |",
             "|---|---|---|" + "---|" * len(classes)]  # fmt: skip
    for g in labels:
        s = summary[g]
        runs = " / ".join(f"{v:.1f}" for v in s["runs"])
        cells = " | ".join(f"{s['iou'][c]:.1f}" for c in classes)
        lines.append(f"| {g} | {runs} | {s['miou'][0]:.1f} ± {s['miou'][1]:.1f} | {cells} |")
    lines += ["", "Final pseudo-label share of each class (%), and the confident fraction:", "",
              "| group | confident | " + " | ".join(classes) + " |",
              "|---|---|" + "---|" * len(classes)]  # fmt: skip
    for g in labels:
        s = summary[g]
        cells = " | ".join(f"{100 * s['pl_share'][c]:.1f}" for c in classes)
        lines.append(f"| {g} | {s['confident']:.2f} | {cells} |")
    return "\n".join(lines)


def plot(summary: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Grouped bars: the mean IoU of each class, one bar per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(summary)
    classes = list(summary[labels[0]]["iou"])
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(classes), 3.2))
    for i, g in enumerate(labels):
        s = summary[g]
        xs = [k + (i - (len(labels) - 1) / 2) * width for k in range(len(classes))]
        ax.bar(xs, [s["iou"][c] for c in classes], width,
               label=f"{g} ({s['miou'][0]:.1f})")  # fmt: skip
    ax.set_xticks(range(len(classes)), classes, rotation=30)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 112)  # room for the legend above the bars
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=min(len(labels), 4), loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("groups", nargs="+", help="LABEL=FOLDER[,FOLDER...]")
    p.add_argument("--plot", type=Path, default=None, help="PNG of the per-class IoUs")
    p.add_argument("--title", default="", help="the picture's title")
    a = p.parse_args(argv)
    groups = dict(load_group(g) for g in a.groups)
    summary = summarize(groups)
    print(table(summary))
    if a.plot is not None:
        plot(summary, a.plot, a.title)
        print(f"picture: {a.plot}")
    return summary


if __name__ == "__main__":
    main()
