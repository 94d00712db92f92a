#!/usr/bin/env bash
# One device call that measures GPU speed (issue 24) and brings the numbers back.
#   here, once:   make gpu-wheels        (diffusers + pydantic for the device's Python, into .whl/)
#   device tool:  run(command="bash benchmarks/gpu_bench.sh", carry=[".whl"], timeout_s=540)
#   back here:    <files_at>/bench_sd15_gpu.json (the report) and bench_sd15_gpu.log (the printout)
# The script stops starting measurements before BUDGET_S seconds (default 400: with the wheel
# install and the machine's start that is ~8 minutes of device time), so the call returns numbers
# even when the sweep, the second compile or bf16 do not fit; what was skipped is in the JSON.
set -euo pipefail
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-runs/gpu-bench}"
mkdir -p "$OUT"
export OUT
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
python3 benchmarks/bench_sd15_gpu.py --budget-s "${BUDGET_S:-400}" "$@" 2>&1 | tee "$OUT/bench_sd15_gpu.log"
