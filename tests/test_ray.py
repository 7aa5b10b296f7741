"""`sweep --executor ray`: the same table as the local executor, a killed driver resumed, failed tasks as
error rows, and one-line errors for Ray's options (those run without Ray installed)."""

import json
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import assert_user_error
from resbench.store import read_results
from resbench.sweep import Cell, SweepConfig
from test_reliability import kill_cli_when

SIZES = "7,14,21"
LIMIT = 64
CELL = ["checkpoint", "test_res", "policy", "bandlimit"]

pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # run_sweep sets it for the whole process


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the module: sweeps in this process use it instead of starting their own."""
    ray = pytest.importorskip("ray")
    from resbench.sweep.ray_executor import start_ray

    assert start_ray(SweepConfig(checkpoints=[], out="", executor="ray", ray_tasks=2))
    yield ray
    ray.shutdown()


def sweep_args(ckpt_dir, out, *extra):
    return ["sweep", ckpt_dir, "--test-res", SIZES, "--limit", LIMIT, "--bandlimit", "on,off,capped", "--quiet", "-o",
            out, *extra]


def cells(out) -> dict:
    """{cell: (n, correct, error)} from the logs, after checking that no cell was logged twice."""
    rows = [json.loads(line) for log in sorted(Path(out).glob("cells*.jsonl"))
            for line in log.read_bytes().split(b"\n") if line.strip()]
    keys = [tuple(r[c] for c in CELL) for r in rows]
    assert len(keys) == len(set(keys)), "a cell was logged twice"
    table = read_results(out)
    assert not table.duplicated(CELL).any() and len(table) == len(rows)
    return {k: (r["n"], r["correct"], r["error"]) for k, r in zip(keys, rows)}


@pytest.fixture(scope="module")
def reference(trained, tmp_path_factory) -> Path:
    """The grid swept by the local executor."""
    from resbench.cli import main

    out = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    assert main([str(a) for a in sweep_args(trained["s4nd"].parent, out)]) == 0
    torch.set_num_threads(threads)
    values = cells(out)
    # per size and policy: s4nd on and off, conv none; and s4nd capped natively at 7; resize-input at 14 (the
    # training size) is the native cell, run once
    assert len(values) == 3 * 2 * 3 + 1 - 3 and all(v[0] == LIMIT and v[2] == "" for v in values.values())
    return out


# ---------------------------------------------------------------------------------------------
# the same table, whoever computes it


@pytest.mark.ray
def test_ray_sweep_equals_the_local_sweep(local_ray, trained, reference, tmp_path, cli):
    code, _, err = cli(*sweep_args(trained["s4nd"].parent, tmp_path, "--executor", "ray", "--ray-tasks", 2))
    assert code == 0, err
    assert cells(tmp_path) == cells(reference)
    # every other column as the local executor writes it, but the timings (and the loss to float rounding)
    timing = ["seconds", "images_per_s", "loss"]
    ray_rows, local_rows = read_results(tmp_path), read_results(reference)
    pd.testing.assert_frame_equal(ray_rows.drop(columns=timing), local_rows.drop(columns=timing))
    assert ((ray_rows["loss"] - local_rows["loss"]).abs() < 1e-5).all()
    assert json.loads((tmp_path / "meta.json").read_text())["config"]["executor"] == "ray"

@pytest.mark.ray
def test_the_python_api_takes_the_ray_executor(local_ray, trained, reference, tmp_path):
    import resbench.api

    df = resbench.api.sweep(trained["s4nd"].parent, tmp_path, test_res=SIZES, bandlimit="on,off,capped",
                            limit=LIMIT, quiet=True, executor="ray", ray_tasks=2)
    assert len(df) == len(cells(reference)) and cells(tmp_path) == cells(reference)



@pytest.mark.ray
def test_a_model_from_outside_resbench_goes_to_the_workers(local_ray, tmp_path, cli):
    args = ["--model", "factory_models:tiny_cnn", "--dataset", "synthetic", "--test-res", "14", "--limit", 32,
            "--quiet"]  # tests/ is on this process's sys.path, so a local Ray's workers import it too
    for executor in ("local", "ray"):
        code, _, err = cli("sweep", *args, "--executor", executor, "-o", tmp_path / executor)
        assert code == 0, err
    assert cells(tmp_path / "ray") == cells(tmp_path / "local")


@pytest.mark.ray
def test_killed_driver_resumes_to_the_same_table(local_ray, trained, reference, tmp_path, cli):
    out = tmp_path / "killed"
    args = [str(a) for a in sweep_args(trained["s4nd"].parent, out, "--executor", "ray", "--ray-tasks", 2)]
    log = out / "cells.jsonl"
    # a driver that starts its own Ray (10-30 s on a busy CPU), killed as the first task's rows are logged
    code = kill_cli_when(args, lambda: log.exists() and log.read_bytes().count(b"\n") >= 1, within=150)
    assert code == -signal.SIGKILL
    assert 1 <= len(cells(out)) < len(cells(reference))

    code, _, err = cli(*args)  # resumed in this process, on the module's Ray
    assert code == 0, err
    assert cells(out) == cells(reference)


@pytest.fixture(scope="module")
def convnext_14(tmp_path_factory) -> Path:
    """An untrained small ConvNeXt trained at 14 px: its three stages need inputs of at least 4 px."""
    from resbench.checkpoints import Checkpoint, save_checkpoint
    from resbench.models import create_model

    torch.manual_seed(0)
    net = create_model("convnext", train_res=14, depths=[1, 1, 1], dims=[8, 8, 8], num_classes=4)
    ckpt = Checkpoint(model="convnext", config=net.config_dict(),
                      provenance={"dataset": "synthetic", "train_res": 14, "schedule": [[14, 1]]},
                      data_stats={"mean": [0.5], "std": [0.25]}, state_dict=net.state_dict())
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("convnext") / "convnext_14.pt")


@pytest.mark.ray
def test_a_failing_task_gives_error_rows_and_the_rest_finish(local_ray, trained, convnext_14, tmp_path, cli):
    # at 2 px the ConvNeXt raises inside its task (the local executor would stop the sweep there)
    code, out, err = cli("sweep", convnext_14, trained["conv"], "--test-res", "2,14", "--limit", 32,
                         "-o", tmp_path, "--executor", "ray", "--ray-tasks", 2)
    assert code == 0, err
    values = cells(tmp_path)
    failed = {k: v for k, v in values.items() if v[2]}
    assert set(failed) == {("convnext_14", "2", policy, "none") for policy in ("native", "resize-input")}
    assert all(v[0] == 0 and "ResbenchError: convnext input of shape" in v[2] for v in failed.values())
    # 2 checkpoints x (2 and 14 native, 2 resize-input): resize-input at 14, the training size, is the native cell
    assert len(values) == 6 and all(v[0] == 32 for k, v in values.items() if k not in failed)
    assert "2 cell(s) failed" in out

    logged = (tmp_path / "cells.jsonl").read_bytes().count(b"\n")
    code, _, err = cli("sweep", convnext_14, trained["conv"], "--test-res", "2,14", "--limit", 32, "--quiet",
                       "-o", tmp_path, "--executor", "ray")
    assert code == 0, err  # a rerun tries the failed cells again, and only them
    assert (tmp_path / "cells.jsonl").read_bytes().count(b"\n") == logged + 2


@pytest.mark.ray
def test_without_a_terminal_each_returned_cell_prints_a_line(local_ray, trained, tmp_path, cli):
    code, _, err = cli("sweep", trained["conv"], "--dataset", "synthetic", "--test-res", "7,14", "--limit", 16,
                       "-o", tmp_path, "--executor", "ray")
    assert code == 0, err
    lines = sorted(line.split(" ")[1] for line in err.splitlines() if line.startswith("cell "))
    assert lines == ["1/3", "2/3", "3/3"], err  # 7 both policies, 14 (the training size) native


def test_groups_share_a_checkpoint_and_a_test_size():
    from resbench.sweep.ray_executor import group_cells

    cells = [Cell(i, (s, s), policy, "none") for i in (0, 1) for s in (7, 14) for policy in ("native", "resize-input")]
    groups = group_cells(cells[1:])  # a shard may start mid-group
    assert [len(g) for g in groups] == [1, 2, 2, 2]
    assert all(len({(c.ckpt_index, c.test_res) for c in g}) == 1 for g in groups)
    assert [c for g in groups for c in g] == cells[1:]


# ---------------------------------------------------------------------------------------------
# user errors: one line, exit 2, before any work (these need no Ray)


def test_ray_not_installed_is_a_one_line_error(ckpt_dir, tmp_path, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, _, err = cli(*sweep_args(ckpt_dir, tmp_path / "out", "--executor", "ray"))
    assert_user_error(code, err, "--executor ray", "pip install -e '.[ray]'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, named", [(["--executor", "ray", "--ray-tasks", "0"], "--ray-tasks 0"),
                                          (["--executor", "ray", "--ray-tasks", "-2"], "--ray-tasks -2"),
                                          (["--executor", "ray", "--cpus-per-task", "0"], "--cpus-per-task 0"),
                                          (["--executor", "ray", "--ray-tasks", "two"], "--ray-tasks"),
                                          (["--executor", "slurm"], "'slurm'"),
                                          (["--executor", "ray", "--address", "127.0.0.1:1"], "127.0.0.1:1"),
                                          (["--executor", "ray", "--address", "head"], "HOST:PORT"),
                                          (["--ray-tasks", "2"], "--executor ray"),
                                          (["--address", "auto"], "--executor ray"),
                                          (["--cpus-per-task", "4"], "--executor ray")])
def test_bad_executor_options(ckpt_dir, tmp_path, cli, extra, named):
    code, _, err = cli(*sweep_args(ckpt_dir, tmp_path / "out", *extra))
    assert_user_error(code, err, named)
    assert not (tmp_path / "out").exists()


@pytest.mark.ray
def test_the_cell_timeout_holds_in_ray_tasks(local_ray, trained, tmp_path, cli):
    """A Ray task runs its cells on its worker's main thread, so --cell-timeout's timer works there: a limit no
    cell can keep turns every cell into an error row naming it, and the sweep still ends normally."""
    code, _, err = cli("sweep", trained["conv"], "--test-res", "7,14", "--limit", LIMIT, "--policy", "native",
                       "--quiet", "--executor", "ray", "--ray-tasks", 1, "--cell-timeout", "0.0001", "-o", tmp_path)
    assert code == 0, err
    values = cells(tmp_path)
    assert len(values) == 2 and all(n == 0 and "--cell-timeout" in e and "ran past" in e for n, _, e in values.values())


@pytest.mark.ray
def test_ray_tasks_never_past_the_clusters_cpus(local_ray, trained, tmp_path, cli, monkeypatch):
    """`--ray-tasks 10000` on a real local cluster of 2 CPUs: never more than 2 tasks in flight, and the sweep
    ends with every cell."""
    from resbench.sweep import ray_executor

    cpus = int(local_ray.cluster_resources()["CPU"])
    in_flight = []
    real_wait = local_ray.wait
    monkeypatch.setattr(local_ray, "wait", lambda refs, **kw: in_flight.append(len(refs)) or real_wait(refs, **kw))
    assert ray_executor._task_slots(SweepConfig(checkpoints=[], out="", executor="ray", ray_tasks=10000)) == cpus
    code, _, err = cli("sweep", trained["conv"], "--test-res", "7,14,21,28", "--limit", LIMIT, "--policy", "native",
                       "--quiet", "--executor", "ray", "--ray-tasks", 10000, "-o", tmp_path)
    assert code == 0, err
    assert len(cells(tmp_path)) == 4
    assert in_flight and max(in_flight) == cpus
