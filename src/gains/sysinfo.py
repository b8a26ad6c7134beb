"""Process facts used in logs and benchmarks."""

from __future__ import annotations

import resource
from pathlib import Path


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
