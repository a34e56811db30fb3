"""The example's training computes what it computed when ``tests/golden/trace.json`` was recorded.

Every method, every ablation switch, the adaptation options, ``--clip-len 3``
and the 2-process DDP run (see ``tests/golden_trace.py``): per-iteration
history of every logged quantity, final student/teacher mIoU and a fingerprint
of the final weights. Exact on the machine kind the trace was recorded on
(same torch version, CPU kernel set and CPU vendor: an Intel and an AMD CPU with
the same AVX512 kernels round differently); elsewhere float rounding may differ,
and the comparison allows 1e-4 relative.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

import golden_trace

GOLDEN = json.loads(golden_trace.TRACE.read_text())
EXACT = GOLDEN["machine"] == golden_trace.machine()


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {a.keys()} vs {b}"
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: {a} vs {b}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not EXACT:
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), f"{where}: {a} vs {b}"
    else:
        assert a == b, f"{where}: golden {a!r}, now {b!r}"


@pytest.mark.parametrize("name", list(golden_trace.RUNS))
def test_run_matches_the_golden_trace(tmp_path: Path, name: str) -> None:
    _same(GOLDEN["runs"][name], golden_trace.record_run(name, tmp_path), name)


def test_ddp_run_matches_the_golden_trace(tmp_path: Path) -> None:
    _same(GOLDEN["runs"]["ddp-2-processes"], golden_trace.record_ddp(tmp_path), "ddp")


def test_the_trace_covers_every_method_and_ablation() -> None:
    from dastc.methods import METHODS, MethodConfig

    names = set(golden_trace.RUNS)
    assert set(METHODS) <= names
    for key in MethodConfig.ablations():
        assert f"dastc-no-{key.replace('_', '-')}" in names, key
