"""examples/slurm_array.sh: its array tasks, run here with a fake SLURM_ARRAY_TASK_ID each, fill one folder
with the same cells as one unsharded sweep."""

import os
import subprocess
import sys

from conftest import REPO, quiet_sweep
from resbench.store import read_results
from resbench.sweep import SweepConfig

SCRIPT = REPO / "examples" / "slurm_array.sh"
SHARDS = 2
CELL = ["checkpoint", "test_res", "policy", "bandlimit"]


def run_task(env: dict, task: int | None) -> subprocess.CompletedProcess:
    """The script as Slurm runs array task `task` of an --array=1-SHARDS job (None: outside any array)."""
    slurm = {} if task is None else {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MAX": str(SHARDS)}
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.run(["bash", str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**base, **env, **slurm})


def counts(out) -> dict:
    df = read_results(out)
    assert not df.duplicated(CELL).any()
    return {tuple(r[c] for c in CELL): (r["n"], r["correct"], r["error"]) for r in df.to_dict("records")}


def test_the_script_is_an_array_job():
    text = SCRIPT.read_text()
    assert "#SBATCH --array=1-" in text and '--shard "$((TASK))/$SHARDS"' in text
    assert "--dependency=afterok" in text and "report" in text  # the dependent step is documented


def test_array_tasks_fill_one_folder_like_one_sweep(ckpt_dir, tmp_path, cli):
    out = tmp_path / "slurm"
    env = {"PYTHON": sys.executable, "CHECKPOINTS": str(ckpt_dir), "OUT": str(out),
           "SWEEP_ARGS": "--test-res 7,14 --limit 32"}
    for task in range(1, SHARDS + 1):
        result = run_task(env, task)
        assert result.returncode == 0, result.stderr
        assert (out / f"cells-{task}of{SHARDS}.jsonl").is_file()

    single = tmp_path / "single"
    quiet_sweep(SweepConfig(checkpoints=[str(ckpt_dir)], out=str(single), test_res=[(7, 7), (14, 14)], limit=32))
    expected = counts(single)
    # less resize-input at 14, the training size (the native cell, run once): on, off and none
    assert len(expected) == 2 * 2 * 3 - 3 and all(v[0] == 32 and v[2] == "" for v in expected.values())
    assert counts(out) == expected

    # the dependent step: a plain sweep over the folder finds every cell done and rebuilds the tables
    logs = {p.name: p.read_bytes() for p in out.glob("cells*.jsonl")}
    code, _, err = cli("sweep", ckpt_dir, "--test-res", "7,14", "--limit", 32, "--quiet", "-o", out)
    assert code == 0, err
    assert {p.name: p.read_bytes() for p in out.glob("cells*.jsonl")} == logs
    assert len(read_results(out)) == len(expected)


def test_outside_an_array_the_script_says_so(tmp_path):
    result = run_task({"PYTHON": sys.executable, "OUT": str(tmp_path / "out")}, None)
    assert result.returncode != 0 and "sbatch --array=1-N" in result.stderr
    assert not (tmp_path / "out").exists()
