"""Regenerate the pictures of the documentation from dastc's built-in synthetic data.

    python docs/make_figures.py            # writes docs/img/*.png (about a minute on one core)
    python docs/make_figures.py --out /tmp/img --iters 10   # a quick smoke run

Everything is seeded and single-threaded, so the same versions of torch and
matplotlib on the same machine write the same files.

* ``clips.png``: a source clip and a target clip of
  :class:`dastc.data.SyntheticDrivingClips`, with their labels.
* ``mix.png``: both clips mixed by :class:`dastc.BidirectionalClipMix`, with the
  target's *true* labels standing in for the pseudo-labels, and the masks.
* ``prototypes.png``: 2-D PCA of the per-class prototypes (deep features of
  ``examples/tiny_segmenter.py``'s ``TinySegmenter``) of source and target
  validation clips, computed with their true labels, for a randomly initialised
  model, one trained on source labels only, and one trained on source labels plus
  0.1 × the prototype alignment loss (target prototypes from the model's own
  pseudo-labels with adaptive weights, as in training without target labels).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import dastc
from dastc.data import SyntheticDrivingClips

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from tiny_segmenter import TinySegmenter  # noqa: E402

K = SyntheticDrivingClips.NUM_CLASSES
NAMES = SyntheticDrivingClips.CLASSES
SIZE = (64, 128)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "svg.hashsalt": "dastc"})
    return plt


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=110, metadata={"Software": None})
    print(f"wrote {path}")


def _img(x: Tensor) -> Any:
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def _lab(y: Tensor) -> Any:
    return SyntheticDrivingClips.colorize(y).numpy()


def _batch(ds: SyntheticDrivingClips, indices: list[int]) -> tuple[Tensor, Tensor]:
    items = [ds[i] for i in indices]
    clip = torch.stack([it["clip"] for it in items])  # type: ignore[misc]
    label = torch.stack([it["label"] for it in items])  # type: ignore[misc]
    return clip, label


def clips_and_mix(out: Path) -> None:
    """clips.png and mix.png."""
    plt = _plt()
    src = SyntheticDrivingClips("source", "train", length=8, clip_len=2, size=SIZE)
    tgt = SyntheticDrivingClips("target", "train", length=8, clip_len=2, size=SIZE)
    xs, ys = _batch(src, [1])
    xt, yt = _batch(tgt, [2])

    fig, axes = plt.subplots(2, 4, figsize=(11, 3.3))
    for r, (name, x, y) in enumerate((("source", xs, ys), ("target", xt, yt))):
        for t in range(2):
            axes[r, t].imshow(_img(x[0, t]))
            axes[r, t].set_title(f"{name} clip, frame {t}")
            axes[r, 2 + t].imshow(_lab(y[0, t]))
            axes[r, 2 + t].set_title(f"{name} label, frame {t}")
    for ax in axes.flat:
        ax.axis("off")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=(SyntheticDrivingClips.PALETTE[k] / 255).tolist())
        for k in range(K)
    ]
    fig.legend(handles, NAMES, loc="lower center", ncol=K, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(fig, out / "clips.png")
    plt.close(fig)

    mix = dastc.BidirectionalClipMix(num_classes=K)
    g = torch.Generator().manual_seed(3)
    # The picture uses the target's true labels as its pseudo-labels.
    m = mix(xs, ys, xt, yt, generator=g)

    def pasted(label: Tensor, mask: Tensor) -> str:
        ids = torch.unique(label[mask]).tolist()
        return ", ".join(NAMES[i] for i in ids)

    rows = (
        ("S→T", "source classes on the target clip", m.s2t_clip, m.s2t_mask, ys),
        ("T→S", "target classes on the source clip", m.t2s_clip, m.t2s_mask, yt),
    )
    fig, axes = plt.subplots(2, 4, figsize=(11, 3.8))
    for r, (name, what, x, mask, pasted_from) in enumerate(rows):
        classes = pasted(pasted_from[0], mask[0])
        for t in range(2):
            axes[r, t].imshow(_img(x[0, t]))
            axes[r, t].contour(mask[0, t].float().numpy(), levels=[0.5], colors="white")
            axes[r, t].set_title(f"{name} clip, frame {t}\n{what}")
            axes[r, 2 + t].imshow(mask[0, t].numpy(), cmap="gray", vmin=0, vmax=1)
            axes[r, 2 + t].set_title(f"{name} mask, frame {t}\npasted: {classes}")
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    _save(fig, out / "mix.png")
    plt.close(fig)


def _train(
    model: TinySegmenter, align_weight: float, iters: int, align_start: int = 0
) -> TinySegmenter:
    """Train on source labels, plus ``align_weight`` times the prototype alignment loss.

    The alignment term starts at iteration ``align_start``, once the model's
    pseudo-labels on the target mean something.
    """
    src = SyntheticDrivingClips("source", "train", length=64, clip_len=2, size=SIZE)
    tgt = SyntheticDrivingClips("target", "train", length=64, clip_len=2, size=SIZE)
    agg = dastc.SpatioTemporalPrototypeAggregator(K, model.deep_channels)
    align = dastc.IntraInterClassAlignmentLoss(temperature=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for i in range(iters):
        idx = [(2 * i) % 64, (2 * i + 1) % 64]
        xs, ys = _batch(src, idx)
        xt, _ = _batch(tgt, idx)  # target labels are not used
        deep_s, logits_s = model.deep(model.shallow(xs))
        loss = F.cross_entropy(logits_s.flatten(0, 1), ys.flatten(0, 1))
        if align_weight > 0 and i >= align_start:
            deep_t, logits_t = model.deep(model.shallow(xt))
            pl = dastc.functional.pseudo_label(logits_t.detach())
            weights = dastc.functional.adaptive_weights(logits_t.detach())
            p_src = agg(deep_s, ys)
            p_tgt = agg(deep_t, pl.label, weights)
            loss = loss + align_weight * align(p_src, p_tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def _prototypes(model: TinySegmenter) -> tuple[Tensor, Tensor, Tensor]:
    """Source and target prototypes ``(K, C)`` of validation clips (true labels), and presence."""
    agg = dastc.SpatioTemporalPrototypeAggregator(K, model.deep_channels)
    out = []
    for domain in ("source", "target"):
        ds = SyntheticDrivingClips(domain, "val", length=16, clip_len=2, size=SIZE)
        x, y = _batch(ds, list(range(16)))
        deep, _ = model.deep(model.shallow(x))
        out.append(agg(deep, y))
    present = out[0].present & out[1].present
    return out[0].vectors, out[1].vectors, present


def _match(s: Tensor, t: Tensor, present: Tensor) -> tuple[int, int, float]:
    """How well target prototypes find their class among the source prototypes.

    Returns the number of present classes whose target prototype is closest (cosine)
    to the source prototype of the same class, the number of present classes, and
    the mean cosine of same-class pairs minus the mean cosine of different-class pairs.
    """
    ids = torch.nonzero(present).flatten()
    cos = F.normalize(t[ids], dim=1) @ F.normalize(s[ids], dim=1).T  # (n, n) target x source
    n = len(ids)
    matched = int((cos.argmax(1) == torch.arange(n)).sum())
    eye = torch.eye(n, dtype=torch.bool)
    margin = float(cos[eye].mean() - cos[~eye].mean())
    return matched, n, margin


def _pca2(points: Tensor) -> Tensor:
    """Project rows on their first two principal axes (signs fixed by the largest entry)."""
    centred = points - points.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[:2]
    signs = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    return centred @ (axes * signs).T


def prototypes(out: Path, iters: int) -> None:
    """prototypes.png."""
    plt = _plt()
    panels = []
    for title, align_weight, train in (
        ("randomly initialised", 0.0, False),
        (f"source labels only, {iters} iterations", 0.0, True),
        (f"source labels + 0.1 × alignment loss, {iters} iterations", 0.1, True),
    ):
        torch.manual_seed(0)
        model = TinySegmenter(K)
        if train:
            model = _train(model, align_weight, iters)
        s, t, present = _prototypes(model)
        panels.append((title, s, t, present, _match(s, t, present)))

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    for ax, (title, s, t, present, (matched, n_present, margin)) in zip(axes, panels, strict=True):
        ids = torch.nonzero(present).flatten()
        xy = _pca2(torch.cat([s[ids], t[ids]]))
        n = len(ids)
        for j, k in enumerate(ids.tolist()):
            colour = (SyntheticDrivingClips.PALETTE[k] / 255).tolist()
            (xs, ys), (xt, yt) = xy[j].tolist(), xy[n + j].tolist()
            ax.plot([xs, xt], [ys, yt], color="0.6", lw=0.8, zorder=1)
            ax.scatter(xs, ys, color=colour, marker="o", s=60, edgecolors="k", zorder=2)
            ax.scatter(xt, yt, color=colour, marker="^", s=70, edgecolors="k", zorder=2)
            ax.annotate(NAMES[k], (xs, ys), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_title(
            f"{title}\ntarget prototypes nearest to their own source class: "
            f"{matched}/{n_present}\ncosine margin (same class − other classes): {margin:.2f}"
        )
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].scatter([], [], marker="o", color="w", edgecolors="k", label="source prototype")
    axes[0].scatter([], [], marker="^", color="w", edgecolors="k", label="target prototype")
    axes[0].legend(loc="best", fontsize=7)
    fig.suptitle(
        "Class prototypes of TinySegmenter's deep features, source vs target validation clips "
        "(true labels), 2-D PCA per panel"
    )
    fig.tight_layout()
    _save(fig, out / "prototypes.png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Regenerate the documentation's pictures.")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    p.add_argument("--iters", type=int, default=150, help="training iterations per model")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    clips_and_mix(a.out)
    prototypes(a.out, a.iters)


if __name__ == "__main__":
    main()
