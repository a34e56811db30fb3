"""Run a grid of UDA trainings (methods × seeds × shifts × ablations) and tabulate mIoU.

Each run is ``train_video_uda.py`` in its own process (``--jobs`` at a time),
writing ``<root>/<shift>/<name>/seed<k>/results.json``; the summary (mean ± std
over seeds, and the share of the oracle gap each method closes) is printed
and written to ``<root>/summary.md`` and ``<root>/summary.json``::

    python examples/run_grid.py --root runs/grid --seeds 0 1 2 --jobs 2
    python examples/run_grid.py --root runs/grid --summarize-only

Shifts are named presets of ``--shift KEY=VALUE`` overrides of the default
synthetic target shift; ablations are DA-STC runs with one component off.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dastc.methods

HERE = Path(__file__).resolve().parent

SHIFTS: dict[str, list[str]] = {
    "default": [],
    "appearance": ["layout=0"],  # colour/texture/blur/noise only, source geometry
    "strong-colour": ["hue=120", "layout=0.5"],
}
METHODS = list(dastc.methods.METHODS)
# one DA-STC run with one component off, for every switch of MethodConfig
ABLATIONS: dict[str, list[str]] = {
    f"dastc-no-{flag}": [f"--no-{flag}"]
    for flag in (k.replace("_", "-") for k in dastc.methods.MethodConfig.ablations())
}


def run_one(out: Path, args: list[str], env: dict[str, str]) -> tuple[Path, float]:
    if (out / "results.json").is_file():
        return out, 0.0
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    cmd = [
        sys.executable,
        str(HERE / "train_video_uda.py"),
        "--out",
        str(out),
        "--no-progress",
        *args,
    ]
    with open(out / "stdout.txt", "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, check=False)
    return out, time.time() - t


def summarize(root: Path) -> dict[str, dict[str, dict[str, float]]]:
    table: dict[str, dict[str, dict[str, float]]] = {}
    for res in sorted(root.glob("*/*/seed*/results.json")):
        shift, name = res.parts[-4], res.parts[-3]
        r = json.loads(res.read_text())
        table.setdefault(shift, {}).setdefault(name, {})[res.parts[-2]] = r["miou"]
    lines = [
        "| shift | run | mIoU student (mean ± std) | seeds | gap closed |",
        "|---|---|---|---|---|",
    ]
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for shift, runs in table.items():
        stats = {n: _stats(list(v.values())) for n, v in runs.items()}
        so, orc = stats.get("source_only", {}).get("mean"), stats.get("oracle", {}).get("mean")
        for n in sorted(
            stats, key=lambda n: (n not in METHODS, METHODS.index(n) if n in METHODS else 0, n)
        ):
            st = stats[n]
            gap = ""
            if (
                so is not None
                and orc is not None
                and orc > so
                and n not in ("source_only", "oracle")
            ):
                st["gap_closed"] = (st["mean"] - so) / (orc - so)
                gap = f"{100 * st['gap_closed']:.0f}%"
            lines.append(
                f"| {shift} | {n} | {st['mean']:.1f} ± {st['std']:.1f} | {int(st['n'])} | {gap} |"
            )
        summary[shift] = stats
    text = "\n".join(lines)
    print(text)
    (root / "summary.md").write_text(text + "\n")
    (root / "summary.json").write_text(json.dumps({"table": table, "stats": summary}, indent=2))
    return summary


def _stats(v: list[float]) -> dict[str, float]:
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return {"mean": m, "std": sd, "n": float(len(v))}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", type=Path, default=Path("runs/grid"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=list(SHIFTS))
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--ablations", nargs="*", default=list(ABLATIONS), choices=list(ABLATIONS))
    p.add_argument("--ablation-shift", default="default", choices=list(SHIFTS))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--summarize-only", action="store_true")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: passed to every run")
    a = p.parse_args()
    if not a.summarize_only:
        extra = [x for x in a.extra if x != "--"]
        jobs: list[tuple[Path, list[str]]] = []
        # order: main shift's methods, then ablations, then the other shifts
        shifts = sorted(a.shifts, key=lambda sh: sh != a.ablation_shift)
        for k, shift in enumerate(shifts):
            sargs = [f"--shift={kv}" for kv in SHIFTS[shift]]
            for m in a.methods:
                for s in a.seeds:
                    run_args = ["--method", m, "--seed", str(s), *sargs, *extra]
                    jobs.append((a.root / shift / m / f"seed{s}", run_args))
            if k == 0:
                for name in a.ablations:
                    abl = [f"--shift={kv}" for kv in SHIFTS[a.ablation_shift]]
                    for s in a.seeds:
                        run_args = [
                            "--method",
                            "dastc",
                            "--seed",
                            str(s),
                            *ABLATIONS[name],
                            *abl,
                            *extra,
                        ]
                        jobs.append((a.root / a.ablation_shift / name / f"seed{s}", run_args))
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
        extra_threads = ["--threads", str(a.threads)]
        print(f"{len(jobs)} runs, {a.jobs} at a time")
        with ThreadPoolExecutor(a.jobs) as ex:
            futs = [ex.submit(run_one, out, args + extra_threads, env) for out, args in jobs]
            for f in futs:
                out, sec = f.result()
                print(f"done {out} ({sec:.0f} s)", flush=True)
    summarize(a.root)


if __name__ == "__main__":
    main()
