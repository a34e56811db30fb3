"""The example under ``torchrun``: 2 gloo processes equal 1 process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import free_port

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

from conftest import EXAMPLES
from train_video_uda import main

# DA-STC with self-training from the first step: class-balanced pseudo-labels, prototypes with
# adaptive weights (all-reduced), the alignment loss, the EMA teacher and the
# temporal fusion. The class mix is off: each process draws its own classes, so
# mixed batches differ from a single process's by design.
COMMON = ["--method", "dastc", "--size", "32", "64", "--train-clips", "8", "--val-clips", "6",
          "--iters", "2", "--adapt-start", "0", "--log-every", "1", "--eval-every", "100",
          "--ckpt-every", "100", "--no-clip-mix", "--no-feature-mix", "--no-strong-aug",
          "--render-workers", "0", "--no-progress", "--seed", "3"]  # fmt: skip


def _close(
    a: torch.Tensor, b: torch.Tensor, what: str, atol: float = 1e-5, rtol: float = 1e-4
) -> None:
    assert a.shape == b.shape, what
    if a.is_floating_point():
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")
    else:
        assert torch.equal(a, b), what


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    main([*COMMON, "--batch", "4", "--out", str(one)])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(free_port()), str(EXAMPLES / "train_video_uda.py"),
        *COMMON, "--batch", "2", "--out", str(two),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # rank 0 alone wrote the files (the progress line is printed once)
    assert proc.stdout.count("target mIoU") == 1

    a = torch.load(one / "checkpoint.pt", weights_only=True)
    b = torch.load(two / "checkpoint.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 2
    # The gradients, through AdamW's moments (the first is 0.1 * (0.9 g1 + g2)): a
    # missing all-reduce or a wrong 1/world factor shows here, while Adam's steps
    # themselves are invariant to the gradient's scale.
    sa, sb = a["opt"]["state"], b["opt"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:  # float32 sums in another order: 1e-3 of the tensor's largest entry
        for m in ("exp_avg", "exp_avg_sq"):
            x, y = sa[i][m], sb[i][m]
            _close(x, y, f"opt.{i}.{m}", atol=1e-3 * float(x.abs().max()), rtol=1e-3)
    # Parameters: Adam divides by sqrt(v), so for an element whose gradient is ~0
    # float-rounding noise moves it by up to ~lr; allow a tenth of lr (2e-3).
    for part in ("student", "method"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            if isinstance(a[part][k], torch.Tensor):
                _close(a[part][k], b[part][k], f"{part}.{k}", atol=2e-4)
    # class-balance running confidences, all-reduced: equal, and moved from their start
    cb = "class_balance.confidence"
    _close(a["method"][cb], b["method"][cb], cb)
    assert bool((a["method"][cb] != 1).any())
    # prototypes were really aggregated (not still the empty memory)
    assert a["method"]["agg_tgt.memory"].abs().sum() > 0
    # losses (averaged over processes when logged) per iteration
    assert a["history"].keys() == b["history"].keys()
    for k in ("loss", "src", "align", "pl_conf", "pl_hist"):
        ha, hb = a["history"][k], b["history"][k]
        assert [p[0] for p in ha] == [p[0] for p in hb] == [1, 2], k
        _close(torch.tensor([p[1] for p in ha]), torch.tensor([p[1] for p in hb]), k)
    # distributed evaluation (3 val clips per process, matrices summed) = single process
    ra = json.loads((one / "results.json").read_text())
    rb = json.loads((two / "results.json").read_text())
    assert rb["miou"] == pytest.approx(ra["miou"], abs=1e-4)
    assert rb["miou_teacher"] == pytest.approx(ra["miou_teacher"], abs=1e-4)
    assert rb["config"]["batch"] == 2 and ra["config"]["batch"] == 4
    assert "gen_ranks" in b and len(b["gen_ranks"]) == 2
