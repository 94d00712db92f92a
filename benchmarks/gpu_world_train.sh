#!/usr/bin/env bash
# One device call that trains the Babel-world model on the lent GPU and brings it back.
#   here, once:   make gpu-wheels          (diffusers + pydantic for the device's Python, into .whl/)
#   device tool:  run(command="bash benchmarks/gpu_world_train.sh", carry=[".whl"], timeout_s=590)
#   here, after:  cat <files_at>/model.tgz.* | tar xz -C runs/world-gpu   then `neobabel world eval`
# The device image has torch, transformers, tokenizers, safetensors, scipy, PIL, yaml, typer
# and rich; training needs nothing else from us (polars, streamlit, deepface are not imported).
set -euo pipefail
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 benchmarks/gpu_world_train.py --report "${OUT:-runs/gpu-report}" --minutes "${MINUTES:-6}" "$@"
