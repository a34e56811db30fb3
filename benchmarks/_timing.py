"""Timing, peak-memory and machine-description utilities for the dastc benchmarks.

Timing: every candidate (the dastc op and its baselines) is called twice to warm
up, then the candidates are run *interleaved*, one call of each per round, so
that a change in machine load during the measurement hits all of them alike.
The figure reported is the median over the rounds; on CUDA every call is
bracketed by ``torch.cuda.synchronize()``. A candidate faster than
``min_sample_ms`` (2 ms) is called several times back to back in each round and
its sample is the mean of those calls, after one untimed call, so that a
sub-millisecond figure does not rest on a call made right after another
candidate's work (the first call after the plain-loop reference can take 30%
longer than the next ones). A candidate may have
an untimed ``setup`` that runs before each timed call (e.g. the forward pass
whose backward is being timed).

Peak memory:

* CUDA: ``torch.cuda.max_memory_allocated()`` during one call, minus what was
  allocated before it (the memory the call itself needed at its peak).
* CPU: the growth of the process's peak resident set size during one call:
  ``VmHWM`` from ``/proc/self/status`` after resetting it to the current RSS by
  writing ``5`` to ``/proc/self/clear_refs``, minus ``VmRSS`` before the call.
  It counts every page the call touched that was not already resident (large
  tensors are fresh ``mmap`` pages on glibc). Memory the allocator holds free
  is first given back to the system (glibc ``malloc_trim(0)``), so tensors it
  would otherwise serve from its free lists are counted too. ``None`` where
  ``/proc`` does not allow it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "Candidate",
    "Stats",
    "loadavg",
    "machine_info",
    "peak_memory",
    "run_interleaved",
    "sync",
]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Candidate:
    """One thing to time: ``fn(state)`` where ``state = setup()`` (untimed), or ``fn(None)``."""

    name: str
    fn: Callable[[Any], Any]
    setup: Callable[[], Any] | None = None


@dataclass
class Stats:
    """Timing of one candidate, in milliseconds."""

    median_ms: float
    min_ms: float
    runs: int
    times_ms: list[float] = field(default_factory=list)
    calls_per_run: int = 1


def _once(c: Candidate, device: torch.device, calls: int = 1) -> float:
    """Mean ms of ``calls`` timed calls (each after its untimed setup).

    With ``calls > 1`` (a candidate under ``min_sample_ms``) one untimed call
    comes first, so that no timed call is the first after another candidate's work.
    """
    untimed = 1 if calls > 1 else 0
    total = 0.0
    for i in range(untimed + calls):
        state = c.setup() if c.setup is not None else None
        sync(device)
        t0 = time.perf_counter()
        out = c.fn(state)
        sync(device)
        if i >= untimed:
            total += time.perf_counter() - t0
        del out, state
    return total / calls * 1e3


def run_interleaved(
    candidates: list[Candidate],
    device: torch.device,
    *,
    budget_s: float = 2.0,
    min_runs: int = 3,
    max_runs: int = 30,
    warmup: int = 2,
    min_sample_ms: float = 2.0,
) -> dict[str, Stats]:
    """Time candidates round-robin; return each one's median (and min) over its runs.

    Each candidate is warmed up ``warmup`` times. Its fastest warm-up call ``t``
    decides its calls per run, ``ceil(min_sample_ms / t)`` (1 for anything slower
    than ``min_sample_ms``; the run's figure is their mean). The first call alone
    would not do: it pays one-off costs (lazy initialisation, first allocations),
    and an op would then get fewer calls per run than its twin with checks off
    although both take the same time, and so more of the cost of a call made right
    after another candidate's work. Its number of timed runs is
    ``clamp(budget_s / (calls * t), min_runs, max_runs)``. Round ``i`` runs every
    candidate that still needs a run, so slow candidates (plain loops) stop early
    while fast ones keep being interleaved with each other.
    """
    first: dict[str, float] = {}
    for c in candidates:
        first[c.name] = max(min(_once(c, device) for _ in range(max(1, warmup))), 1e-3)
    calls = {c.name: max(1, math.ceil(min_sample_ms / first[c.name])) for c in candidates}
    runs = {
        c.name: max(
            min_runs, min(max_runs, int(budget_s * 1e3 / (calls[c.name] * first[c.name])))
        )
        for c in candidates
    }
    times: dict[str, list[float]] = {c.name: [] for c in candidates}
    for i in range(max(runs.values())):
        for c in candidates:
            if i < runs[c.name]:
                times[c.name].append(_once(c, device, calls[c.name]))
    return {
        name: Stats(
            statistics.median(ts), min(ts), len(ts), [round(t, 4) for t in ts], calls[name]
        )
        for name, ts in times.items()
    }


def _proc_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _trim() -> None:
    """Give the allocator's free memory back to the system (glibc ``malloc_trim``)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def peak_memory(c: Candidate, device: torch.device) -> int | None:
    """Peak memory (bytes) one call of ``c`` needs beyond what was in use before it.

    See the module docstring for what is measured on CPU and CUDA.
    """
    state = c.setup() if c.setup is not None else None
    gc.collect()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = c.fn(state)
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out, state
        return int(peak)
    _trim()
    rss = _proc_status_kb("VmRSS")
    if rss is None or not _reset_peak_rss():
        return None
    out = c.fn(state)
    hwm = _proc_status_kb("VmHWM")
    del out, state
    if hwm is None:
        return None
    return max(0, hwm - rss) * 1024


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _loadavg() -> list[float] | None:
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return None


def _mem_total_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None
    return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU model, cores, memory, load average, threads, versions, huge-page settings, GPU.

    ``thp`` is the kernel's transparent-huge-page mode; ``THP_MEM_ALLOC_ENABLE`` is
    PyTorch's switch for backing large CPU tensors with huge pages, which decides
    how much a fresh allocation (page faults) costs.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "mem_total_gb": _mem_total_gb(),
        "loadavg": _loadavg(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    info["thp"] = _read("/sys/kernel/mm/transparent_hugepage/enabled")
    info["THP_MEM_ALLOC_ENABLE"] = os.environ.get("THP_MEM_ALLOC_ENABLE")
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages from ``/proc/loadavg`` (None elsewhere)."""
    return _loadavg()
