"""The benchmark runner: a tiny end-to-end run, its JSON records, and the timing code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def quick_metrics(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``run.py --quick --only metrics --json PATH`` in a fresh process (its thread setting
    and warning filters stay out of the test process)."""
    out = tmp_path_factory.mktemp("bench") / "metrics.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--only", "metrics", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    doc["_stdout"] = proc.stdout
    return doc


def test_quick_run_writes_records(quick_metrics: dict) -> None:
    meta = quick_metrics["meta"]
    assert meta["mode"] == "quick"
    for key in ("cpu_model", "cpu_cores", "torch", "loadavg", "torch_threads"):
        assert key in meta["machine"], key
    assert meta["machine"]["torch"] == torch.__version__
    (rec,) = quick_metrics["records"]
    assert rec["op"] == "metrics"
    assert rec["device"] == "cpu" and rec["dtype"] == "int64" and rec["torch"] == torch.__version__
    assert rec["shapes"]["pred"] == rec["shapes"]["target"] == "2x256x512"
    assert rec["ms"] > 0 and rec["runs"] >= 3
    for name in ("reference", "clone", "read", "unchecked"):
        assert rec["baselines"][name]["ms"] > 0, name
    assert "skipped" in rec["baselines"]["compiled"]  # --quick skips torch.compile
    ratios = rec["ratios"]
    assert ratios["speedup_vs_reference"] == pytest.approx(
        rec["baselines"]["reference"]["ms"] / rec["ms"], rel=1e-2
    )
    assert ratios["x_clone"] == pytest.approx(rec["ms"] / rec["baselines"]["clone"]["ms"], rel=1e-2)
    assert ratios["x_read"] == pytest.approx(rec["ms"] / rec["baselines"]["read"]["ms"], rel=1e-2)
    assert set(rec["peak_memory_mb"]) == {"op", "reference"}
    assert "| metrics |" in quick_metrics["_stdout"]


def _render(doc: dict, tmp_path: Path) -> str:
    """``run.py --render`` of ``doc`` saved as JSON, in a fresh process; its stdout."""
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc))
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--render", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout


def test_render_prints_the_saved_table(quick_metrics: dict, tmp_path: Path) -> None:
    doc = {k: v for k, v in quick_metrics.items() if k != "_stdout"}
    out = _render(doc, tmp_path)
    assert out.startswith("| op | case | ms |")
    assert "| metrics | B2 256x512 K19" in out


def test_timing_helpers() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from _timing import Candidate, peak_memory, run_interleaved
    finally:
        sys.path.remove(str(BENCH))
    calls = {"fast": 0, "slow": 0}

    def fast(_: object) -> None:
        calls["fast"] += 1

    def slow(_: object) -> None:
        calls["slow"] += 1
        torch.ones(64, 64).sum()

    stats = run_interleaved(
        [Candidate("fast", fast), Candidate("slow", slow, setup=lambda: None)],
        torch.device("cpu"),
        budget_s=0.01,
        min_runs=3,
        max_runs=5,
    )
    assert set(stats) == {"fast", "slow"}
    for name, st in stats.items():
        assert 3 <= st.runs <= 5 and st.runs == len(st.times_ms)
        assert st.min_ms <= st.median_ms
        assert st.calls_per_run >= 1
        rewarm = st.calls_per_run > 1  # an untimed call before each run of several calls
        assert calls[name] == st.runs * (st.calls_per_run + rewarm) + 2  # + 2 warm-up calls
    assert stats["fast"].calls_per_run > 1  # far under 2 ms: several calls per run
    stats = run_interleaved(
        [Candidate("fast", fast)], torch.device("cpu"), budget_s=0.01, min_sample_ms=0.0
    )
    assert stats["fast"].calls_per_run == 1
    first_call = [True]

    def slow_first(_: object) -> None:  # a one-off cost on the first call only
        if first_call[0]:
            first_call[0] = False
            time.sleep(0.01)

    stats = run_interleaved([Candidate("lazy", slow_first)], torch.device("cpu"), budget_s=0.01)
    assert stats["lazy"].calls_per_run > 1  # sized from the fast second warm-up call
    x = torch.ones(1 << 20)  # 4 MiB
    peak = peak_memory(Candidate("clone", lambda _: x.clone()), torch.device("cpu"))
    if peak is not None:  # /proc available
        assert peak >= 3 * 2**20


def test_references_agree_with_dastc() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import references as R
    finally:
        sys.path.remove(str(BENCH))
    import dastc

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 2, 4, 3, 5, generator=g)
    labels = torch.randint(0, 3, (2, 2, 6, 10), generator=g)
    labels[0, 0, 0] = 255
    weights = torch.rand(2, 2, 6, 10, generator=g)
    p = dastc.functional.class_prototypes(feats, labels, 3, weights)
    vectors, counts = R.class_prototypes_reference(feats, labels, 3, weights)
    torch.testing.assert_close(p.vectors, vectors)
    torch.testing.assert_close(p.counts, counts)
    model = R.resnet101_standin(width_div=8)
    assert len(list(model.parameters())) + len(list(model.buffers())) == 626


def test_train_step_times_the_method(tmp_path: Path) -> None:
    """train_step.py times the example's DASTC step (quick, small clips), leaves dastc's
    namespace as it found it, and gives the record run.py renders."""
    added = [p for p in (str(BENCH), str(ROOT / "examples")) if p not in sys.path]
    sys.path.insert(0, str(BENCH))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as run.py does; two threads on a busy machine thrash
    try:
        import train_step as TS

        from dastc import functional as DF
        from dastc.methods import da_stc

        aug = da_stc.strong_augment
        rec = TS.train_step_benchmark(
            torch.device("cpu"), quick=True, log=lambda _: None, size=(2, 2, 32, 64, 9)
        )
    finally:
        torch.set_num_threads(threads)
        for p in added:
            if p in sys.path:
                sys.path.remove(p)
    assert da_stc.DF is DF and da_stc.strong_augment is aug
    assert list(rec["dastc_ops_ms"]) == list(TS.OPS)
    assert all(v > 0 for v in rec["dastc_ops_ms"].values()), rec["dastc_ops_ms"]
    assert rec["runs"] == 3 and rec["ms_full"] > 0 and rec["ms_identity"] > 0
    assert rec["share_timed_ops"] == pytest.approx(rec["ms_dastc_ops"] / rec["ms_full"], abs=1e-3)
    out = _render({"meta": {}, "records": [rec]}, tmp_path)
    assert "Training step (example DASTC step" in out
    assert "dastc ops timed inside the full step" in out


def test_train_throughput_runs_on_a_small_standin(tmp_path: Path) -> None:
    """``benchmarks/train_throughput.py`` on a small stand-in: one row per configuration."""
    pytest.importorskip("PIL")
    from dastc.data.standin import write_standin

    write_standin(tmp_path / "s", sequences=1, frames_per_sequence=30, snippets=2,
                  source_size=(72, 128), target_size=(64, 128), progress=False)  # fmt: skip
    out = tmp_path / "tp.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "train_throughput.py"), "--data", str(tmp_path / "s"),
         "--size", "32", "64", "--iters", "2", "--warmup", "1", "--step-cost", "0",
         "--methods", "dastc", "--workers", "0", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["method"], r["workers"]) for r in rows] == [("dastc", 0), ("dastc", 1)]
    for r in rows:
        assert r["it_per_s"] > 0 and 0 <= r["wait_share"] <= 1 and r["peak_mib"] > 0


@pytest.mark.slow
def test_the_whole_step_breaks_only_at_generator_draws() -> None:
    """Every graph break of a DASTC step is a random draw with an explicit generator
    (documented in docs/benchmarks.md); a break anywhere else is new and fails here."""
    sys.path.insert(0, str(BENCH))
    try:
        import graph_breaks
    finally:
        sys.path.remove(str(BENCH))
    from dastc import value_checks
    from dastc.methods import MethodConfig

    with value_checks(False):
        graphs, breaks, where = graph_breaks.explain(MethodConfig(adapt_start=0, mic=True))
    assert graphs == breaks + 1 and breaks > 0
    assert where, "breaks without a reported reason"
    for line in where:
        assert line.startswith(("dastc/functional/class_mix.py", "dastc/functional/augment.py",
                                "dastc/functional/masking.py")), line  # fmt: skip
        assert "Failed to convert args/kwargs to proxy" in line, line


@pytest.mark.slow
def test_compiled_step_benchmark_compiles_one_graph_once() -> None:
    """``benchmarks/compiled_step.py`` on a small batch: the example's step traces as one
    graph without breaks, and the timed compiled steps compile nothing new."""
    sys.path.insert(0, str(BENCH))
    try:
        import compiled_step
    finally:
        sys.path.remove(str(BENCH))
    rec = compiled_step.compiled_step_benchmark(
        torch.device("cpu"), rounds=2, size=(2, 2, 32, 64, 9), log=lambda _: None
    )
    assert (rec["graphs"], rec["graph_breaks"]) == (1, 0)
    assert rec["graphs_compiled_after_warmup"] == 0
    assert rec["eager_ms"] > 0 and rec["compiled_ms"] > 0
    assert rec["speedup"] == pytest.approx(rec["eager_ms"] / rec["compiled_ms"], rel=0.01)
