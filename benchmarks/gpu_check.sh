#!/usr/bin/env bash
# GPU protocol: on a CUDA machine, in well under 8 minutes, run the `gpu`-marked tests (CPU-vs-CUDA forward
# parity, AMP training steps, a one-process NCCL group) and time R50-FPN GAInS against Mask R-CNN training
# steps at 800x800, batch 2 (fp32 and fp16 autocast), printing a table and writing JSON.
#
#   bash benchmarks/gpu_check.sh [RESULTS_DIR]        (default benchmarks/results)
#
# It uses the machine's python3 (PYTHON=... to choose) with its torch, and the source tree (no install).
# A package the machine lacks (pycocotools on the lent GPU machines) is taken from wheels in .whl/, made on a
# connected machine with:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl pycocotools
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RESULTS=${1:-benchmarks/results}
mkdir -p "$RESULTS"
if ! "$PY" -c "import pycocotools" 2>/dev/null; then
  if ! ls .whl/pycocotools-*.whl >/dev/null 2>&1; then
    echo "gpu_check: pycocotools is not installed and .whl/ holds no wheel of it" >&2
    exit 1
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gains-site \
    .whl/*.whl
  export PYTHONPATH=/tmp/gains-site
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
start=$(date +%s)
"$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
echo "gpu tests: $(( $(date +%s) - start )) s"
"$PY" benchmarks/bench_train.py --device cuda --size 800 --batch 2 --warmup 3 --steps 10 \
  --json "$RESULTS/bench_train_cuda.json"
echo "gpu_check: done in $(( $(date +%s) - start )) s"
