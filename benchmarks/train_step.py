"""Share of a training step spent in dastc's ops, on the example's TinySegmenter.

One DA-STC training step on a source and a target clip (B=4, T=2, 3x64x128,
K=9): teacher forward, pseudo-labels, clip mix, the student on the source clip,
on both mixed clips and on both feature-mixed paths, prototypes of both domains
with adaptive weights, the alignment loss, backward, AdamW step, EMA update.

Two measurements, both reported:

* **difference**: the median over rounds of (full step - the same step with
  every dastc op replaced by the cheapest stand-in that keeps the rest of the
  step unchanged (pseudo-labels: a bare ``argmax`` and weights of one; clip mix:
  the unmixed clips; feature mix: the unmixed features; prototypes + alignment:
  ``0 * (deep_s.mean() + deep_t.mean())``, so the model's backward is the same;
  EMA update: skipped), run back to back, over the median full step. This
  includes the ops' backward passes.
* **timed ops**: the dastc calls timed one by one inside the full step (forward
  only; their backward runs inside ``loss.backward()`` and is not counted).

Full steps and stand-in steps alternate so machine load affects both alike; the
difference is also given between the fastest run of each (``_min``).
The model is imported from ``examples/tiny_segmenter.py``; everything else is here.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import dastc
from dastc import functional as DF

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

__all__ = ["train_step_benchmark"]


def _wce(logits: Tensor, label: Tensor, weight: Tensor) -> Tensor:
    """Plain pixel-weighted cross-entropy over the labelled pixels (not a dastc op)."""
    ce = F.cross_entropy(
        logits.flatten(0, 1), label.flatten(0, 1), ignore_index=255, reduction="none"
    )
    valid = (label != 255).sum().clamp_min(1)
    return (ce * weight.flatten(0, 1)).sum() / valid


class _OpTimer:
    """Accumulates wall time per dastc op (synchronising CUDA around each)."""

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.device = device
        self.enabled = enabled
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - t0) * 1e3


def _clips(device: torch.device, B: int, T: int, H: int, W: int, K: int) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(0)
    low = torch.randint(0, K, (B * T, 1, H // 8, W // 8), generator=g).float()
    ys = F.interpolate(low, size=(H, W), mode="nearest").long().view(B, T, H, W)
    xs = torch.rand(B, T, 3, H, W, generator=g) * 0.5 + ys.unsqueeze(2).float() / (2 * K)
    xt = torch.rand(B, T, 3, H, W, generator=g)
    return {k: v.to(device) for k, v in {"xs": xs, "ys": ys, "xt": xt}.items()}


def train_step_benchmark(
    device: torch.device,
    *,
    quick: bool = False,
    log: Callable[[str], None] = print,
    size: tuple[int, int, int, int, int] = (4, 2, 64, 128, 9),
) -> dict[str, Any]:
    """Time full and stand-in training steps; return a benchmark record (see module doc)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    from tiny_segmenter import TinySegmenter

    B, T, H, W, K = size
    torch.manual_seed(0)
    model = TinySegmenter(K).to(device)
    teacher = dastc.EMATeacher(model, momentum=0.99, warmup=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    mix = dastc.BidirectionalClipMix(K)
    fmix = dastc.ShallowFeatureMix()
    agg_s = dastc.SpatioTemporalPrototypeAggregator(K, model.deep_channels).to(device)
    agg_t = dastc.SpatioTemporalPrototypeAggregator(K, model.deep_channels).to(device)
    align = dastc.IntraInterClassAlignmentLoss(temperature=0.1)
    gen = torch.Generator(device=device).manual_seed(0)
    d = _clips(device, B, T, H, W, K)
    xs, ys, xt = d["xs"], d["ys"], d["xt"]

    def step(use_dastc: bool, timer: _OpTimer) -> None:
        with torch.no_grad():
            t_logits = teacher.model(xt)
        if use_dastc:
            with timer("pseudo_label"):
                pl = DF.pseudo_label(t_logits, 0.968)
            yt, wt = pl.label, pl.weight
        else:
            yt = t_logits.argmax(2)
            wt = torch.ones(yt.shape, device=device)
        ones = torch.ones(ys.shape, device=device)
        hs, ht = model.shallow(xs), model.shallow(xt)
        deep_s, logits_s = model.deep(hs)
        loss = F.cross_entropy(logits_s.flatten(0, 1), ys.flatten(0, 1), ignore_index=255)
        if use_dastc:
            with timer("clip_mix"):
                mx = mix(xs, ys, xt, yt, wt, generator=gen)
            s2t = (mx.s2t_clip, mx.s2t_label, mx.s2t_weight)
            t2s = (mx.t2s_clip, mx.t2s_label, mx.t2s_weight)
            with timer("feature_mix"):
                f_s2t, f_t2s = fmix(hs, ht, mx.s2t_mask, mx.t2s_mask)
        else:
            s2t, t2s = (xt, yt, wt), (xs, ys, ones)
            f_s2t, f_t2s = ht, hs
        for clip, lab, w in (s2t, t2s):
            loss = loss + _wce(model(clip), lab, w)
        for feat, (_, lab, w) in ((f_s2t, s2t), (f_t2s, t2s)):
            loss = loss + _wce(model.deep(feat)[1], lab, w)
        deep_t, _ = model.deep(ht)
        if use_dastc:
            with timer("prototypes"):
                weights = DF.adaptive_weights(t_logits)
                p_s = agg_s(deep_s, ys)
                p_t = agg_t(deep_t, yt, weights)
                agg_s.update(p_s)
                agg_t.update(p_t)
            with timer("alignment"):
                la = align(agg_s.memory_prototypes(), p_t)
        else:
            la = 0.0 * (deep_s.mean() + deep_t.mean())
        loss = loss + 0.1 * la
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if use_dastc:
            with timer("ema_update"):
                teacher.update(model)

    def run(kind: str) -> tuple[float, dict[str, float]]:
        timer = _OpTimer(device, enabled=(kind == "timed"))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step(kind != "identity", timer)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - t0) * 1e3, timer.ms

    log("  timing train_step ...")
    for kind in ("full", "identity", "timed"):  # warm-up
        run(kind)
    reps = 3 if quick else 25
    full: list[float] = []
    ident: list[float] = []
    timed: list[dict[str, float]] = []
    for _ in range(reps):
        full.append(run("full")[0])
        ident.append(run("identity")[0])
        timed.append(run("timed")[1])
    ms_full = statistics.median(full)
    ms_ident = statistics.median(ident)
    # Paired: each round's full step minus the stand-in step run right after it.
    ms_diff = statistics.median(f - i for f, i in zip(full, ident, strict=True))
    per_op = {k: statistics.median(t[k] for t in timed) for k in timed[0]}
    ms_ops = statistics.median(sum(t.values()) for t in timed)
    rec: dict[str, Any] = {
        "op": "train_step",
        "case": f"TinySegmenter K{K}, source + target clips B{B} T{T} 3x{H}x{W}",
        "device": str(device),
        "dtype": "float32",
        "runs": reps,
        "ms_full": round(ms_full, 3),
        "ms_identity": round(ms_ident, 3),
        "ms_dastc_ops": round(ms_ops, 3),
        "dastc_ops_ms": {k: round(v, 3) for k, v in per_op.items()},
        "ms_difference": round(ms_diff, 3),
        "share_by_difference": round(ms_diff / ms_full, 4),
        "share_by_difference_min": round((min(full) - min(ident)) / min(full), 4),
        "share_timed_ops": round(ms_ops / ms_full, 4),
        "times_ms": {"full": [round(t, 2) for t in full], "identity": [round(t, 2) for t in ident]},
        "params": sum(p.numel() for p in model.parameters()),
        "notes": [
            "difference: full step minus the step with the dastc ops replaced by stand-ins "
            "(includes the ops' backward)",
            "timed ops: dastc calls timed inside the full step (forward only)",
            "value checks on (the default)",
        ],
    }
    log(
        f"  full {ms_full:.1f} ms, stand-ins {ms_ident:.1f} ms, difference {ms_diff:.1f} ms, "
        f"share {100 * rec['share_by_difference']:.1f}% (difference), "
        f"{100 * rec['share_timed_ops']:.1f}% (timed ops: "
        + ", ".join(f"{k} {v:.2f}" for k, v in per_op.items())
        + ")"
    )
    return rec
