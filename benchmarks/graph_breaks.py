"""Where ``torch.compile`` breaks the graph of one whole method step, and why.

Runs ``torch._dynamo.explain`` on :meth:`dastc.methods.DASTC.loss` (an adapting
step: teacher pseudo-labels, clip mix with strong augmentation, the student pass
with the feature mix, prototypes, the losses) of a small two-stage model, value
checks off, and prints the number of graphs and breaks and each break's reason
with the dastc line where it happened, grouped::

    python benchmarks/graph_breaks.py                  # DASTC's default config
    python benchmarks/graph_breaks.py --mic            # with masked image consistency
    python benchmarks/graph_breaks.py --draws global   # draws from torch's global generator

A step compiles as one graph when it prints ``graph breaks: 0``: with the
method's own generator (the default, ``draws="generator"``) every draw breaks
the graph, because dynamo does not trace ``torch.Generator`` arguments; with
``MethodConfig(draws="global")`` the step is one graph.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import torch

from dastc import set_value_checks
from dastc.methods import DASTC, MethodConfig
from dastc.methods._toy import ToySegmenter

ROOT = Path(__file__).resolve().parents[1]


def explain(config: MethodConfig) -> tuple[int, int, collections.Counter[str]]:
    """(graphs, breaks, {"file:line reason": count}) of one adapting step."""
    torch.manual_seed(0)
    method = DASTC(ToySegmenter(4), 4, config)
    src = {"clip": torch.rand(2, 2, 3, 16, 16), "label": torch.randint(0, 4, (2, 2, 16, 16))}
    tgt = {"clip": torch.rand(2, 2, 3, 16, 16)}
    out = torch._dynamo.explain(method.loss)(src, tgt, {})
    where: collections.Counter[str] = collections.Counter()
    for b in out.break_reasons:
        frames = [f for f in b.user_stack if str(ROOT / "dastc") in f.filename]
        at = "?"
        if frames:
            f = frames[-1]
            at = f"{Path(f.filename).relative_to(ROOT)}:{f.lineno} ({f.name})"
        where[f"{at}: {b.reason.splitlines()[0][:80]}"] += 1
    return out.graph_count, out.graph_break_count, where


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mic", action="store_true", help="with masked image consistency")
    p.add_argument(
        "--draws", choices=("generator", "global"), default="generator",
        help="MethodConfig.draws: the method's generator (default) or torch's global one",
    )  # fmt: skip
    a = p.parse_args(argv)
    set_value_checks(False)
    graphs, breaks, where = explain(MethodConfig(adapt_start=0, mic=a.mic, draws=a.draws))
    print(f"graphs: {graphs}, graph breaks: {breaks}")
    for line, n in where.most_common():
        print(f"{n:3d} x {line}")


if __name__ == "__main__":
    main()
