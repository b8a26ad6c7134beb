#!/usr/bin/env bash
# Reproduce a shipped model on one CUDA GPU in a single call of under 10 minutes: python -m benchmarks.release.zoo --gpu (data,
# training on configs/zoo_<model>_gpu.yaml's budget, held-out scoring), then the export that packs the weights
# in float16 parts of 16 MiB with the card, copied with the training log into RESULTS_DIR.
#
#   bash benchmarks/release/gpu_zoo.sh MODEL RESULTS_DIR [DATA_BUNDLE] [--set KEY=VALUE ...]
#
# DATA_BUNDLE: a copy of the model's prepared data made by `python -m benchmarks.release.zoo --model MODEL --out W --stage
# bundle --bundle DIR` on a machine with ../shared/data (nuclei needs one; the overlap scenes are generated).
# Packing writes src/gains/zoo/models/MODEL/ of this tree: run it in a copy (a GPU machine's tree is one).
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 results=$2
shift 2
bundle=""
if [[ $# -gt 0 && $1 != --set ]]; then bundle=$1; shift; fi
mkdir -p "$results"
source benchmarks/release/gpu_env.sh
work=$(mktemp -d)/zoo_$model
mkdir -p "$work"
if [[ -n $bundle ]]; then cp -r "$bundle" "$work/data"; fi
start=$(date +%s)
"$PY" -m benchmarks.release.zoo --model "$model" --gpu --out "$work" --stage all "$@" 2>&1 | tee "$results/zoo_$model.log"
echo "gpu_zoo: trained and scored in $(( $(date +%s) - start )) s" | tee -a "$results/zoo_$model.log"
"$PY" -m benchmarks.release.zoo --model "$model" --out "$work" --stage export 2>&1 | tail -n 40 >>"$results/zoo_$model.log"
cp "src/gains/zoo/models/$model/"* "$results/"
echo "gpu_zoo: done in $(( $(date +%s) - start )) s; $(ls "$results" | wc -l) files in $results"
