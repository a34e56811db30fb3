"""Benchmark cases for the ops of a method step: strong augmentation, class balance,
distribution alignment, clip augmentation (registered in ``run.py``'s ``CASES``).

Each is timed against a plain reference with Python loops over clips or
classes (checked to agree first), the clone/read bounds of its main input and
``torch.compile`` of the functional core.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dastc import functional as DF

IGNORE = 255


# ---------------------------------------------------------------- references
def strong_augment_reference(clip: Tensor, g: torch.Generator, hue: float) -> Tensor:
    """Per clip: draw the parameters in the op's order, then jitter, rotate and blur
    each frame and channel with loops (``F.conv2d`` on one plane at a time)."""
    B, T, C, H, W = clip.shape
    dev = clip.device

    def u(lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(B, generator=g, device=dev)

    on = torch.rand(B, generator=g, device=dev) < 0.8
    bright, contrast, sat = u(0.8, 1.2), u(0.8, 1.2), u(0.8, 1.2)
    turn = u(-hue, hue) if hue > 0 else None
    sigma = u(0.15, 1.15)
    blur = torch.rand(B, generator=g, device=dev) < 0.5
    luma = torch.tensor([0.299, 0.587, 0.114], device=dev)
    out = torch.empty_like(clip)
    for b in range(B):
        x = clip[b]
        if on[b]:
            x = x * bright[b]
            mean = (x * luma.view(1, 3, 1, 1)).sum(1, True).mean((-2, -1), True)
            x = (x - mean) * contrast[b] + mean
            grey = (x * luma.view(1, 3, 1, 1)).sum(1, True)
            x = grey + (x - grey) * sat[b]
            if turn is not None:
                rot = DF.hue_rotation((turn[b] * 2 * math.pi).view(1))[0]
                x = torch.einsum("ij,tjhw->tihw", rot, x)
        if blur[b]:
            t = torch.arange(-2, 3, device=dev, dtype=clip.dtype)
            k = torch.exp(-(t**2) / (2 * sigma[b] ** 2))
            k = k / k.sum()
            planes = []
            for f in range(T):
                for c in range(C):
                    p = x[f, c].view(1, 1, H, W)
                    p = F.conv2d(F.pad(p, (2, 2, 0, 0), mode="reflect"), k.view(1, 1, 1, 5))
                    p = F.conv2d(F.pad(p, (0, 0, 2, 2), mode="reflect"), k.view(1, 1, 5, 1))
                    planes.append(p.view(H, W))
            x = torch.stack(planes).view(T, C, H, W)
        out[b] = x.clamp(0, 1)
    return out


def class_balance_reference(logits: Tensor, running: Tensor, m: float) -> tuple[Tensor, Tensor]:
    """Per-class mean confidence with a loop over classes; the scores; the new running."""
    prob = logits.float().softmax(2)
    conf, lab = prob.max(2)
    new = running.clone()
    for k in range(logits.shape[2]):
        sel = lab == k
        if bool(sel.any()):
            new[k] = m * running[k] + (1 - m) * conf[sel].mean()
    return (prob / new.view(1, 1, -1, 1, 1)).clamp(min=1e-12).log(), new


def dist_align_reference(logits: Tensor, ys: Tensor, src: Tensor, tgt: Tensor, m: float) -> Tensor:
    """Class frequencies and probability mass with a loop over classes; the aligned logits."""
    K = logits.shape[2]
    prob = logits.float().softmax(2)
    valid = ys[(ys >= 0) & (ys < K)]
    cnt = torch.stack([(valid == k).sum() for k in range(K)]).float()
    mass = torch.stack([prob[:, :, k].sum() for k in range(K)])
    s = m * src + (1 - m) * (cnt / cnt.sum())
    t = m * tgt + (1 - m) * mass / prob[:, :, 0].numel()
    return logits + ((s + 1e-6) / (t + 1e-6)).log().view(1, 1, K, 1, 1)


def clip_augment_reference(
    tf: DF.ClipTransform, clip: Tensor, label: Tensor, flow: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Per clip: ``F.interpolate`` of the whole frames (labels by nearest-centre index
    lookup), pad bottom/right, slice the crop, ``torch.flip``; flow vectors rescaled
    per axis and dx negated on a flip. Reads the draw back with ``.tolist()``."""
    H, W = tf.in_size
    oh, ow = tf.out_size
    outs: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
    for b, ((hs, ws), (top, left), flip) in enumerate(
        zip(tf.size.tolist(), tf.offset.tolist(), tf.flip.tolist(), strict=True)
    ):
        ph, pw = max(0, top + oh - hs), max(0, left + ow - ws)
        img = F.interpolate(clip[b], size=(hs, ws), mode="bilinear", align_corners=False)
        fl = F.interpolate(flow[b], size=(hs, ws), mode="bilinear", align_corners=False)
        fl = fl * torch.tensor([ws / W, hs / H], device=fl.device, dtype=fl.dtype).view(1, 2, 1, 1)
        iy = torch.clamp(((2 * torch.arange(hs) + 1) * H) // (2 * hs), max=H - 1)
        ix = torch.clamp(((2 * torch.arange(ws) + 1) * W) // (2 * ws), max=W - 1)
        lab = label[b][:, iy.to(label.device)][:, :, ix.to(label.device)]
        img = F.pad(img, (0, pw, 0, ph))[..., top : top + oh, left : left + ow]
        fl = F.pad(fl, (0, pw, 0, ph))[..., top : top + oh, left : left + ow]
        lab = F.pad(lab, (0, pw, 0, ph), value=IGNORE)[..., top : top + oh, left : left + ow]
        if flip:
            img, lab, fl = img.flip(-1), lab.flip(-1), fl.flip(-1)
            fl = fl * torch.tensor([-1.0, 1.0], device=fl.device, dtype=fl.dtype).view(1, 2, 1, 1)
        for out, t in zip(outs, (img, lab, fl), strict=True):
            out.append(t)
    return torch.stack(outs[0]), torch.stack(outs[1]), torch.stack(outs[2])


# ---------------------------------------------------------------- cases
def case_strong_augment(ctx: Any) -> None:
    from run import Candidate, _compiled, _same, clone_read, fmt_shape, nbytes

    B, T, H, W = (2, 2, 64, 128) if ctx.quick else (2, 2, 512, 1024)
    clip = torch.rand(B, T, 3, H, W, generator=ctx.gen(11)).to(ctx.device)

    def gen() -> torch.Generator:
        return torch.Generator(device=ctx.device).manual_seed(0)

    got = DF.strong_augment(clip, generator=gen(), hue=0.1)
    _same("strong_augment", got, strong_augment_reference(clip, gen(), 0.1), atol=1e-5, rtol=1e-5)
    ctx.measure(
        op="strong_augment",
        case=f"B{B} T{T} 3x{H}x{W}, hue 0.1",
        shapes={"clip": fmt_shape(clip)},
        dtype="float32",
        main=Candidate("op", lambda _: DF.strong_augment(clip, generator=gen(), hue=0.1)),
        reference=Candidate("reference", lambda _: strong_augment_reference(clip, gen(), 0.1)),
        bounds=clone_read(clip),
        # dynamo takes no torch.Generator argument: the compiled op draws from the global RNG
        compiled=_compiled(ctx.compile_fn(lambda x: DF.strong_augment(x, hue=0.1)), clip),
        unchecked=False,
        input_bytes=nbytes(clip),
        notes=[
            "bounds: clone / read of the clip",
            "no value checks in this op",
            "compiled: generator=None (torch.compile takes no torch.Generator argument)",
        ],
    )


def _logits(ctx: Any) -> tuple[Tensor, str]:
    B, T, K, H, W = (2, 2, 19, 64, 128) if ctx.quick else (2, 2, 19, 256, 512)
    g = ctx.gen(12)
    logits = (torch.randn(B, T, K, H, W, generator=g) * 3).to(ctx.device)
    return logits, f"B{B} T{T} K{K} {H}x{W}"


def case_class_balance(ctx: Any) -> None:
    from run import Candidate, _compiled, _same, clone_read, fmt_shape, nbytes

    logits, case = _logits(ctx)
    K = logits.shape[2]
    running = torch.linspace(0.5, 1.0, K, device=ctx.device)

    def op(_: Any) -> Tensor:
        stats = DF.class_confidence_stats(logits)
        mean = torch.where(stats[1] > 0, stats[0] / stats[1].clamp(min=1), running)
        return DF.class_balanced_scores(logits, running.lerp(mean, 0.01))

    want, _ = class_balance_reference(logits, running, 0.99)
    _same("class_balance", op(None), want, rtol=1e-5, atol=1e-5)
    ctx.measure(
        op="class_balance",
        case=case,
        shapes={"logits": fmt_shape(logits)},
        dtype="float32",
        main=Candidate("op", op),
        reference=Candidate("reference", lambda _: class_balance_reference(logits, running, 0.99)),
        bounds=clone_read(logits),
        compiled=_compiled(ctx.compile_fn(DF.class_confidence_stats), logits),
        unchecked=False,
        input_bytes=nbytes(logits),
        notes=[
            "op: the ClassBalance step (statistics, running update, scores) without the module",
            "compiled: class_confidence_stats alone",
        ],
    )


def case_dist_align(ctx: Any) -> None:
    from run import Candidate, _compiled, _same, clone_read, fmt_shape, nbytes

    logits, case = _logits(ctx)
    B, T, K, H, W = logits.shape
    ys = torch.randint(0, K, (B, T, H, W), generator=ctx.gen(13)).to(ctx.device)
    ys[..., :4] = IGNORE
    src = torch.full((K,), 1.0 / K, device=ctx.device)
    tgt = torch.linspace(0.5, 1.5, K, device=ctx.device) / K

    def op(_: Any) -> Tensor:
        st = DF.class_distribution_stats(logits, ys)
        cnt, mass, npix = st[:K], st[K : 2 * K], st[2 * K]
        s = src.lerp(cnt / cnt.sum().clamp(min=1), 0.01)
        return DF.align_distribution(logits, s, tgt.lerp(mass / npix, 0.01))

    _same(
        "dist_align",
        op(None),
        dist_align_reference(logits, ys, src, tgt, 0.99),
        rtol=1e-5,
        atol=1e-5,
    )
    ctx.measure(
        op="dist_align",
        case=case,
        shapes={"logits": fmt_shape(logits), "source labels": fmt_shape(ys)},
        dtype="float32",
        main=Candidate("op", op),
        reference=Candidate(
            "reference", lambda _: dist_align_reference(logits, ys, src, tgt, 0.99)
        ),
        bounds=clone_read(logits),
        compiled=_compiled(ctx.compile_fn(DF.class_distribution_stats), logits, ys),
        unchecked=False,
        input_bytes=nbytes(logits, ys),
        notes=[
            "op: the DistributionAlignment step (statistics, priors, aligned logits)",
            "compiled: class_distribution_stats alone",
        ],
    )


def case_clip_augment(ctx: Any) -> None:
    from run import Candidate, _compiled, _same, blocky_labels, clone_read, fmt_shape, nbytes

    if ctx.quick:
        B, T, H, W, out = 2, 2, 144, 256, (96, 192)
    else:
        B, T, H, W, out = 2, 2, 720, 1280, (512, 1024)
    g = ctx.gen(14)
    clip = torch.rand(B, T, 3, H, W, generator=g)
    label = blocky_labels((B, T, H, W), 19, g)
    flow = torch.randn(B, T, 2, H, W, generator=g) * 4
    clip, label, flow = ctx.to(clip, label, flow)

    def draw() -> DF.ClipTransform:
        gen = torch.Generator(device=ctx.device).manual_seed(0)
        return DF.draw_clip_transform(B, (H, W), out, generator=gen, device=ctx.device)

    def op(_: Any) -> tuple[Tensor, Tensor, Tensor]:
        tf = draw()
        return (
            DF.apply_clip_transform(tf, clip),
            DF.apply_clip_transform(tf, label),
            DF.apply_clip_transform(tf, flow, mode="flow"),
        )

    tf0 = draw()
    # checked in float64 (float32 differs by the rounding of the sampling coordinates)
    c64, f64 = clip.double(), flow.double()
    got = (
        DF.apply_clip_transform(tf0, c64),
        DF.apply_clip_transform(tf0, label),
        DF.apply_clip_transform(tf0, f64, mode="flow"),
    )
    want = clip_augment_reference(tf0, c64, label, f64)
    for name, a, b in zip(("clip", "label", "flow"), got, want, strict=True):
        tol = 0.0 if name == "label" else 1e-9
        _same(f"clip_augment {name}", a, b, rtol=tol, atol=tol)

    def applied(c: Tensor, y: Tensor, f: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return (
            DF.apply_clip_transform(tf0, c),
            DF.apply_clip_transform(tf0, y),
            DF.apply_clip_transform(tf0, f, mode="flow"),
        )

    ctx.measure(
        op="clip_augment",
        case=f"B{B} T{T} {H}x{W} -> {out[0]}x{out[1]}, clip + label + flow",
        shapes={"clip": fmt_shape(clip), "label": fmt_shape(label), "flow": fmt_shape(flow)},
        dtype="float32",
        main=Candidate("op", op),
        reference=Candidate(
            "reference", lambda _: clip_augment_reference(draw(), clip, label, flow)
        ),
        bounds=clone_read(clip, label, flow),
        compiled=_compiled(ctx.compile_fn(applied), clip, label, flow),
        unchecked=False,
        input_bytes=nbytes(clip, label, flow),
        notes=[
            "op: draw_clip_transform + apply_clip_transform on the clip, labels and flow",
            "reference: per-clip F.interpolate / index lookup, pad, slice, flip",
            "bounds: clone / read of clip, labels and flow (the inputs, larger than the crops)",
            "compiled: the three applies with a fixed draw (no generator argument)",
            "no value checks in this op",
        ],
    )
