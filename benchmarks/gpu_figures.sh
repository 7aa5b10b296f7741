#!/usr/bin/env bash
# The GPU figures in one prepared run (a lent GPU is short of time): CUDA-marked tests, the smoke check, the full
# default study of every shipped checkpoint in fp32 and in bf16 (with per-image records), their comparison, and
# the S4ND layer against the official one at 28x28 and 224x224. Each stage has its own time limit and writes
# under OUTDIR; a failed stage does not stop the next. Usage: bash benchmarks/gpu_figures.sh OUTDIR [OFFICIAL_CHECKOUT]
set -u
out=${1:?usage: gpu_figures.sh OUTDIR [OFFICIAL_CHECKOUT]}
official=${2:-}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to OUTDIR/NAME.log, print its wall time
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  echo "== $name: exit $?, $((SECONDS - t0)) s"
  tail -n 4 "$out/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
stage tests 120 python3 -m pytest -q -p no:cacheprovider tests/test_device.py tests/test_train.py -k "cuda or device"
stage smoke 150 python3 benchmarks/gpu_smoke.py --out "$out/smoke.csv"
stage study_fp32 200 python3 cli.py sweep checkpoints/ -o "$out/study_fp32" --device cuda --batch-size 4096 \
  --log-samples --quiet
stage study_bf16 150 python3 cli.py sweep checkpoints/ -o "$out/study_bf16" --device cuda --batch-size 4096 \
  --log-samples --precision bf16 --quiet
stage compare 60 python3 benchmarks/compare_runs.py "$out/study_fp32" "$out/study_bf16" --csv "$out/fp32_vs_bf16.csv"
if [ -n "$official" ]; then
  for precision in fp32 bf16; do
    stage "layer_$precision" 90 python3 benchmarks/bench_official.py --official "$official" --sides 28,224 \
      --device cuda --precision "$precision" --repeats 10 --threads 8
  done
fi
grep -h "wall\|cells" "$out"/study_*.log | tail -n 6
