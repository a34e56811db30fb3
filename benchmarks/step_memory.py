"""Peak memory of one DA-STC training step against one DACS (``image_dacs``) step.

Usage::

    python benchmarks/step_memory.py [--device cpu|cuda] [--size H W] [--clip-len T]
        [--batch B] [--models smp:deeplabv3plus:resnet101 smp:segformer:mit_b5]
        [--methods dastc image_dacs] [--classes K] [--warmup N] [--threads N]
        [--timeout S] [--json PATH]

Defaults: the paper's setting, 512x1024 crops, one clip of 2 frames per domain
(``B=1, T=2``), 19 classes, the example's smp models (``examples/smp_segmenter.py``,
random initialisation: nothing is downloaded; needs segmentation-models-pytorch).

Each (model, method) pair runs in a fresh Python process, which builds the
student (``SmpSegmenter``), the method (``dastc.methods.METHODS[name]`` with
``MethodConfig(adapt_start=0)``, otherwise the defaults: DA-STC with clip mix,
shallow-feature mix, temporal fusion and prototype alignment; ``image_dacs``
the same pipeline per frame, with the feature mix but no flow, no fusion and no
alignment), AdamW over the student, and one random source and target batch
(``clip`` in ``[0, 1]``, ``label``, backward flow ``flow_prev``). It runs
``--warmup`` steps (default 1: the optimiser's state, the gradients and the
prototype memory exist afterwards, as in a running training), then measures one
step as ``examples/uda_training.py`` takes it::

    out = method(source, target); opt.zero_grad(set_to_none=True)
    out.loss.backward(); opt.step(); method.after_step()

What is measured:

* CPU: the process's resident set size (``/proc/self/status``): ``VmRSS``
  before the step (after ``gc.collect()`` and glibc ``malloc_trim(0)``), and
  ``VmHWM`` after it, the peak having been reset to the current RSS just before
  the step (``5`` written to ``/proc/self/clear_refs``, as ``_timing.py`` does).
  ``step`` = ``VmHWM - VmRSS``, what the step needed above the resident state
  (model, EMA teacher, optimiser state, batches); ``peak`` = ``VmHWM``, the
  whole process at the step's peak (Python, torch, the libraries included).
  ``ru_maxrss`` (the process's lifetime peak, ``resource.getrusage``) is printed
  as a cross-check.
* CUDA: ``torch.cuda.max_memory_allocated()`` during the step (``peak``) and
  minus ``memory_allocated()`` before it (``step``); tensors only, not the
  caching allocator's reserve nor the CUDA context.

The ratios printed are DA-STC / DACS of both figures, per model.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
for _p in (HERE, EXAMPLES):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from _timing import _proc_status_kb, _reset_peak_rss, _trim  # noqa: E402

MODELS = ("smp:deeplabv3plus:resnet101", "smp:segformer:mit_b5")
METHOD_NAMES = ("dastc", "image_dacs")
MIB = 1024 * 1024


def _batch(g: torch.Generator, b: int, t: int, h: int, w: int, k: int) -> dict[str, Any]:
    return {
        "clip": torch.rand(b, t, 3, h, w, generator=g),
        "label": torch.randint(0, k, (b, t, h, w), generator=g),
        "flow_prev": 2.0 * torch.randn(b, t, 2, h, w, generator=g),
    }


def measure_one(a: argparse.Namespace) -> dict[str, Any]:
    """Build the model, method, optimiser and batches; warm up; measure one step."""
    from smp_segmenter import SmpSegmenter, parse_smp_name

    from dastc.methods import METHODS, MethodConfig

    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    h, w = a.size
    torch.manual_seed(0)
    arch, encoder = parse_smp_name(a.model)
    student = SmpSegmenter(arch, encoder, a.classes).to(device)
    if h % student.output_stride or w % student.output_stride:
        raise SystemExit(f"--size: {a.model} needs multiples of {student.output_stride}")
    method = METHODS[a.method](student, a.classes, MethodConfig(adapt_start=0))
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    source, target = (
        {k: v.to(device) for k, v in _batch(g, a.batch, a.clip_len, h, w, a.classes).items()}
        for _ in range(2)
    )

    def step() -> float:
        out = method(source, target)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        method.after_step()
        return float(out.loss.detach())

    t0 = time.perf_counter()
    for _ in range(a.warmup):
        step()
    warm_s = time.perf_counter() - t0
    gc.collect()
    rec: dict[str, Any] = {"model": a.model, "method": a.method, "device": str(device)}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        loss = step()
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated(device)
        rec.update(before_mib=before / MIB, step_mib=(peak - before) / MIB, peak_mib=peak / MIB)
    else:
        _trim()
        rss = _proc_status_kb("VmRSS")
        if rss is None or not _reset_peak_rss():
            raise SystemExit("cannot read or reset the peak RSS in /proc/self on this system")
        t0 = time.perf_counter()
        loss = step()
        seconds = time.perf_counter() - t0
        hwm = _proc_status_kb("VmHWM") or 0
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        rec.update(
            before_mib=rss / 1024, step_mib=(hwm - rss) / 1024, peak_mib=hwm / 1024,
            ru_maxrss_mib=maxrss / 1024,
        )  # fmt: skip
    rec.update(
        params_m=sum(p.numel() for p in student.parameters()) / 1e6,
        shallow=f"{student.shallow_channels}ch /{student.shallow_stride}",
        deep_channels=student.deep_channels,
        seconds_step=round(seconds, 2),
        seconds_warmup=round(warm_s, 2),
        loss=loss,
        threads=torch.get_num_threads(),
    )
    return rec


def _child_argv(a: argparse.Namespace, model: str, method: str) -> list[str]:
    return [
        sys.executable, __file__, "--one", "--model", model, "--method", method,
        "--device", a.device, "--size", str(a.size[0]), str(a.size[1]),
        "--clip-len", str(a.clip_len), "--batch", str(a.batch), "--classes", str(a.classes),
        "--warmup", str(a.warmup), "--threads", str(a.threads),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--size", type=int, nargs=2, default=[512, 1024], metavar=("H", "W"))
    p.add_argument("--clip-len", type=int, default=2)
    p.add_argument("--batch", type=int, default=1, help="clips per domain")
    p.add_argument("--classes", type=int, default=19)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--methods", nargs="+", default=list(METHOD_NAMES))
    p.add_argument("--warmup", type=int, default=1, help="steps before the measured one")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    p.add_argument("--json", type=Path, default=None, help="write the records here")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print("RESULT " + json.dumps(measure_one(a)), flush=True)
        return []

    unit = "RSS" if a.device == "cpu" else "max_memory_allocated"
    print(
        f"# one training step, B={a.batch} clip(s) of T={a.clip_len} frames per domain, "
        f"{a.size[0]}x{a.size[1]}, K={a.classes}, {a.device} ({unit}); MiB"
    )
    records: list[dict[str, Any]] = []
    for model in a.models:
        by_method: dict[str, dict[str, Any]] = {}
        for method in a.methods:
            try:
                run = subprocess.run(
                    _child_argv(a, model, method), capture_output=True, text=True,
                    timeout=a.timeout, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                print(f"{model:30s} {method:11s} timed out after {a.timeout:.0f} s")
                continue
            lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
            if run.returncode or not lines:
                tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
                why = "killed (out of memory?)" if run.returncode in (-9, 137) else tail
                print(f"{model:30s} {method:11s} failed (rc {run.returncode}): {why}")
                continue
            rec = json.loads(lines[-1][len("RESULT ") :])
            rec.update(size=list(a.size), clip_len=a.clip_len, batch=a.batch, classes=a.classes)
            records.append(rec)
            by_method[method] = rec
            extra = f" ru_maxrss {rec['ru_maxrss_mib']:8.0f}" if "ru_maxrss_mib" in rec else ""
            print(
                f"{model:30s} {method:11s} step {rec['step_mib']:8.0f}  peak "
                f"{rec['peak_mib']:8.0f}  (before {rec['before_mib']:7.0f}{extra}; "
                f"{rec['params_m']:.1f}M params, step {rec['seconds_step']:.1f} s)",
                flush=True,
            )
        if "dastc" in by_method and "image_dacs" in by_method:
            d, i = by_method["dastc"], by_method["image_dacs"]
            print(
                f"{model:30s} DA-STC / DACS: step x{d['step_mib'] / i['step_mib']:.2f}, "
                f"peak x{d['peak_mib'] / i['peak_mib']:.2f}",
                flush=True,
            )
    if a.json is not None:
        a.json.write_text(json.dumps(records, indent=2))
    return records


if __name__ == "__main__":
    main()
