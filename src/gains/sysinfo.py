"""Process facts used in logs and benchmarks."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
from pathlib import Path
from typing import Any


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB.

    Reads ``VmHWM`` from /proc (per address space, so a process started from a large parent reports its
    own peak); falls back to ``ru_maxrss``, which on Linux survives exec and can include the parent's.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def native_bf16_cpu() -> bool:
    """Whether this x86 CPU computes bf16 in hardware (AVX512-BF16 or AMX tiles). Without either, oneDNN
    emulates bf16, and a bf16 training step took about 20x the fp32 time on an AVX2-only CPU
    (docs/BENCHMARKS.md, "bf16 on a CPU without native bf16"); other architectures count as without."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if check is not None)


def cpu_facts() -> dict[str, Any]:
    """What a CPU timing depends on: model name, core count, torch's vector capability (``AVX2``, ``AVX512``...)
    and whether bf16 is native (``native_bf16_cpu``)."""
    import torch

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):  # Linux names the model here; elsewhere platform's word
        model = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name"))
    return {"model": model, "cores": os.cpu_count(), "capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": native_bf16_cpu()}
