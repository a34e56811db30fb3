"""SIGKILL at random moments (some during a checkpoint write), with data-loading workers:
every checkpoint left behind is readable, and resuming gives the uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("matplotlib")

from conftest import EXAMPLES

ARGS = ["--batch", "2", "--size", "32", "64", "--train-clips", "4", "--val-clips", "2",
        "--iters", "6", "--adapt-start", "2", "--eval-every", "100", "--ckpt-every", "1",
        "--log-every", "1", "--workers", "2", "--render-workers", "0", "--no-progress"]  # fmt: skip


def _cmd(out: Path, resume: bool) -> list[str]:
    extra = ["--resume", str(out)] if resume and (out / "checkpoint.pt").exists() else []
    return [sys.executable, str(EXAMPLES / "train_video_uda.py"), "--out", str(out), *ARGS,
            *extra]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _kill_at_random(out: Path, rng: random.Random, during_write: bool) -> None:
    """Start (or resume) the run and SIGKILL it: after a random delay, or the moment a
    checkpoint's temporary file appears (a write in progress)."""
    proc = subprocess.Popen(_cmd(out, resume=True), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    tmp = out / "checkpoint.pt.tmp"
    deadline = time.monotonic() + (60.0 if during_write else rng.uniform(2.0, 9.0))
    while time.monotonic() < deadline and proc.poll() is None:
        if during_write and tmp.exists():
            break
        time.sleep(0.002)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers
    proc.wait()


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_run(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    subprocess.run(_cmd(ref, resume=False), env=_env(), check=True, capture_output=True)
    want = torch.load(ref / "checkpoint.pt", weights_only=True)
    rng = random.Random(0)
    kills_in_write = 0
    for trial in range(10):
        out = tmp_path / f"t{trial}"
        during_write = trial % 3 == 0
        for _ in range(2):  # up to two kills per trial
            _kill_at_random(out, rng, during_write)
            if (out / "checkpoint.pt.tmp").exists():
                kills_in_write += 1
            if (out / "checkpoint.pt").exists():  # never a torn checkpoint
                torch.load(out / "checkpoint.pt", weights_only=True)
        done = subprocess.run(_cmd(out, resume=True), env=_env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        got = torch.load(out / "checkpoint.pt", weights_only=True)
        assert got["iteration"] == 6
        for key in ("student", "method"):
            for name, t in want[key].items():
                if isinstance(t, torch.Tensor):
                    assert torch.equal(t, got[key][name]), (trial, key, name)
        assert got["history"]["loss"] == want["history"]["loss"], trial
        a = json.loads((ref / "results.json").read_text())
        b = json.loads((out / "results.json").read_text())
        assert (a["miou"], a["miou_teacher"]) == (b["miou"], b["miou_teacher"]), trial
    assert kills_in_write >= 1  # at least one kill landed inside a checkpoint write
