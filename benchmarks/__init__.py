"""The project's measurements, run from the repository root as modules (``python -m benchmarks.speed.bench_gamm``).

- ``speed``: the speed and memory suite (``make bench`` runs its core) and the step profiler;
- ``accuracy``: the accuracy harness and the jobs built on it (ablation, sensitivity, tuning, compare_jobs);
- ``studies``: one-off studies, each answering one question once (12-bit inputs, mosaics, BLAS threads,
  training options);
- ``release``: reproducing and packing the shipped models and the GPU-machine scripts;
- ``bench_docs``: rewrites the measured tables of docs/BENCHMARKS.md from ``results/``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: run the modules from here (``python -m`` puts it on the path)."""
RESULTS = ROOT / "benchmarks" / "results"
"""Where the benchmarks write their results and ``bench_docs`` reads them."""
