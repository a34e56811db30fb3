"""PNG pictures of a UDA run: mixed clips, predictions vs labels, per-class IoU, curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from uda_data import colorize

from dastc.methods import LastMix


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _img(x: Tensor) -> Any:
    """(3, H, W) float -> (H, W, 3) numpy."""
    return x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


Names = Sequence[str] | None  # class names: the real benchmarks' get the Cityscapes colours


def _overlay(x: Tensor, label: Tensor, k: int, names: Names = None, alpha: float = 0.5) -> Any:
    col = colorize(label.cpu(), k, names).float() / 255
    if tuple(col.shape[:2]) != tuple(x.shape[-2:]):  # a label at its stored resolution
        col = torch.nn.functional.interpolate(
            col.permute(2, 0, 1)[None], size=tuple(x.shape[-2:]), mode="nearest"
        )[0].permute(1, 2, 0)
    return (_img(x) * (1 - alpha) + col.numpy() * alpha).clip(0, 1)


def mix_figure(last: LastMix, k: int, path: Path, names: Names = None) -> None:
    """Rows: source + label, target + pseudo-label, S→T mixed + label, T→S mixed + label,
    and both masks; columns: frames of the first clip. ``names``: the class names
    (colours: ``uda_data.palette``)."""
    plt = _plt()
    mix = last.mix
    T = last.source_clip.shape[1]
    rows = [
        ("source clip + label", last.source_clip[0], last.source_label[0]),
        ("target clip + pseudo-label", last.target_clip[0], last.pseudo_label[0]),
        ("S→T mixed + label", mix.s2t_clip[0], mix.s2t_label[0]),
        ("T→S mixed + label", mix.t2s_clip[0], mix.t2s_label[0]),
    ]
    fig, axes = plt.subplots(
        len(rows) + 1, T, figsize=(3.2 * T, 1.9 * (len(rows) + 1)), squeeze=False
    )
    for r, (title, clip, lab) in enumerate(rows):
        for t in range(T):
            axes[r][t].imshow(_overlay(clip[t], lab[t], k, names))
            axes[r][t].set_title(f"{title}, frame {t}", fontsize=7)
    for t in range(T):
        m = torch.stack(
            [mix.s2t_mask[0, t], mix.t2s_mask[0, t], torch.zeros_like(mix.s2t_mask[0, t])]
        )
        axes[-1][t].imshow(m.float().permute(1, 2, 0).cpu().numpy())
        axes[-1][t].set_title(f"masks: red S→T, green T→S, frame {t}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def predictions_figure(
    batch: dict[str, Tensor], predictions: dict[str, Tensor], k: int, path: Path,
    names: Names = None,
) -> None:  # fmt: skip
    """Target val: image, label, and each model's prediction (last frame), a row per clip
    (labels and predictions at the labels' resolution, the image at the clip's)."""
    plt = _plt()
    n = batch["clip"].shape[0]
    cols = [("target image", None), ("label", batch["label"][:, -1]), *predictions.items()]
    fig, axes = plt.subplots(n, len(cols), figsize=(3.2 * len(cols), 1.9 * n), squeeze=False)
    for i in range(n):
        for j, (title, lab) in enumerate(cols):
            ax = axes[i][j]
            if lab is None:
                ax.imshow(_img(batch["clip"][i, -1]))
            else:
                ax.imshow(colorize(lab[i].cpu(), k, names).numpy())
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def iou_figure(names: list[str], iou_s: Tensor, iou_t: Tensor, path: Path, title: str) -> None:
    plt = _plt()
    x = torch.arange(len(names)).numpy()
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names)), 3.2))
    ax.bar(x - 0.2, iou_s.nan_to_num(0).numpy(), 0.4, label="student")
    ax.bar(x + 0.2, iou_t.nan_to_num(0).numpy(), 0.4, label="teacher")
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves_figure(
    history: dict[str, list[Any]], evals: list[dict[str, Any]], names: list[str], path: Path
) -> None:
    """Losses, pseudo-label confident fraction and class histogram, val mIoU over iterations."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
    for key, pairs in history.items():
        if key in ("pl_hist", "pl_conf"):
            continue
        axes[0].plot([p[0] for p in pairs], [p[1] for p in pairs], label=key)
    axes[0].set_yscale("log")
    axes[0].set_title("losses", fontsize=9)
    axes[0].legend(fontsize=7)
    if "pl_hist" in history:
        its = [p[0] for p in history["pl_hist"]]
        h = torch.tensor([p[1] for p in history["pl_hist"]])
        axes[1].stackplot(its, h.T.numpy(), labels=names)
        axes[1].set_ylim(0, 1)
        axes[1].set_title("teacher pseudo-label class fractions (collapse check)", fontsize=9)
        axes[1].legend(fontsize=6, loc="upper left", ncol=3)
        ax2 = axes[1].twinx()
        conf = history.get("pl_conf", [])
        ax2.plot([p[0] for p in conf], [p[1] for p in conf], "k--", label="confident fraction")
        ax2.set_ylim(0, 1)
        ax2.legend(fontsize=7, loc="upper right")
    if evals:
        axes[2].plot(
            [e["iter"] for e in evals], [e["student"] for e in evals], "o-", label="student"
        )
        axes[2].plot(
            [e["iter"] for e in evals], [e["teacher"] for e in evals], "s-", label="teacher"
        )
        axes[2].legend(fontsize=8)
    axes[2].set_title("target val mIoU (%, subset)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_all_pictures(
    out: Path, *, method: str, class_names: list[str], last_mix: LastMix | None,
    val_batch: dict[str, Tensor], predictions: dict[str, Tensor], iou_s: Tensor, iou_t: Tensor,
    history: dict[str, list[Any]], evals: list[dict[str, Any]],
) -> None:  # fmt: skip
    """Write every picture of a finished run into ``out``, from what the loop recorded."""
    k = len(class_names)
    if last_mix is not None:
        mix_figure(last_mix, k, out / "mixed_clips.png", class_names)
    predictions_figure(val_batch, predictions, k, out / "predictions.png", class_names)
    title = f"{method}: target val per-class IoU (student mIoU {float(iou_s.nanmean()):.1f})"
    iou_figure(class_names, iou_s, iou_t, out / "per_class_iou.png", title)
    curves_figure(history, evals, class_names, out / "training_curves.png")
