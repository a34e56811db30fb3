"""Share of the example's training step spent in dastc's ops.

The step is the real one: ``dastc.methods.DASTC`` called as the example
(``examples/uda_training.py``) calls it::

    out = method(source, target); opt.zero_grad(); out.loss.backward()
    opt.step(); sched.step(); method.after_step()

with the example's defaults: ``TinySegmenter`` from ``build_model`` (width 32:
widths (16, 32, 64), 48 deep channels, flow-guided temporal fusion),
``MethodConfig(adapt_start=0)`` (otherwise the defaults: class-balanced
pseudo-labels, clip mix with strong augmentation, feature mix, prototype
alignment with adaptive weights to the source memory), AdamW with the example's
weight-decay groups and poly schedule, batches of ``SyntheticDrivingClips``
collated as the example does (clip, label, flow, flow_prev, valid; B=4, T=2,
64x128, K=9). Value checks are on (the default).

Two measurements, both reported:

* **timed ops**: the dastc calls of the step timed one by one inside it
  (forward only; their backward runs inside ``loss.backward()`` and is not
  counted): the method's submodules ``class_balance``, ``mix``,
  ``feature_mixer``, ``agg_src``/``agg_tgt`` (forward and ``update``:
  ``prototypes``), ``agg_src.memory_prototypes`` + ``align_loss``
  (``alignment``); ``pseudo_label``, ``strong_augment``, ``adaptive_weights``
  and ``weighted_cross_entropy`` as ``dastc/methods/da_stc.py`` calls them
  (patched in that module's namespace); ``teacher.update`` in ``after_step``.
  CUDA is synchronised around each call.
* **difference**: the median over rounds of (full step - the same step with
  those ops swapped for the cheapest stand-ins that keep the rest unchanged),
  over the median full step. Stand-ins: class balance and strong augmentation
  the identity; pseudo-labels a bare ``argmax`` with unit confidence and weight;
  clip mix the unmixed clips, labels and flows in a ``ClipMixOutput``; feature
  mix ``(target, source)`` features; adaptive weights ``None``; prototypes the
  deep features themselves (no memory update) and the alignment
  ``0 * (memory.mean() + deep_t.mean())`` (the memory side detached, as the real
  one is); the weighted cross-entropy a plain ``F.cross_entropy(reduction="none")``
  times the weight over the labelled pixels; no EMA update. Teacher forward,
  the one student pass (shallow, deep, temporal fusion), backward, AdamW and the
  scheduler are the same, so the difference includes the ops' backward passes;
  for the weighted cross-entropy it is only its cost above the plain one.

Full, stand-in and timed steps alternate, one of each per round on the same
batch, so machine load affects them alike; the difference is also given between
the fastest run of each (``_min``), and in process CPU time (``_cpu``), which
time spent waiting for a core while other processes run does not inflate.
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
from torch import Tensor, nn

from dastc import functional as DF
from dastc.functional import ClipMixOutput, PseudoLabel
from dastc.methods import DASTC, MethodConfig
from dastc.methods import da_stc as DA

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

__all__ = ["train_step_benchmark"]

#: the timed ops, in the order the step calls them
OPS = (
    "class_balance", "pseudo_label", "clip_mix", "strong_augment", "feature_mix",
    "weighted_ce", "adaptive_weights", "prototypes", "alignment", "ema_update",
)  # fmt: skip


class _OpTimer:
    """Accumulates wall time per dastc op (synchronising CUDA around each)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - t0) * 1e3


def _timed(timer: _OpTimer, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with timer(name):
            return fn(*args, **kwargs)

    return wrapper


class _Functional:
    """Stands in for ``dastc.functional`` inside ``da_stc``: some names replaced."""

    def __init__(self, **fns: Callable[..., Any]) -> None:
        self.__dict__.update(fns)

    def __getattr__(self, name: str) -> Any:
        return getattr(DF, name)


@contextmanager
def _patched(patches: list[tuple[Any, str, Any]]) -> Iterator[None]:
    """Set ``obj.name = new`` for each patch; restore every one on exit."""
    saved = []
    for obj, name, new in patches:
        own = name in vars(obj) or name in getattr(obj, "_modules", {})
        saved.append((obj, name, getattr(obj, name), own))
        setattr(obj, name, new)
    try:
        yield
    finally:
        for obj, name, old, own in reversed(saved):
            if own:
                setattr(obj, name, old)
            else:  # an instance attribute over a class method: remove it
                delattr(obj, name)


# ---------------------------------------------------------------- stand-ins
class _Identity(nn.Module):  # class balance
    def forward(self, logits: Tensor) -> Tensor:
        return logits


class _NoMix(nn.Module):  # clip mix: the unmixed clips, labels and flows
    def forward(
        self, xs: Tensor, ys: Tensor, xt: Tensor, yt: Tensor, wt: Tensor | None = None, **kw: Any
    ) -> ClipMixOutput:
        ones = torch.ones(ys.shape, device=xs.device)
        w = ones if wt is None else wt
        fs, ft = kw.get("src_flow"), kw.get("tgt_flow")
        return ClipMixOutput(xt, yt, w, None, xs, ys, ones, None, ft, fs)  # type: ignore[arg-type]


class _NoFeatureMix(nn.Module):
    def forward(self, src: Tensor, tgt: Tensor, *_: Any) -> tuple[Tensor, Tensor]:
        return tgt, src  # (s2t, t2s) unmixed


class _NoPrototypes(nn.Module):  # the features themselves, no memory
    last: Tensor | None = None

    def forward(self, features: Tensor, labels: Tensor, weights: Any = None) -> Tensor:
        self.last = features
        return features

    def update(self, protos: Any) -> None:
        pass

    def memory_prototypes(self) -> Tensor:
        assert self.last is not None
        return self.last.detach()


class _NoAlignment(nn.Module):
    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        return 0.0 * (src.mean() + tgt.mean())


def _argmax_labels(logits: Tensor, threshold: float = 0.968) -> PseudoLabel:
    label = logits.argmax(2)
    one = torch.ones(label.shape, device=logits.device)
    return PseudoLabel(label, one, one)


def _plain_wce(
    logits: Tensor, label: Tensor, weight: Tensor | None = None, ignore_index: int = 255, **_: Any
) -> Tensor:
    ce = F.cross_entropy(
        logits.flatten(0, 1), label.flatten(0, 1), ignore_index=ignore_index, reduction="none"
    )
    if weight is not None:
        ce = ce * weight.flatten(0, 1)
    return ce.sum() / (label != ignore_index).sum().clamp_min(1)


def _stand_ins(method: DASTC) -> list[tuple[Any, str, Any]]:
    dev = method.generator.device
    fns = _Functional(
        pseudo_label=_argmax_labels,
        adaptive_weights=lambda logits: None,
        weighted_cross_entropy=_plain_wce,
    )
    return [
        (method, "class_balance", _Identity()),
        (method, "mix", _NoMix()),
        (method, "feature_mixer", _NoFeatureMix()),
        (method, "agg_src", _NoPrototypes().to(dev)),
        (method, "agg_tgt", _NoPrototypes().to(dev)),
        (method, "align_loss", _NoAlignment()),
        (DA, "DF", fns),
        (DA, "strong_augment", lambda clip, **_: clip),
        (method.teacher, "update", lambda student, **_: None),
    ]


def _timers(method: DASTC, timer: _OpTimer) -> list[tuple[Any, str, Any]]:
    def wrap(obj: Any, attr: str, name: str) -> tuple[Any, str, Any]:
        return (obj, attr, _timed(timer, name, getattr(obj, attr)))

    fns = _Functional(
        pseudo_label=_timed(timer, "pseudo_label", DF.pseudo_label),
        adaptive_weights=_timed(timer, "adaptive_weights", DF.adaptive_weights),
        weighted_cross_entropy=_timed(timer, "weighted_ce", DF.weighted_cross_entropy),
    )
    return [
        wrap(method.class_balance, "forward", "class_balance"),
        wrap(method.mix, "forward", "clip_mix"),
        wrap(method.feature_mixer, "forward", "feature_mix"),
        wrap(method.agg_src, "forward", "prototypes"),
        wrap(method.agg_tgt, "forward", "prototypes"),
        wrap(method.agg_src, "update", "prototypes"),
        wrap(method.agg_tgt, "update", "prototypes"),
        wrap(method.agg_src, "memory_prototypes", "alignment"),
        wrap(method.align_loss, "forward", "alignment"),
        (DA, "DF", fns),
        (DA, "strong_augment", _timed(timer, "strong_augment", DA.strong_augment)),
        wrap(method.teacher, "update", "ema_update"),
    ]


# ---------------------------------------------------------------- setup
def _example_run(
    device: torch.device,
    size: tuple[int, int, int, int, int],
    n_batches: int,
    method_config: MethodConfig | None = None,
) -> tuple[DASTC, Callable[[dict[str, Tensor], dict[str, Tensor]], None], list[Any], int]:
    """The example's student, method, optimiser and scheduler, its step, and batches
    (``method_config`` default: ``MethodConfig(adapt_start=0)``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    from uda_config import Config, build_model
    from uda_data import collate

    from dastc.data import SyntheticDrivingClips

    B, T, H, W, K = size
    if K != SyntheticDrivingClips.NUM_CLASSES:
        raise ValueError(f"size: K must be {SyntheticDrivingClips.NUM_CLASSES}, got {K}")
    cfg = Config(batch=B, method_config=method_config or MethodConfig(adapt_start=0))
    torch.manual_seed(cfg.seed)
    student = build_model(cfg, K).to(device)
    decay = [p for p in student.parameters() if p.ndim > 1]
    no_decay = [p for p in student.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: (1 - min(i, cfg.iters - 1) / cfg.iters) ** 0.9
    )
    method = DASTC(student, K, cfg.method_config)

    def step(source: dict[str, Tensor], target: dict[str, Tensor]) -> None:
        out = method(source, target)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        sched.step()
        method.after_step()

    kw: dict[str, Any] = dict(clip_len=T, size=(H, W), seed=cfg.data.seed)
    src = SyntheticDrivingClips("source", "train", n_batches * B, **kw)
    tgt = SyntheticDrivingClips("target", "train", n_batches * B, **kw)
    batches = [
        tuple(
            {k: v.to(device) for k, v in collate([ds[j] for j in range(i * B, i * B + B)]).items()}
            for ds in (src, tgt)
        )
        for i in range(n_batches)
    ]
    n_params = sum(p.numel() for p in student.parameters())
    return method, step, batches, n_params


# ---------------------------------------------------------------- benchmark
def train_step_benchmark(
    device: torch.device,
    *,
    quick: bool = False,
    log: Callable[[str], None] = print,
    size: tuple[int, int, int, int, int] = (4, 2, 64, 128, 9),
) -> dict[str, Any]:
    """Time full, stand-in and op-timed training steps; return a benchmark record
    (see the module doc). ``size`` is ``(B, T, H, W, K)``; ``K`` must be 9 (the
    synthetic clips' classes)."""
    B, T, H, W, K = size
    n_batches = 2 if quick else 4
    method, step, batches, n_params = _example_run(device, size, n_batches)

    def run(kind: str, batch: Any) -> tuple[float, float, dict[str, float]]:
        """Wall ms, process CPU ms and per-op ms of one step of ``kind``."""
        timer = _OpTimer(device)
        patches = (
            _stand_ins(method) if kind == "stand-in" else _timers(method, timer)
            if kind == "timed" else []
        )  # fmt: skip
        with _patched(patches):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0, c0 = time.perf_counter(), time.process_time()
            step(*batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            ms, cpu = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
        return ms, cpu, timer.ms

    log("  timing train_step ...")
    for kind in ("full", "stand-in", "timed"):  # warm-up
        run(kind, batches[0])
    reps = 3 if quick else 25
    full: list[float] = []
    ident: list[float] = []
    cpu_full: list[float] = []
    cpu_ident: list[float] = []
    timed: list[dict[str, float]] = []
    full_timed: list[float] = []
    for r in range(reps):
        batch = batches[r % n_batches]
        for walls, cpus, kind in ((full, cpu_full, "full"), (ident, cpu_ident, "stand-in")):
            ms, cpu, _ = run(kind, batch)
            walls.append(ms)
            cpus.append(cpu)
        ms, _, ops = run("timed", batch)
        full_timed.append(ms)
        timed.append(ops)
    ms_full = statistics.median(full)
    ms_ident = statistics.median(ident)
    # Paired: each round's full step minus the stand-in step run right after it.
    ms_diff = statistics.median(f - i for f, i in zip(full, ident, strict=True))
    ms_diff_cpu = statistics.median(f - i for f, i in zip(cpu_full, cpu_ident, strict=True))
    per_op = {k: statistics.median(t.get(k, 0.0) for t in timed) for k in OPS}
    ms_ops = statistics.median(sum(t.values()) for t in timed)
    ms_ops_no_ce = statistics.median(sum(t.values()) - t.get("weighted_ce", 0.0) for t in timed)
    rec: dict[str, Any] = {
        "op": "train_step",
        "case": f"example DASTC step, TinySegmenter K{K}, source + target clips "
        f"B{B} T{T} 3x{H}x{W} with flow",
        "device": str(device),
        "dtype": "float32",
        "runs": reps,
        "ms_full": round(ms_full, 3),
        "ms_identity": round(ms_ident, 3),
        "ms_timed_step": round(statistics.median(full_timed), 3),
        "ms_dastc_ops": round(ms_ops, 3),
        "dastc_ops_ms": {k: round(v, 3) for k, v in per_op.items()},
        "ms_difference": round(ms_diff, 3),
        "share_by_difference": round(ms_diff / ms_full, 4),
        "share_by_difference_min": round((min(full) - min(ident)) / min(full), 4),
        "share_timed_ops": round(ms_ops / ms_full, 4),
        # the difference in process CPU time: what load from other processes does not inflate
        "ms_full_cpu": round(statistics.median(cpu_full), 3),
        "ms_difference_cpu": round(ms_diff_cpu, 3),
        "share_by_difference_cpu": round(ms_diff_cpu / statistics.median(cpu_full), 4),
        "share_timed_ops_without_ce": round(ms_ops_no_ce / ms_full, 4),
        "times_ms": {
            "full": [round(t, 2) for t in full],
            "identity": [round(t, 2) for t in ident],
            "full_cpu": [round(t, 2) for t in cpu_full],
            "identity_cpu": [round(t, 2) for t in cpu_ident],
        },
        "params": n_params,
        "notes": [
            "the step: dastc.methods.DASTC as examples/uda_training.py calls it "
            "(MethodConfig(adapt_start=0), the example's model, AdamW, schedule)",
            "difference: full step minus the step with the dastc ops replaced by stand-ins "
            "(includes the ops' backward; weighted CE: only its cost above a plain CE)",
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
