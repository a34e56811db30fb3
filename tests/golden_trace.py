"""The golden trace: what the example's training computes, recorded before a refactor.

Short runs of every method, of every ablation switch and of the adaptation
options (tiny sizes, a 2-iteration warm start so that adaptation runs for 2
iterations), each through the example's command line, plus the 2-process DDP
run of ``test_example_distributed.py``. For each run it records the per-iteration
history of every logged quantity, the final student and teacher mIoU and a
float64 fingerprint of the final student and teacher weights.

``python tests/golden_trace.py --write`` records ``tests/golden/trace.json``;
``tests/test_golden_trace.py`` recomputes the trace and compares it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from conftest import EXAMPLES, free_port

TRACE = Path(__file__).resolve().parent / "golden" / "trace.json"

COMMON = ["--size", "32", "64", "--train-clips", "4", "--val-clips", "2", "--batch", "2",
          "--iters", "4", "--adapt-start", "2", "--log-every", "1", "--eval-every", "100",
          "--ckpt-every", "100", "--render-workers", "0", "--threads", "1", "--no-progress",
          "--seed", "1"]  # fmt: skip
ABLATIONS = ["clip-mix", "s2t", "t2s", "feature-mix", "align", "temporal", "adaptive-weights",
             "strong-aug", "class-balance"]  # fmt: skip
RUNS: dict[str, list[str]] = {
    "dastc": ["--method", "dastc"],
    "source_only": ["--method", "source_only"],
    "image_dacs": ["--method", "image_dacs"],
    "oracle": ["--method", "oracle"],
    **{f"dastc-no-{a}": ["--method", "dastc", f"--no-{a}"] for a in ABLATIONS},
    "dastc-options": [
        "--method",
        "dastc",
        "--hue-jitter",
        "0.1",
        "--rare-below",
        "0.05",
        "--pseudo-weight",
        "pixel",
        "--dist-align",
        "--align-kind",
        "mmd",
        "--no-align-memory",
        "--feature-blend",
        "0.7",
    ],
    "dastc-clip-len-3": ["--method", "dastc", "--clip-len", "3"],
}
# the run of tests/test_example_distributed.py, on 2 gloo processes
DDP = ["--method", "dastc", "--size", "32", "64", "--train-clips", "8", "--val-clips", "6",
       "--iters", "2", "--adapt-start", "0", "--log-every", "1", "--eval-every", "100",
       "--ckpt-every", "100", "--no-clip-mix", "--no-feature-mix", "--no-strong-aug",
       "--render-workers", "0", "--no-progress", "--seed", "3", "--batch", "2"]  # fmt: skip


def _fingerprint(state: dict[str, Any]) -> list[float]:
    """``[sum, sum of squares]`` in float64 over every floating tensor of a state dict."""
    s = s2 = 0.0
    for v in state.values():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            d = v.double()
            s += float(d.sum())
            s2 += float((d * d).sum())
    return [s, s2]


def _teacher_state(ck: dict[str, Any]) -> dict[str, Any]:
    """The EMA teacher's state dict: its own entry, or the method's ``teacher.*`` entries."""
    if "teacher" in ck:
        return ck["teacher"]  # type: ignore[no-any-return]
    return {k[len("teacher.") :]: v for k, v in ck["method"].items() if k.startswith("teacher.")}


def _read(out: Path) -> dict[str, Any]:
    res = json.loads((out / "results.json").read_text())
    ck = torch.load(out / "checkpoint.pt", weights_only=True, map_location="cpu")
    return {
        "history": ck["history"],
        "miou": res["miou"],
        "miou_teacher": res["miou_teacher"],
        "student": _fingerprint(ck["student"]),
        "teacher": _fingerprint(_teacher_state(ck)),
    }


def record_run(name: str, tmp: Path) -> dict[str, Any]:
    """Train run ``name`` of :data:`RUNS` in this process; return its trace."""
    from train_video_uda import main

    out = tmp / name
    threads = torch.get_num_threads()
    try:
        main([*RUNS[name], *COMMON, "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return _read(out)


def record_ddp(tmp: Path, tries: int = 2) -> dict[str, Any]:
    """The 2-process gloo run (``torchrun``) of :data:`DDP`; return its trace.

    A launch that fails is tried once more on another port and in a fresh folder (the
    free port can be taken between the check and torchrun's bind); the error of the
    last try is raised with the launcher's output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    failures = []
    for attempt in range(tries):
        out = tmp / f"ddp{attempt}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(free_port()), str(EXAMPLES / "train_video_uda.py"), *DDP,
               "--out", str(out)]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode == 0:
            return _read(out)
        failures.append(f"try {attempt + 1}: rc {proc.returncode}\n"
                        f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")  # fmt: skip
    raise RuntimeError("\n".join(failures))


def _cpu_vendor() -> str:
    """``vendor_id`` of ``/proc/cpuinfo`` (``GenuineIntel``, ``AuthenticAMD``), or ``unknown``.

    The same kernel set (e.g. AVX512) rounds differently on the two vendors: MKL picks
    its code paths by vendor too.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, str]:
    """What float results depend on: torch's version and the CPU kernels it picks."""
    return {
        "torch": torch.__version__.split("+")[0],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_vendor": _cpu_vendor(),
        "machine": platform.machine(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--write", action="store_true", help=f"write {TRACE}")
    p.add_argument("--tmp", type=Path, default=Path("runs/golden"))
    a = p.parse_args()
    trace = {"machine": machine(), "runs": {}}
    for name in RUNS:
        trace["runs"][name] = record_run(name, a.tmp)
        print(name, trace["runs"][name]["miou"], flush=True)
    trace["runs"]["ddp-2-processes"] = record_ddp(a.tmp)
    text = json.dumps(trace, indent=1)
    if a.write:
        TRACE.parent.mkdir(parents=True, exist_ok=True)
        TRACE.write_text(text + "\n")
        print(f"wrote {TRACE}")


if __name__ == "__main__":
    main()
