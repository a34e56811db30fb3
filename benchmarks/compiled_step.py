"""The example's whole training step, eager against ``torch.compile`` of the method's step.

The step is the one ``benchmarks/train_step.py`` times (the example's
``TinySegmenter``, ``DASTC`` with the example's defaults and ``adapt_start=0``,
AdamW, batches of ``SyntheticDrivingClips``), with
``MethodConfig(draws="global")``: the step's random draws come from torch's
global generator, which ``torch.compile`` traces, so the method's step
(teacher pseudo-labels, clip mix, strong augmentation, the student pass, the
feature mix, prototypes and the losses) is one graph. Only
:meth:`dastc.methods.DASTC.adapt_loss` is compiled (what
:meth:`~dastc.methods.DASTC.loss` calls after the warm start; it reads no
per-step Python state, so one graph serves every step); the backward pass runs
through the compiled graph's backward, the optimiser step and the EMA update
stay eager::

    python benchmarks/compiled_step.py [--device cpu|cuda] [--rounds N] [--threads N]

Eager and compiled steps alternate round by round on the same batches (two
methods from the same initial weights), so machine load affects both alike.
It prints the median step of each, their ratio, the compile time (the first
compiled steps, until no more graphs are compiled), the number of graphs and
graph breaks of one step (``torch._dynamo.explain`` of ``loss``), and the
graphs compiled after the warm-up (0: no recompiles).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import _example_run

from dastc.methods import MethodConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compiled_step_benchmark(
    device: torch.device,
    *,
    rounds: int = 20,
    size: tuple[int, int, int, int, int] = (4, 2, 64, 128, 9),
    log: Any = print,
) -> dict[str, Any]:
    """Median eager and compiled step times (ms), their ratio, compile time and graph
    counts; see the module doc."""
    cfg = MethodConfig(adapt_start=0, draws="global")
    _, eager_step, batches, _ = _example_run(device, size, 4, cfg)
    method, step, _, _ = _example_run(device, size, 4, cfg)
    explained = torch._dynamo.explain(method.loss)(*batches[0], {})
    graphs, breaks = explained.graph_count, explained.graph_break_count
    torch._dynamo.reset()
    method.adapt_loss = torch.compile(method.adapt_loss)  # type: ignore[method-assign]
    counters = torch._dynamo.utils.counters

    def timed(fn: Any, batch: Any) -> float:
        _sync(device)
        t0 = time.perf_counter()
        fn(*batch)
        _sync(device)
        return (time.perf_counter() - t0) * 1e3

    log("  compiling ...")
    t0 = time.perf_counter()
    warm = 0
    while True:  # until a step compiles nothing new
        before = sum(counters["stats"].values())
        step(*batches[warm % len(batches)])
        warm += 1
        if warm >= 3 and sum(counters["stats"].values()) == before:
            break
        if warm > 12:
            break
    compile_s = time.perf_counter() - t0
    frames_after_warmup = counters["stats"].get("unique_graphs", 0)
    for i in range(2):
        eager_step(*batches[i])
    log("  timing ...")
    eager, compiled = [], []
    for r in range(rounds):
        batch = batches[r % len(batches)]
        eager.append(timed(eager_step, batch))
        compiled.append(timed(step, batch))
    recompiles = counters["stats"].get("unique_graphs", 0) - frames_after_warmup
    e, c = statistics.median(eager), statistics.median(compiled)
    return {
        "eager_ms": round(e, 2),
        "compiled_ms": round(c, 2),
        "speedup": round(e / c, 3),
        "compile_s": round(compile_s, 1),
        "warmup_steps": warm,
        "graphs": graphs,
        "graph_breaks": breaks,
        "graphs_compiled_after_warmup": recompiles,
        "rounds": rounds,
        "size": "B{} T{} {}x{} K{}".format(*size),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    rec = compiled_step_benchmark(torch.device(a.device), rounds=a.rounds)
    for k, v in rec.items():
        print(f"{k}: {v}")
    print(
        f"eager {rec['eager_ms']} ms, compiled {rec['compiled_ms']} ms per step: "
        f"compiled is {rec['speedup']}x eager ({rec['graphs']} graph(s), "
        f"{rec['graph_breaks']} break(s); compile {rec['compile_s']} s)"
    )


if __name__ == "__main__":
    main()
