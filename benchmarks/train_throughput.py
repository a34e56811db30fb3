"""Training throughput on the stand-in data at real sizes: is the model ever waiting for data?

Reads the VIPER → Cityscapes-Seq stand-in (``python -m dastc.data.standin ROOT``)
through the real readers, as the example does (``--source viper --source-list ...
--target cityscapes_seq``, frames resized to ``--size``), with the example's
loader (``examples/uda_loader.py``: a ``DataLoader`` over the iterations' index
lists) and 0, 2 and 4 worker processes, and runs the example's step for
``source_only``, ``image_dacs`` and ``dastc`` with a reduced model (the tiny
segmenter, ``--width``).

A real model's step on a GPU takes a few hundred ms during which the CPU is free
to decode the next clips. The benchmark emulates that with ``--step-cost``
seconds of ``time.sleep`` added to every step (the default 0.3 s: about a
DA-STC step of a ResNet-101 at 512 x 1024 on a current GPU), so the workers get
the CPU the way they would next to a GPU. Reported per configuration:

* ``it/s``: iterations per second (median of the measured iterations);
* ``wait``: the share of an iteration spent blocked on the next batch
  (``next(loader)`` for both domains, the host-to-device copy included);
* with ``--fixed-cost`` there is no model at all: each step is ``--step-cost``
  seconds of sleep, which measures what the loading alone costs next to a GPU;
* ``peak MiB``: the process's peak resident memory over the run (``VmHWM``;
  with ``--device cuda``, ``torch.cuda.max_memory_allocated``).

Ratios are against the 0-worker run of the same method in the same invocation::

    python benchmarks/train_throughput.py --data /tmp/standin --size 512 1024
    python benchmarks/train_throughput.py --data /tmp/standin --device cuda --step-cost 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from uda_config import Config, build_model  # noqa: E402
from uda_data import DataSpec, EpochOrder, build_datasets  # noqa: E402
from uda_loader import loader  # noqa: E402
from uda_optim import build_optimizer, build_schedule  # noqa: E402

from dastc.methods import METHODS, MethodConfig  # noqa: E402


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(args: argparse.Namespace, method: str, workers: int) -> dict[str, Any]:
    data = Path(args.data)
    spec = DataSpec(
        source="viper", target="cityscapes_seq", source_root=str(data / "VIPER"),
        source_list=str(data / "Viper_list" / "train.txt"),
        source_flow_root=str(data / "viper_flow"), target_root=str(data / "cityscapes"),
        target_flow_root=str(data / "cityscapes_flow"), size=tuple(args.size), clip_len=2,
    )  # fmt: skip
    ds = build_datasets(spec)
    device = torch.device(args.device)
    name = "source_only" if args.fixed_cost else method
    cfg = Config(method=name, width=args.width, data=spec, device=args.device)
    student = build_model(cfg, ds.num_classes).to(device)
    m = METHODS["source_only" if args.fixed_cost else method](
        student, ds.num_classes, MethodConfig(adapt_start=0)
    )
    opt = build_optimizer(student, "adamw", 1e-4, 1e-4)
    sched = build_schedule(opt, 10_000)
    orders = [EpochOrder(len(d), args.batch, 1 + i) for i, d in enumerate((ds.source, ds.target))]
    its = [
        loader(d, o, 0, workers, device.type == "cuda")
        for d, o in zip((ds.source, ds.target), orders, strict=True)
    ]
    waits, totals = [], []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        bs, bt = ({k: v.to(device, non_blocking=True) for k, v in next(it).items()} for it in its)
        t1 = time.perf_counter()
        if not args.fixed_cost:
            out = m(bs, bt)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            sched.step()
            m.after_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if args.step_cost:
            time.sleep(args.step_cost)
        t2 = time.perf_counter()
        if i >= args.warmup:
            waits.append(t1 - t0)
            totals.append(t2 - t0)
    for it in its:
        it.close()
    step = statistics.median(totals)
    return {
        "method": "fixed-cost" if args.fixed_cost else method,
        "workers": workers,
        "it_per_s": 1.0 / step,
        "wait_share": sum(waits) / sum(totals),
        "wait_ms_median": 1000 * statistics.median(waits),
        "step_ms_median": 1000 * step,
        "peak_mib": _peak_mib(device),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a stand-in root (python -m dastc.data.standin)")
    p.add_argument("--size", type=int, nargs=2, default=[512, 1024])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--width", type=int, default=16, help="tiny model width (reduced model)")
    p.add_argument("--methods", nargs="+", default=["source_only", "image_dacs", "dastc"])
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    p.add_argument("--iters", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--step-cost", type=float, default=0.3,
                   help="seconds of sleep added to each step (a GPU model's step)")  # fmt: skip
    p.add_argument("--fixed-cost", action="store_true",
                   help="no model: each step is --step-cost s of sleep (a GPU model whose "
                   "step leaves the CPU to the loader): the loading alone")  # fmt: skip
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    h, w = args.size
    print(f"# {h}x{w}, batch {args.batch} clip(s) of 2 frames per domain, tiny model "
          f"width {args.width}, step cost {args.step_cost} s, {args.device}")  # fmt: skip
    print("| method | workers | it/s | vs 0 workers | wait share | wait ms | step ms | peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for method in ["fixed-cost"] if args.fixed_cost else args.methods:
        base = None
        for w in args.workers:
            r = measure(args, method, w)
            base = base or r["it_per_s"]
            rows.append(r)
            print(f"| {method} | {w} | {r['it_per_s']:.2f} | {r['it_per_s'] / base:.2f}x | "
                  f"{100 * r['wait_share']:.1f}% | {r['wait_ms_median']:.0f} | "
                  f"{r['step_ms_median']:.0f} | {r['peak_mib']:.0f} |", flush=True)  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "rows": rows}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
