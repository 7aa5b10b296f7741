"""benchmarks/gpu_train.py (train_all.sh recipes in parallel under a time limit) and the new recipes themselves."""

import shlex
import subprocess
import sys

import pytest

from conftest import REPO
from resbench.errors import ResbenchError

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_train  # noqa: E402

ARMS = {"bandmask": "--bandlimit 0.5", "nomask": "--bandlimit off", "randmask": "--bandlimit 0.5 --mask random"}
TINY = "--dataset synthetic --train-res 7 --epochs 1 --limit 32 --test-limit 16 --set d_model=8"


def _recipes():
    return gpu_train.read_recipes(REPO / "checkpoints" / "train_all.sh")


def test_every_ablation_arm_and_seed_has_the_recipe_of_its_shipped_twin():
    recipes = _recipes()
    for size, epochs in ((7, 3), (14, 8), (28, 4)):
        assert recipes[f"s4nd_iso_{size}"] == f"s4nd_iso --train-res {size} --epochs {epochs} --bandlimit 0.5"
        for arm, option in ARMS.items():
            for seed in (0, 1, 2):
                assert recipes[f"ablation/s4nd_iso_{size}_{arm}_seed{seed}"] == \
                    f"s4nd_iso --train-res {size} --epochs {epochs} {option} --seed {seed}"
    baselines = [n for n in recipes if n.startswith("baselines/")]
    assert len(baselines) == 18
    assert all(f"--seed {n[-1]}" in recipes[n] and "--epochs 3" in recipes[n] for n in baselines)


def test_the_new_recipes_pass_the_train_commands_checks():
    from resbench.cli.train import parse_overrides, train_cmd
    from resbench.train import train_config

    recipes = _recipes()
    for name in [n for n in recipes if n.startswith(("ablation/", "baselines/"))]:
        p = train_cmd.make_context("train", [*shlex.split(recipes[name]), "-o", "x.pt"]).params
        cfg = train_config(p["model"], train_res=p["train_res"], epochs=p["epochs"], bandlimit=p["bandlimit"],
                           mask=p["mask"], multiscale=p["multiscale"], model_overrides=parse_overrides(p["overrides"]),
                           seed=p["seed"], device="cpu")
        if "multiscale" in name:
            assert cfg.multiscale[-1] == cfg.train_res and cfg.multiscale[0] * 2 >= cfg.train_res  # half to full
        assert cfg.model_overrides.get("mask") == ("random" if "randmask" in name else None), name


def test_select_takes_wildcards_in_order_and_refuses_a_pattern_that_matches_nothing():
    recipes = {"a/x": "m", "a/y": "m", "b": "m"}
    assert gpu_train.select(recipes, ["b", "a/*"]) == ["b", "a/x", "a/y"]
    with pytest.raises(SystemExit, match="'c\\*'"):
        gpu_train.select(recipes, ["c*"])


def test_longest_first_puts_the_costliest_recipe_first():
    recipes = _recipes()
    names = ["ablation/s4nd_iso_7_nomask_seed0", "ablation/s4nd_iso_28_nomask_seed0", "baselines/conv2d_iso_14_multiscale_seed0"]
    assert max(names, key=lambda n: gpu_train.cost(recipes[n])) == "ablation/s4nd_iso_28_nomask_seed0"


def _run(tmp_path, recipes: dict, *args):
    path = tmp_path / "recipes.sh"
    path.write_text("".join(f'  [{n}]="{r}"\n' for n, r in recipes.items()))
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_train.py"), "--recipes", path,
                           "--device", "cpu", "-o", tmp_path / "out", "--poll", "0.2", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_runs_in_parallel_write_checkpoints_logs_and_a_summary(tmp_path):
    from resbench.checkpoints import load_checkpoint

    recipes = {"t/conv": f"conv2d_iso {TINY}", "t/blur": f"conv2d_blurpool {TINY} --seed 1"}
    done = _run(tmp_path, recipes, "--jobs", 2, "t/*")
    assert done.returncode == 0, done.stderr
    summary = [line.split("\t") for line in done.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert [row[0] for row in summary] == ["SUMMARY t/conv", "SUMMARY t/blur"]
    assert all(row[1] == "ok" and 0 <= float(row[2]) <= 1 for row in summary)
    out = tmp_path / "out"
    assert load_checkpoint(out / "t" / "blur.pt").provenance["seed"] == 1
    assert "--device cpu" in (out / "logs" / "t" / "conv.log").read_text()
    assert (out / "summary.tsv").read_text().count("\tok\t") == 2
    again = _run(tmp_path, recipes, "t/conv")  # an existing checkpoint is not trained again
    assert "SUMMARY t/conv\texists" in again.stdout


def test_nothing_starts_after_the_budget_and_runs_are_killed_at_the_deadline(tmp_path):
    recipes = {"late": f"conv2d_iso {TINY}", "long": f"conv2d_iso {TINY.replace('--epochs 1', '--epochs 10000')}"}
    late = _run(tmp_path, recipes, "--budget", 0, "late")
    assert "SUMMARY late\tnot started (budget)" in late.stdout and not (tmp_path / "out" / "late.pt").exists()
    killed = _run(tmp_path, recipes, "--deadline", 1, "long")
    assert "SUMMARY long\tkilled at deadline" in killed.stdout
