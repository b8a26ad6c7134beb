#!/usr/bin/env bash
# GPU protocol: on a CUDA machine, in well under 8 minutes, run the `gpu`-marked tests (CPU-vs-CUDA forward
# parity, AMP training steps, a one-process NCCL group) and time R50-FPN GAInS against Mask R-CNN training
# steps at 800x800, batch 2 (fp32 and fp16 autocast), printing a table and writing JSON.
#
#   bash benchmarks/release/gpu_check.sh [RESULTS_DIR]        (default benchmarks/results)
#
# It uses the machine's python3 (PYTHON=... to choose) with its torch, and the source tree (no install); see
# gpu_env.sh for the packages it brings in wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:-benchmarks/results}
mkdir -p "$RESULTS"
source benchmarks/release/gpu_env.sh
start=$(date +%s)
"$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
echo "gpu tests: $(( $(date +%s) - start )) s"
"$PY" -m benchmarks.speed.bench_train --device cuda --size 800 --batch 2 --warmup 3 --steps 10 \
  --json "$RESULTS/bench_train_cuda.json"
echo "gpu_check: done in $(( $(date +%s) - start )) s"
