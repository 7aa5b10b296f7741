#!/usr/bin/env bash
# A resbench sweep as a Slurm job array: array task K runs shard K/N of the cells into one shared folder.
#
# Every shard appends to its own log (OUT/cells-KofN.jsonl) and run record, so N tasks can write into
# one folder on a shared file system at once, and a task that is preempted or killed loses only its
# cells in flight: resubmitting the array (or one task) skips the cells already logged.
#
# Submit from the repository root (Slurm runs the job in the folder it was submitted from):
#   jobid=$(sbatch --parsable examples/slurm_array.sh)
# Then, once every array task has finished, the dependent step: a plain sweep without --shard over the
# same folder runs whatever a failed task left undone (nothing, normally) and rebuilds the tables from
# all the shard logs; then the report:
#   sbatch --dependency=afterok:$jobid --wrap "python cli.py sweep checkpoints/ -o results/slurm --quiet \
#       && python cli.py report results/slurm -o reports/slurm/study"
# (afterany instead of afterok still reports when a task failed; the plain sweep then finishes its cells.)
#
# Everything below can be overridden from the environment, e.g.
#   SHARDS=8 SWEEP_ARGS="--test-res 7,14,28 --limit 1000" sbatch --array=1-8 examples/slurm_array.sh
#SBATCH --job-name=resbench-sweep
#SBATCH --array=1-4
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%x-%A_%a.out

set -euo pipefail

PYTHON=${PYTHON:-python}              # an interpreter with resbench installed (pip install -e .)
CHECKPOINTS=${CHECKPOINTS:-checkpoints/}  # files or folders, as `resbench sweep` takes them
OUT=${OUT:-results/slurm}             # one folder for all shards, on a file system every node sees
SWEEP_ARGS=${SWEEP_ARGS:-}            # any other sweep options: --test-res, --limit, --device cuda, ...
# the number of shards: the array's size (--array=1-N), unless SHARDS says otherwise
SHARDS=${SHARDS:-${SLURM_ARRAY_TASK_MAX:?run this as an array job (sbatch --array=1-N), or set SHARDS}}
TASK=${SLURM_ARRAY_TASK_ID:?run this as an array job (sbatch --array=1-N): SLURM_ARRAY_TASK_ID is not set}

# shards are numbered 1..N like the array tasks; without a terminal the sweep prints one line per cell,
# which lands in the task's slurm-*.out
# shellcheck disable=SC2086  # CHECKPOINTS and SWEEP_ARGS are lists of words
"$PYTHON" cli.py sweep $CHECKPOINTS -o "$OUT" --shard "$((TASK))/$SHARDS" $SWEEP_ARGS
