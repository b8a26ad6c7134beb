"""How many intra-op CPU threads training uses (``train.threads``; 0 = auto).

On a CPU, torch splits each operation over its intra-op threads, which meet at a barrier after every operation:
one thread that loses its core to another process holds up all the others. With 2 threads on 2 cores and one busy
process beside it, a training step took several times as long as with 1 thread (docs/BENCHMARKS.md, "Training threads
on a shared machine"). So ``auto`` counts the cores this process may run on, subtracts those that other processes
keep busy right now (``/proc/stat`` sampled over half a second; the 1-minute load average where there is no
``/proc/stat``), and uses the rest, at least one. ``OMP_NUM_THREADS`` set in the environment wins over ``auto``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

SAMPLE_S = 0.5  # how long auto watches the cores before training starts


def usable_cores() -> list[int]:
    """The CPU cores this process may run on (its affinity where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _core_times() -> dict[int, tuple[int, int]]:
    """Per core of ``/proc/stat``: (busy, total) jiffies since boot; empty where the file is missing."""
    out: dict[int, tuple[int, int]] = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(v) for v in values[:8]]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
            out[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return out


def busy_cores(cores: list[int], seconds: float = SAMPLE_S) -> float:
    """How many of ``cores`` other processes keep busy: the summed busy share of each core over ``seconds`` (this
    process sleeps meanwhile), or the 1-minute load average where ``/proc/stat`` is missing."""
    before = _core_times()
    if not before:
        return min(float(len(cores)), os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0.0
    time.sleep(seconds)
    after = _core_times()
    busy = 0.0
    for core in cores:
        if core in before and core in after:
            total = after[core][1] - before[core][1]
            busy += (after[core][0] - before[core][0]) / total if total > 0 else 0.0
    return busy


def auto_threads(cores: int, busy: float, processes: int = 1) -> int:
    """The rule of ``train.threads: 0``: the cores no other process keeps busy (``busy`` rounded to the nearest
    whole core), shared among this machine's ``processes`` training processes, at least one each."""
    free = cores - math.floor(busy + 0.5)
    return max(1, free // max(1, processes))


def apply_threads(setting: int, processes: int = 1) -> tuple[int, str]:
    """Set torch's intra-op threads for training; returns (threads, why) for the log.

    Args:
        setting: ``train.threads``: a count, or 0 for auto (see the module docstring).
        processes: training processes on this machine (``torchrun``'s local world size); auto then does not
            sample the load (the other ranks are starting too) and shares the cores among them.
    """
    if setting > 0:
        torch.set_num_threads(setting)
        return setting, "train.threads"
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads(), f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    cores = usable_cores()
    busy = busy_cores(cores) if processes == 1 else 0.0
    n = auto_threads(len(cores), busy, processes)
    torch.set_num_threads(n)
    return n, f"auto: {len(cores)} cores, {busy:.1f} kept busy by other processes"


__all__ = ["apply_threads", "auto_threads", "busy_cores", "usable_cores"]
