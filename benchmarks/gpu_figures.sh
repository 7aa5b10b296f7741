#!/usr/bin/env bash
# The GPU figures in one prepared run (a lent GPU is short of time): CUDA-marked tests, the full default study of
# every shipped checkpoint in fp32 (per-image records kept), the S4ND layer against the official one at 28x28 and
# 224x224 (fp32, bf16), the study in bf16 and its comparison with fp32 (accuracy and argmax flips), then the smoke
# check. Each stage has its own time limit and logs under WORK; a failed stage does not stop the next. Small
# results (logs, CSVs, the studies without their per-image records) are packed into OUT after every stage.
# Usage: [STAGES="study_fp32 compare ..."] bash benchmarks/gpu_figures.sh WORK OUT [OFFICIAL_CHECKOUT]
# (STAGES: run only these stages; all by default)
set -u
work=${1:?usage: gpu_figures.sh WORK OUT [OFFICIAL_CHECKOUT]}
out=${2:?usage: gpu_figures.sh WORK OUT [OFFICIAL_CHECKOUT]}
official=${3:-}
mkdir -p "$work" "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
pack() {  # the logs in one file; each study's tables and run records (not its per-image records) in one archive
  tail -n +1 "$work"/*.log > "$out/logs.txt" 2>/dev/null
  for d in "$work"/study_*; do
    [ -d "$d" ] && tar czf "$out/$(basename "$d").tgz" -C "$work" --exclude=samples "$(basename "$d")"
  done
  cp "$work"/*.csv "$out/" 2>/dev/null
  return 0
}
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to WORK/NAME.log, print its wall time
  local name=$1 limit=$2; shift 2
  [ -n "${STAGES:-}" ] && [[ " $STAGES " != *" $name "* ]] && return 0
  local t0=$SECONDS
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@" > "$work/$name.log" 2>&1
  echo "== $name: exit $?, $((SECONDS - t0)) s"
  tail -n 3 "$work/$name.log"
  pack
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
stage tests 90 python3 -m pytest -q -p no:cacheprovider tests/test_device.py tests/test_train.py tests/test_gpu_ready.py
stage study_fp32 150 python3 cli.py sweep checkpoints/ -o "$work/study_fp32" --device cuda --batch-size 4096 \
  --log-samples --quiet
if [ -n "$official" ]; then
  for precision in fp32 bf16; do
    stage "layer_$precision" 60 python3 benchmarks/bench_official.py --official "$official" --sides 28,224 \
      --device cuda --precision "$precision" --repeats 10 --rounds 1 --threads 8
  done
fi
stage study_bf16 100 python3 cli.py sweep checkpoints/ -o "$work/study_bf16" --device cuda --batch-size 4096 \
  --log-samples --precision bf16 --quiet
stage compare 40 python3 benchmarks/compare_runs.py "$work/study_fp32" "$work/study_bf16" --csv "$work/fp32_vs_bf16.csv"
stage smoke 100 python3 benchmarks/gpu_smoke.py --out "$work/smoke.csv"
