"""Time dastc's ops against plain references, memory-pass bounds and torch.compile.

Usage::

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--json PATH] [--only NAME ...]
                             [--threads N] [--compile | --no-compile] [--render PATH]

For every public op, at realistic sizes (``--quick``: small ones), it prints the
median time in milliseconds and, measured in the same run (candidates
interleaved round by round, see ``_timing.py``):

* ``reference``: a plain implementation with Python loops over clips, frames and
  classes (``references.py``), checked to agree with the dastc op first;
* ``clone`` and ``read``: the memory-pass bounds of the op's main input, a
  ``clone`` (read + write of fresh memory) and a pure read pass (``x.sum()``);
* ``compiled``: ``torch.compile`` of the op's functional core (compile time
  excluded, warm-up included), or a note saying why not;
* ``unchecked``: the op with dastc's value checks (label range, finite values;
  they read the data and sync the host) switched off;

and the peak memory of one call. ``--json`` writes every record with the
machine description. ``train_step`` times one training step of the example's
``TinySegmenter`` with and without the dastc ops (see ``train_step.py``).

Names for ``--only``: clip_mix, feature_mix, prototypes, prototypes_backward,
alignment, ema_update, pseudo_label, warp, metrics, strong_augment,
class_balance, dist_align, clip_augment (these four in ``step_ops.py``), train_step.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import references as R  # noqa: E402
import step_ops  # noqa: E402
from _timing import Candidate, Stats, loadavg, machine_info, peak_memory, run_interleaved  # noqa: E402

import dastc  # noqa: E402
from dastc import functional as DF  # noqa: E402

OPS = (
    "clip_mix",
    "feature_mix",
    "prototypes",
    "prototypes_backward",
    "alignment",
    "ema_update",
    "pseudo_label",
    "warp",
    "metrics",
    "strong_augment",
    "class_balance",
    "dist_align",
    "clip_augment",
    "train_step",
)
IGNORE = 255
MB = 2**20


# ---------------------------------------------------------------- inputs
def blocky_labels(
    shape: tuple[int, ...], num_classes: int, g: torch.Generator, block: int = 32
) -> Tensor:
    """Label maps made of ``block``-pixel regions of random classes, ~5% ignore_index."""
    *lead, h, w = shape
    low_shape = (*lead, max(1, h // block), max(1, w // block))
    low = torch.randint(0, num_classes, low_shape, generator=g)
    low = torch.where(torch.rand(low_shape, generator=g) < 0.05, IGNORE, low)
    flat = low.reshape(-1, 1, *low_shape[-2:]).float()
    return F.interpolate(flat, size=(h, w), mode="nearest").long().reshape(shape)


def nbytes(*ts: Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in ts)


def fmt_shape(t: Tensor) -> str:
    return "x".join(str(s) for s in t.shape)


# ---------------------------------------------------------------- context
@dataclass
class Ctx:
    device: torch.device
    quick: bool
    compile: bool
    budget_s: float
    max_runs: int
    records: list[dict[str, Any]] = field(default_factory=list)
    log: Callable[[str], None] = print

    def gen(self, seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    def to(self, *ts: Tensor) -> tuple[Tensor, ...]:
        return tuple(t.to(self.device) for t in ts)

    def compile_fn(
        self, fn: Callable[..., Any], *, fullgraph: bool = True
    ) -> Callable[..., Any] | str:
        """``torch.compile(fn)`` or a note saying why not."""
        if not self.compile:
            return "skipped (--no-compile; --quick skips compile by default)"
        torch._dynamo.reset()
        return torch.compile(fn, fullgraph=fullgraph, dynamic=False)

    def measure(
        self,
        *,
        op: str,
        case: str,
        shapes: dict[str, str],
        dtype: str,
        main: Candidate,
        reference: Candidate | None,
        bounds: list[Candidate],
        compiled: Candidate | str | None,
        unchecked: bool = True,
        input_bytes: int,
        notes: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        notes = list(notes or [])
        cands = [main]
        if unchecked:
            cands.append(_unchecked(main))
        if reference is not None:
            cands.append(reference)
        cands += bounds
        compile_s = None
        if isinstance(compiled, Candidate):
            t0 = time.perf_counter()
            try:
                state = compiled.setup() if compiled.setup is not None else None
                compiled.fn(state)
                del state
                compile_s = time.perf_counter() - t0
                cands.append(compiled)
            except Exception as exc:
                msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                compiled = f"compile failed: {type(exc).__name__}: {msg}"
        self.log(f"  timing {op} [{case}] ...")
        load0 = loadavg()
        stats = run_interleaved(
            cands, self.device, budget_s=self.budget_s, max_runs=self.max_runs, min_runs=3
        )
        load1 = loadavg()
        mem = {"op": peak_memory(main, self.device)}
        if reference is not None:
            mem["reference"] = peak_memory(reference, self.device)
        if isinstance(compiled, Candidate):
            mem["compiled"] = peak_memory(compiled, self.device)
        s = stats[main.name]
        baselines: dict[str, Any] = {}
        for c in cands[1:]:
            st = stats[c.name]
            baselines[c.name] = {
                "ms": round(st.median_ms, 4),
                "ms_min": round(st.min_ms, 4),
                "runs": st.runs,
                "calls_per_run": st.calls_per_run,
            }
        if compile_s is not None:
            baselines["compiled"]["compile_s"] = round(compile_s, 2)
        elif isinstance(compiled, str):
            baselines["compiled"] = {"skipped": compiled}
        ratios = _ratios(s, stats)
        rec: dict[str, Any] = {
            "op": op,
            "case": case,
            "shapes": shapes,
            "dtype": dtype,
            "device": str(self.device),
            "input_mb": round(input_bytes / MB, 2),
            "ms": round(s.median_ms, 4),
            "ms_min": round(s.min_ms, 4),
            "runs": s.runs,
            "calls_per_run": s.calls_per_run,
            "baselines": baselines,
            "ratios": ratios,
            "peak_memory_mb": {k: None if v is None else round(v / MB, 2) for k, v in mem.items()},
            "torch": torch.__version__,
            "machine": _machine_short(self.device),
            "threads": torch.get_num_threads(),
            "loadavg": [load0, load1],
            "notes": notes,
        }
        if extra:
            rec.update(extra)
        self.records.append(rec)
        self.log("  " + _row(rec))
        return rec


def _unchecked(c: Candidate) -> Candidate:
    """``c`` with dastc's value checks (label range, finite values) switched off."""

    def fn(state: Any) -> Any:
        with dastc.value_checks(False):
            return c.fn(state)

    return Candidate("unchecked", fn, c.setup)


def _ratios(s: Stats, stats: dict[str, Stats]) -> dict[str, float]:
    out: dict[str, float] = {}

    def r(x: float) -> float:
        return round(x, 3)

    if "reference" in stats:
        out["speedup_vs_reference"] = r(stats["reference"].median_ms / s.median_ms)
    if "clone" in stats:
        out["x_clone"] = r(s.median_ms / stats["clone"].median_ms)
    if "read" in stats:
        out["x_read"] = r(s.median_ms / stats["read"].median_ms)
    if "foreach_lerp" in stats:
        out["x_foreach_lerp"] = r(s.median_ms / stats["foreach_lerp"].median_ms)
    if "compiled" in stats:
        out["compiled_speedup"] = r(s.median_ms / stats["compiled"].median_ms)
        if "unchecked" in stats:  # compiled code skips the value checks: compare like for like
            out["compiled_speedup_vs_unchecked"] = r(
                stats["unchecked"].median_ms / stats["compiled"].median_ms
            )
    if "unchecked" in stats:
        out["x_unchecked"] = r(s.median_ms / stats["unchecked"].median_ms)
    return out


_MACHINE: dict[str, Any] = {}


def _machine_short(device: torch.device) -> str:
    if not _MACHINE:
        _MACHINE.update(machine_info(device))
    m = _MACHINE
    s = f"{m['cpu_model']}, {m['cpu_cores_usable']} cores"
    if "gpu" in m:
        s = f"{m['gpu']}; {s}"
    return s


def _same(name: str, got: Tensor, want: Tensor, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Refuse to time an op that disagrees with its reference."""
    got, want = got.detach().cpu(), want.detach().cpu()
    if got.shape != want.shape:
        raise RuntimeError(f"{name}: shape {tuple(got.shape)} != reference {tuple(want.shape)}")
    if rtol == 0.0 and atol == 0.0:
        ok = torch.equal(got.to(want.dtype), want)
    else:
        ok = torch.allclose(got.double(), want.double(), rtol=rtol, atol=atol)
    if not ok:
        diff = (got.double() - want.double()).abs().max().item()
        raise RuntimeError(f"{name}: differs from the reference (max abs diff {diff:.3g})")


def clone_read(*ts: Tensor) -> list[Candidate]:
    """The memory-pass bounds of the inputs ``ts``: a clone and a pure read pass."""
    return [
        Candidate("clone", lambda _: [t.clone() for t in ts]),
        Candidate("read", lambda _: [t.sum() for t in ts]),
    ]


# ---------------------------------------------------------------- cases
def _compiled(comp: Callable[..., Any] | str, *args: Any) -> Candidate | str:
    """A ``compiled`` candidate calling ``comp(*args)``, or the note ``comp`` holds."""
    if isinstance(comp, str):
        return comp
    return Candidate("compiled", lambda _: comp(*args))


def case_clip_mix(ctx: Ctx) -> None:
    for size in [(2, 2, 128, 256, 19)] if ctx.quick else [(2, 2, 512, 1024, 19)]:
        _clip_mix(ctx, *size)


def _clip_mix(ctx: Ctx, B: int, T: int, H: int, W: int, K: int) -> None:
    g = ctx.gen(0)
    xs, xt = torch.rand(B, T, 3, H, W, generator=g), torch.rand(B, T, 3, H, W, generator=g)
    ys, yt = blocky_labels((B, T, H, W), K, g), blocky_labels((B, T, H, W), K, g)
    wt = torch.rand(B, T, H, W, generator=g)
    xs, xt, ys, yt, wt = ctx.to(xs, xt, ys, yt, wt)
    mix = dastc.BidirectionalClipMix(K)

    out = mix(xs, ys, xt, yt, wt)
    cs = [torch.unique(ys[b][out.s2t_mask[b]]) for b in range(B)]
    ct = [torch.unique(yt[b][out.t2s_mask[b]]) for b in range(B)]
    ref = R.class_mix_reference(xs, ys, xt, yt, wt, IGNORE, src_classes=cs, tgt_classes=ct)
    for k, v in ref.items():
        _same(f"clip_mix.{k}", getattr(out, k), v)

    def core(xs: Tensor, ys: Tensor, xt: Tensor, yt: Tensor, wt: Tensor) -> Any:
        return DF.bidirectional_clip_mix(xs, ys, xt, yt, wt, num_classes=K)

    ctx.measure(
        op="clip_mix",
        case=f"B{B} T{T} 3x{H}x{W} K{K}",
        shapes={"clips": fmt_shape(xs), "labels": fmt_shape(ys), "weight": fmt_shape(wt)},
        dtype="float32",
        main=Candidate("op", lambda _: mix(xs, ys, xt, yt, wt)),
        reference=Candidate(
            "reference", lambda _: R.class_mix_reference(xs, ys, xt, yt, wt, IGNORE)
        ),
        bounds=clone_read(xs, xt),
        compiled=_compiled(ctx.compile_fn(core), xs, ys, xt, yt, wt),
        input_bytes=nbytes(xs, xt),
        notes=[
            "bounds: clone / read of both input clips",
            "writes 2 clips, 2 labels, 2 weights, 2 masks",
        ],
    )


def case_feature_mix(ctx: Ctx) -> None:
    for size in [(2, 2, 64, 32, 64, 4)] if ctx.quick else [(2, 2, 256, 128, 256, 4)]:
        _feature_mix(ctx, *size)


def _feature_mix(ctx: Ctx, B: int, T: int, C: int, h: int, w: int, up: int) -> None:
    g = ctx.gen(1)
    fs, ft = torch.randn(B, T, C, h, w, generator=g), torch.randn(B, T, C, h, w, generator=g)
    lab = blocky_labels((B, T, h * up, w * up), 19, g)
    ms, mt = lab < 9, lab >= 9
    fs, ft, ms, mt = ctx.to(fs, ft, ms, mt)
    fmix = dastc.ShallowFeatureMix()
    got = fmix(fs, ft, ms, mt)
    want = R.feature_mix_reference(fs, ft, ms, mt)
    _same("feature_mix.s2t", got[0], want[0])
    _same("feature_mix.t2s", got[1], want[1])
    ctx.measure(
        op="feature_mix",
        case=f"B{B} T{T} C{C} {h}x{w}, masks {h * up}x{w * up}",
        shapes={"features": fmt_shape(fs), "masks": fmt_shape(ms)},
        dtype="float32",
        main=Candidate("op", lambda _: fmix(fs, ft, ms, mt)),
        reference=Candidate("reference", lambda _: R.feature_mix_reference(fs, ft, ms, mt)),
        bounds=clone_read(fs, ft),
        compiled=_compiled(ctx.compile_fn(DF.shallow_feature_mix), fs, ft, ms, mt),
        input_bytes=nbytes(fs, ft),
        notes=["bounds: clone / read of both feature maps"],
    )


_ProtoSize = tuple[str, int, int, int, int, int, int, int]


def _proto_sizes(quick: bool) -> list[_ProtoSize]:
    """(title, B, T, C, h, w, label upsampling, K)."""
    if quick:
        return [("quick", 2, 2, 256, 32, 64, 8, 19)]
    return [
        ("DeepLabV2 deep features", 2, 2, 2048, 65, 129, 8, 15),
        ("stride-4 decoder features", 2, 2, 256, 128, 256, 8, 19),
        ("out of cache", 8, 2, 256, 128, 256, 8, 19),
    ]


def _proto_inputs(ctx: Ctx, size: _ProtoSize) -> tuple[Tensor, Tensor, Tensor]:
    _, B, T, C, h, w, up, K = size
    g = ctx.gen(2)
    # Labels at image resolution: 8x the feature map (65x129 features <- 512x1024 images).
    H, W = (512, 1024) if (h, w) == (65, 129) else (h * up, w * up)
    feats = torch.randn(B, T, C, h, w, generator=g)
    labels = blocky_labels((B, T, H, W), K, g)
    weights = torch.rand(B, T, H, W, generator=g)
    feats, labels, weights = ctx.to(feats, labels, weights)
    return feats, labels, weights


def _proto_case(size: _ProtoSize, labels: Tensor) -> str:
    title, B, T, C, h, w, _, K = size
    return f"B{B} T{T} C{C} {h}x{w} K{K}, labels {fmt_shape(labels[0, 0])} ({title})"


def case_prototypes(ctx: Ctx) -> None:
    for size in _proto_sizes(ctx.quick):
        _prototypes(ctx, size)


def _prototypes(ctx: Ctx, size: _ProtoSize) -> None:
    K = size[-1]
    feats, labels, weights = _proto_inputs(ctx, size)
    agg = dastc.SpatioTemporalPrototypeAggregator(K, feats.shape[2]).to(ctx.device)
    p = agg(feats, labels, weights)
    rv, rc = R.class_prototypes_reference(feats, labels, K, weights)
    _same("prototypes.vectors", p.vectors, rv, rtol=1e-4, atol=1e-5)
    _same("prototypes.counts", p.counts, rc, rtol=1e-4, atol=1e-3)

    ctx.measure(
        op="prototypes",
        case=_proto_case(size, labels),
        shapes={
            "features": fmt_shape(feats),
            "labels": fmt_shape(labels),
            "weights": fmt_shape(weights),
        },
        dtype="float32",
        main=Candidate("op", lambda _: agg(feats, labels, weights)),
        reference=Candidate(
            "reference", lambda _: R.class_prototypes_reference(feats, labels, K, weights)
        ),
        bounds=clone_read(feats),
        compiled=_compiled(ctx.compile_fn(DF.class_prototypes), feats, labels, K, weights),
        input_bytes=nbytes(feats),
        notes=["bounds: clone / read of the features", "with per-pixel weights"],
    )


def case_prototypes_backward(ctx: Ctx) -> None:
    for size in _proto_sizes(ctx.quick):
        _prototypes_backward(ctx, size)


def _prototypes_backward(ctx: Ctx, size: _ProtoSize) -> None:
    K = size[-1]
    feats, labels, weights = _proto_inputs(ctx, size)
    feats.requires_grad_(True)
    C = feats.shape[2]
    g_out = torch.randn(K, C, generator=ctx.gen(3)).to(ctx.device)
    agg = dastc.SpatioTemporalPrototypeAggregator(K, C).to(ctx.device)

    def fwd_op() -> Tensor:
        return (agg(feats, labels, weights).vectors * g_out).sum()

    def fwd_ref() -> Tensor:
        return (R.class_prototypes_reference(feats, labels, K, weights)[0] * g_out).sum()

    def grad(loss: Tensor) -> Tensor:
        return torch.autograd.grad(loss, feats)[0]

    _same("prototypes_backward", grad(fwd_op()), grad(fwd_ref()), rtol=1e-4, atol=1e-6)
    comp = ctx.compile_fn(DF.class_prototypes)
    compiled: Candidate | str
    if isinstance(comp, str):
        compiled = comp
    else:

        def fwd_comp() -> Tensor:
            return (comp(feats, labels, K, weights).vectors * g_out).sum()

        compiled = Candidate("compiled", grad, setup=fwd_comp)
    rec = ctx.measure(
        op="prototypes_backward",
        case=_proto_case(size, labels),
        shapes={
            "features": fmt_shape(feats),
            "labels": fmt_shape(labels),
            "weights": fmt_shape(weights),
        },
        dtype="float32",
        main=Candidate("op", grad, setup=fwd_op),
        unchecked=False,
        reference=Candidate("reference", grad, setup=fwd_ref),
        bounds=clone_read(feats.detach()),
        compiled=compiled,
        input_bytes=nbytes(feats),
        notes=[
            "backward only: the forward runs untimed before each timed call",
            "the gradient w.r.t. the features is a fresh tensor of their size",
        ],
    )
    fwd = [
        r
        for r in ctx.records
        if r["op"] == "prototypes" and r["shapes"]["features"] == fmt_shape(feats)
    ]
    if fwd:
        # The backward runs no value checks: compare with the forward without them too.
        rec["ratios"]["x_forward"] = round(rec["ms"] / fwd[-1]["ms"], 3)
        fwd_unchecked = fwd[-1]["baselines"].get("unchecked", {}).get("ms")
        if fwd_unchecked:
            rec["ratios"]["x_forward_unchecked"] = round(rec["ms"] / fwd_unchecked, 3)
        if "compiled" in rec["baselines"] and "compiled" in fwd[-1]["baselines"]:
            c_bwd = rec["baselines"]["compiled"].get("ms")
            c_fwd = fwd[-1]["baselines"]["compiled"].get("ms")
            if c_bwd and c_fwd:
                rec["ratios"]["compiled_x_forward"] = round(c_bwd / c_fwd, 3)


def case_alignment(ctx: Ctx) -> None:
    for K, C in [(19, 256)] if ctx.quick else [(19, 2048), (15, 256)]:
        for backward in (False, True):
            _alignment(ctx, K, C, backward)


def _alignment(ctx: Ctx, K: int, C: int, backward: bool) -> None:
    g = ctx.gen(4)
    src, tgt = torch.randn(K, C, generator=g), torch.randn(K, C, generator=g)
    sp = torch.rand(K, generator=g) > 0.15
    tp = torch.rand(K, generator=g) > 0.15
    src, tgt, sp, tp = ctx.to(src, tgt, sp, tp)
    src.requires_grad_(backward)
    tgt.requires_grad_(backward)
    align = dastc.IntraInterClassAlignmentLoss(temperature=0.1)
    cs, ct = sp.float(), tp.float()
    _same(
        "alignment",
        align(dastc.Prototypes(src, cs, sp), dastc.Prototypes(tgt, ct, tp)),
        R.infonce_reference(src, tgt, sp, tp, 0.1),
        rtol=1e-5,
        atol=1e-5,
    )

    def finish(loss: Tensor) -> Any:
        return torch.autograd.grad(loss, (src, tgt)) if backward else loss

    comp = ctx.compile_fn(DF.prototype_infonce)
    compiled: Candidate | str
    if isinstance(comp, str):
        compiled = comp
    else:
        compiled = Candidate("compiled", lambda _: finish(comp(src, tgt, sp, tp, 0.1)))
    ctx.measure(
        op="alignment_fwd_bwd" if backward else "alignment",
        case=f"K{K} C{C}" + (" forward+backward" if backward else " forward"),
        shapes={"src": fmt_shape(src), "tgt": fmt_shape(tgt)},
        dtype="float32",
        main=Candidate(
            "op",
            lambda _: finish(align(dastc.Prototypes(src, cs, sp), dastc.Prototypes(tgt, ct, tp))),
        ),
        reference=Candidate(
            "reference", lambda _: finish(R.infonce_reference(src, tgt, sp, tp, 0.1))
        ),
        bounds=clone_read(src.detach(), tgt.detach()),
        compiled=compiled,
        input_bytes=nbytes(src, tgt),
        notes=["symmetric prototype InfoNCE; a few classes absent on each side"],
    )


def _float_tensors(m: torch.nn.Module) -> list[Tensor]:
    return [*m.parameters(), *(b for b in m.buffers() if b.is_floating_point())]


def case_ema_update(ctx: Ctx) -> None:
    div = 4 if ctx.quick else 1
    m = 0.999
    student = R.resnet101_standin(width_div=div).to(ctx.device)
    with torch.no_grad():
        for t in _float_tensors(student):
            t.normal_()
    teacher = dastc.EMATeacher(student, momentum=m)
    ref_teacher = copy.deepcopy(teacher.model)
    bare_teacher = copy.deepcopy(teacher.model)
    with torch.no_grad():
        for t in _float_tensors(student):
            t.add_(1.0)
    teacher.update(student)
    R.ema_update_reference(ref_teacher, student, m)
    got, want = teacher.model.state_dict(), ref_teacher.state_dict()
    for name in got:
        _same(f"ema_update.{name}", got[name], want[name], rtol=1e-6, atol=1e-6)
    s_float = _float_tensors(student)
    t_bare = _float_tensors(bare_teacher)
    n_params = sum(p.numel() for p in student.parameters())
    n_tensors = len(list(student.parameters())) + len(list(student.buffers()))

    def bare(_: Any) -> None:
        torch._foreach_lerp_(t_bare, s_float, 1.0 - m)

    ctx.measure(
        op="ema_update",
        case=f"ResNet-101 tensors{' (widths / 4)' if div > 1 else ''}: "
        f"{n_params / 1e6:.1f}M params, {n_tensors} tensors",
        shapes={"params": f"{n_params}", "tensors": f"{n_tensors}"},
        dtype="float32",
        main=Candidate("op", lambda _: teacher.update(student)),
        unchecked=False,
        reference=Candidate("reference", lambda _: R.ema_update_reference(ref_teacher, student, m)),
        bounds=[Candidate("foreach_lerp", bare), *clone_read(*s_float)],
        compiled=(
            "not offered: EMATeacher.update advances a host-side step counter, so "
            "torch.compile re-traces it on every call (a trial at this size: 165 s for the "
            "first call, ~23 s per later call)"
        ),
        input_bytes=nbytes(*s_float),
        notes=[
            "bound foreach_lerp: torch._foreach_lerp_ over the same floating tensors",
            "clone / read: per-tensor clone and sum of the student's floating tensors",
            "update also copies the 104 integer num_batches_tracked buffers",
        ],
    )


def case_pseudo_label(ctx: Ctx) -> None:
    for size in [(2, 2, 19, 128, 256)] if ctx.quick else [(2, 2, 19, 512, 1024)]:
        _pseudo_label(ctx, *size)


def _pseudo_label(ctx: Ctx, B: int, T: int, K: int, H: int, W: int) -> None:
    logits = (torch.randn(B, T, K, H, W, generator=ctx.gen(5)) * 3).to(ctx.device)
    got = DF.pseudo_label(logits, 0.968)
    lab, conf, wgt = R.pseudo_label_reference(logits, 0.968)
    _same("pseudo_label.label", got.label, lab)
    _same("pseudo_label.confidence", got.confidence, conf, rtol=1e-5, atol=1e-6)
    _same("pseudo_label.weight", got.weight, wgt, rtol=1e-5, atol=1e-5)
    ctx.measure(
        op="pseudo_label",
        case=f"B{B} T{T} K{K} {H}x{W}",
        shapes={"logits": fmt_shape(logits)},
        dtype="float32",
        main=Candidate("op", lambda _: DF.pseudo_label(logits, 0.968)),
        reference=Candidate("reference", lambda _: R.pseudo_label_reference(logits, 0.968)),
        bounds=clone_read(logits),
        compiled=_compiled(ctx.compile_fn(DF.pseudo_label), logits, 0.968),
        input_bytes=nbytes(logits),
        notes=["bounds: clone / read of the logits"],
    )


def case_warp(ctx: Ctx) -> None:
    if ctx.quick:
        sizes = [("clip", 2, 2, 3, 128, 256)]
    else:
        sizes = [("clip", 2, 2, 3, 512, 1024), ("probabilities", 2, 2, 19, 128, 256)]
    for size in sizes:
        _warp(ctx, *size)


def _warp(ctx: Ctx, title: str, B: int, T: int, C: int, H: int, W: int) -> None:
    g = ctx.gen(6)
    x = torch.rand(B, T, C, H, W, generator=g)
    flow = torch.randn(B, T, 2, H, W, generator=g) * 4
    x, flow = ctx.to(x, flow)
    _same("warp", DF.warp(x, flow), R.warp_reference(x, flow), atol=1e-3)
    ctx.measure(
        op="warp",
        case=f"B{B} T{T} {C}x{H}x{W} ({title}, bilinear)",
        shapes={"x": fmt_shape(x), "flow": fmt_shape(flow)},
        dtype="float32",
        main=Candidate("op", lambda _: DF.warp(x, flow)),
        reference=Candidate("reference", lambda _: R.warp_reference(x, flow)),
        bounds=clone_read(x),
        compiled=_compiled(ctx.compile_fn(DF.warp), x, flow),
        input_bytes=nbytes(x),
        notes=["bounds: clone / read of x (the op also reads the flow)"],
    )


def case_metrics(ctx: Ctx) -> None:
    for size in [(2, 256, 512, 19)] if ctx.quick else [(2, 1024, 2048, 19)]:
        _metrics(ctx, *size)


def _metrics(ctx: Ctx, B: int, H: int, W: int, K: int) -> None:
    g = ctx.gen(7)
    target = blocky_labels((B, H, W), K, g)
    noise = torch.randint(0, K, (B, H, W), generator=g)
    pred = torch.where(torch.rand(B, H, W, generator=g) < 0.8, target, noise)
    pred = torch.where(pred == IGNORE, noise, pred)
    pred, target = ctx.to(pred, target)
    cm = dastc.ConfusionMatrix(K, device=ctx.device)
    cm.update(pred, target)
    _same("metrics", cm.matrix, torch.from_numpy(R.confusion_reference(pred, target, K)))

    ctx.measure(
        op="metrics",
        case=f"B{B} {H}x{W} K{K} (ConfusionMatrix.update)",
        shapes={"pred": fmt_shape(pred), "target": fmt_shape(target)},
        dtype="int64",
        main=Candidate("op", lambda _: cm.update(pred, target)),
        reference=Candidate("reference", lambda _: R.confusion_reference(pred, target, K)),
        bounds=clone_read(pred, target),
        compiled=_compiled(ctx.compile_fn(dastc.confusion_matrix), pred, target, K),
        input_bytes=nbytes(pred, target),
        notes=[
            "compiled: dastc.confusion_matrix, the functional core of update",
            "bounds: clone / read of prediction and target",
        ],
    )


def case_train_step(ctx: Ctx) -> None:
    from train_step import train_step_benchmark

    rec = train_step_benchmark(ctx.device, quick=ctx.quick, log=ctx.log)
    rec["torch"] = torch.__version__
    rec["machine"] = _machine_short(ctx.device)
    rec["threads"] = torch.get_num_threads()
    ctx.records.append(rec)


CASES: dict[str, Callable[[Ctx], None]] = {
    "clip_mix": case_clip_mix,
    "feature_mix": case_feature_mix,
    "prototypes": case_prototypes,
    "prototypes_backward": case_prototypes_backward,
    "alignment": case_alignment,
    "ema_update": case_ema_update,
    "pseudo_label": case_pseudo_label,
    "warp": case_warp,
    "metrics": case_metrics,
    "strong_augment": step_ops.case_strong_augment,
    "class_balance": step_ops.case_class_balance,
    "dist_align": step_ops.case_dist_align,
    "clip_augment": step_ops.case_clip_augment,
    "train_step": case_train_step,
}


# ---------------------------------------------------------------- table
def _f(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def _ms(rec: dict[str, Any], name: str) -> float | None:
    b = rec["baselines"].get(name)
    return None if b is None or "ms" not in b else float(b["ms"])


def _x(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{_f(v, digits)}×"


def _row(rec: dict[str, Any]) -> str:
    r = rec["ratios"]
    comp = rec["baselines"].get("compiled", {})
    comp_s = _f(_ms(rec, "compiled")) if "ms" in comp else "n/a"
    comp_x = r.get("compiled_speedup_vs_unchecked", r.get("compiled_speedup"))
    peak = rec["peak_memory_mb"].get("op")
    return (
        f"| {rec['op']} | {rec['case']} | {_f(rec['ms'])} | {_f(_ms(rec, 'unchecked'))} | "
        f"{_f(_ms(rec, 'reference'))} | {_x(r.get('speedup_vs_reference'), 1)} | "
        f"{_f(_ms(rec, 'clone'))} | {_x(r.get('x_clone'))} | {_f(_ms(rec, 'read'))} | "
        f"{_x(r.get('x_read'))} | {comp_s} | {_x(comp_x)} | {_f(peak, 1)} |"
    )


HEADER = (
    "| op | case | ms | checks off ms | reference ms | speed-up vs reference | clone ms | "
    "op / clone | read ms | op / read | compiled ms | eager (checks off) / compiled | "
    "peak MB |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def render(doc: dict[str, Any]) -> str:
    """Markdown tables of a results document (``--json`` output)."""
    recs = [r for r in doc["records"] if r["op"] != "train_step" and "error" not in r]
    lines = [HEADER, *(_row(r) for r in recs)]
    extra = []
    for r in recs:
        bits = []
        if "foreach_lerp" in r["baselines"]:
            bits.append(
                f"bare torch._foreach_lerp_ {_f(_ms(r, 'foreach_lerp'))} ms "
                f"(op / bare = {_f(r['ratios']['x_foreach_lerp'])}×)"
            )
        if "x_forward" in r["ratios"]:
            bits.append(
                f"backward / forward = {_f(r['ratios']['x_forward'])}× "
                f"({_f(r['ratios'].get('x_forward_unchecked'))}× against the forward "
                "with value checks off)"
            )
        comp = r["baselines"].get("compiled", {})
        if "skipped" in comp:
            bits.append(f"compiled: {comp['skipped']}")
        elif "compile_s" in comp:
            bits.append(f"first compiled call {comp['compile_s']} s (excluded)")
        if bits:
            extra.append(f"- {r['op']} [{r['case']}]: " + "; ".join(bits))
    if extra:
        lines += ["", *extra]
    for r in doc["records"]:
        if "error" in r:
            lines += ["", f"- {r['op']}: FAILED: {r['error']}"]
        elif r["op"] == "train_step":
            lines += ["", *train_step_lines(r)]
    return "\n".join(lines)


def train_step_lines(r: dict[str, Any]) -> list[str]:
    ops = ", ".join(f"{k} {_f(v)} ms" for k, v in r["dastc_ops_ms"].items())
    return [
        f"Training step ({r['case']}):",
        f"- full step {_f(r['ms_full'])} ms (median of {r['runs']}); the same step with the "
        f"dastc ops replaced by stand-ins {_f(r['ms_identity'])} ms; paired difference "
        f"{_f(r['ms_difference'])} ms = {_f(100 * r['share_by_difference'], 1)}% of the step "
        f"(fastest runs: {_f(100 * r['share_by_difference_min'], 1)}%)",
        f"- dastc ops timed inside the full step: {_f(r['ms_dastc_ops'])} ms "
        f"= {_f(100 * r['share_timed_ops'], 1)}% of the step ({ops})",
    ]


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, fewer repeats")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--json", type=Path, help="write the records to this JSON file")
    p.add_argument("--only", nargs="+", choices=OPS, metavar="NAME", help=", ".join(OPS))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--compile", dest="compile", action="store_true", default=None)
    g.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--render", type=Path, help="print the tables of a saved JSON and exit")
    args = p.parse_args(argv)

    if args.render is not None:
        print(render(json.loads(args.render.read_text())))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    device = torch.device(args.device)
    ctx = Ctx(
        device=device,
        quick=args.quick,
        compile=(not args.quick) if args.compile is None else args.compile,
        budget_s=0.5 if args.quick else 2.0,
        max_runs=10 if args.quick else 30,
    )
    names = args.only or list(OPS)
    t0 = time.perf_counter()
    meta = {
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "mode": "quick" if args.quick else "full",
        "compile": ctx.compile,
        "machine": machine_info(device),
        "dastc": dastc.__version__,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(
        f"dastc {dastc.__version__}, torch {torch.__version__}, {_machine_short(device)}, "
        f"{torch.get_num_threads()} thread(s), device {device}, "
        f"{'quick' if args.quick else 'full'} mode, load {loadavg()}"
    )
    failed = []
    for name in names:
        print(f"[{name}]")
        try:
            CASES[name](ctx)
        except Exception as exc:  # report, keep the other figures, exit non-zero
            traceback.print_exc()
            failed.append(name)
            ctx.records.append({"op": name, "error": f"{type(exc).__name__}: {exc}"})
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    meta["loadavg_end"] = loadavg()
    doc = {"meta": meta, "records": ctx.records}
    print()
    print(render(doc))
    print(f"\nwall time {meta['wall_s']} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
