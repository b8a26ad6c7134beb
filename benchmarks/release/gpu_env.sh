# Sourced by the GPU scripts (gpu_check.sh, gpu_zoo.sh) from the repository root: PY, the source tree on
# PYTHONPATH (no install), and the packages the lent GPU machines lack (pycocotools, roifile) installed from the
# wheels in .whl/, made on a connected machine with:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl pycocotools roifile
PY=${PYTHON:-python3}
if ! "$PY" -c "import pycocotools, roifile" 2>/dev/null; then
  if ! ls .whl/pycocotools-*.whl .whl/roifile-*.whl >/dev/null 2>&1; then
    echo "$0: pycocotools or roifile is not installed and .whl/ lacks its wheel" >&2
    exit 1
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gains-site \
    .whl/*.whl
  export PYTHONPATH=/tmp/gains-site
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
