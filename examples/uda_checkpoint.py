"""Checkpoints of a UDA run: atomic, resumable bitwise, refusing another configuration."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import uda_dist

FORMAT = "dastc-example-v2"


def state(run: Any) -> dict[str, Any]:
    """Everything a resume needs; every process calls it (the mixing RNG states are gathered)."""
    return {
        "format": FORMAT,
        "config": json.loads(json.dumps(asdict(run.cfg))),
        "num_classes": run.K,
        "iteration": run.method.iteration,
        "student": run.student.state_dict(),
        "method": run.method.state_dict(),
        "opt": run.opt.state_dict(),
        "sched": run.sched.state_dict(),
        "scaler": None if run.scaler is None else run.scaler.state_dict(),
        "gen_ranks": uda_dist.gather_objects(run.method.generator.get_state().cpu()),
        "torch_rng": torch.get_rng_state(),
        "history": run.history,
        "evals": json.loads(json.dumps(run.evals)),
    }


def save(run: Any, path: Path) -> None:
    """Atomic: write a temporary file, then rename over ``path``. Every process
    calls it; rank 0 writes."""
    st = state(run)
    if run.rank == 0:
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(st, tmp)
        os.replace(tmp, path)
    if run.world > 1:
        dist.barrier()


def load(run: Any, path: Path) -> None:
    """Restore ``run`` from ``path``; refuse a checkpoint of another model, width,
    method or number of classes."""
    st = torch.load(path, map_location=run.device, weights_only=True)
    if st.get("format") != FORMAT:
        raise SystemExit(
            f"{path}: not a dastc example checkpoint of this version "
            f"(format {st.get('format')!r}, expected {FORMAT!r})"
        )
    mine, theirs = asdict(run.cfg), st["config"]
    for key in ("model", "width", "method"):
        if mine[key] != theirs[key]:
            raise SystemExit(
                f"{path}: checkpoint has {key}={theirs[key]!r}, this run {mine[key]!r}"
            )
    if st["num_classes"] != run.K:
        raise SystemExit(f"{path}: checkpoint has {st['num_classes']} classes, this run {run.K}")
    run.student.load_state_dict(st["student"])
    run.method.load_state_dict(st["method"])
    run.opt.load_state_dict(st["opt"])
    run.sched.load_state_dict(st["sched"])
    if run.scaler is not None and st.get("scaler") is not None:
        run.scaler.load_state_dict(st["scaler"])
    gens = st["gen_ranks"]
    try:
        if len(gens) != run.world:
            raise RuntimeError(f"saved by {len(gens)} process(es), resumed by {run.world}")
        run.method.generator.set_state(gens[run.rank].to("cpu"))
    except RuntimeError as e:  # another device type or another number of processes
        print(f"{path}: mixing RNG not restored ({e}); reseeding it")
        run.method.generator.manual_seed(run.gen_seed + run.method.iteration)
    torch.set_rng_state(st["torch_rng"].cpu())
    run.history = {k: list(v) for k, v in st["history"].items()}
    run.evals = list(st["evals"])
