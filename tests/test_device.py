"""--device and --precision: checked before any work, recorded in every row, part of a cell's identity."""

import json

import pandas as pd
import pytest
import torch

from conftest import assert_user_error
from resbench.device import check_precision, resolve_device
from resbench.errors import ResbenchError

NO_CUDA = not torch.cuda.is_available()
cuda = pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()  # sweeps set it for the whole process
    yield
    torch.set_num_threads(threads)


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cpu") if NO_CUDA else torch.device("cuda", 0))
    for bad in ("tpu", "gpu", "", "cuda:x", "cpu:banana"):
        with pytest.raises(ResbenchError, match="--device"):
            resolve_device(bad)
    with pytest.raises(ResbenchError, match="cuda:99"):
        resolve_device("cuda:99")
    if NO_CUDA:
        with pytest.raises(ResbenchError, match="no CUDA device"):
            resolve_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ResbenchError, match="MPS"):
            resolve_device("mps")


def test_precision_names():
    assert [check_precision(p) for p in ("fp32", "BF16", " fp16 ")] == ["fp32", "bf16", "fp16"]
    with pytest.raises(ResbenchError, match="--precision"):
        check_precision("fp64")


def sweep_args(trained, out, *extra):
    return ["sweep", trained["conv"], "--dataset", "synthetic", "--test-res", "7,14", "--policy", "native",
            "--limit", 40, "--quiet", "-o", out, *extra]


@pytest.mark.parametrize("extra, named", [(["--device", "tpu"], "tpu"), (["--precision", "fp8"], "fp8")]
                         + ([(["--device", "cuda"], "cuda")] if NO_CUDA else []))
def test_a_bad_device_or_precision_is_refused_before_any_work(trained, cli, tmp_path, extra, named):
    code, _, err = cli(*sweep_args(trained, tmp_path / "sw", *extra))
    assert_user_error(code, err, named)
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("command", ["train", "plot-kernels", "report"])
def test_other_commands_refuse_a_bad_device(trained, cli, tmp_path, command):
    args = {"train": ["train", "conv2d_iso", "--dataset", "synthetic", "-o", tmp_path / "m.pt"],
            "plot-kernels": ["plot-kernels", trained["s4nd"], "-o", tmp_path / "k"],
            "report": ["report", tmp_path / "sw", "--kernels", trained["s4nd"], "-o", tmp_path / "r" / "x"]}[command]
    if command == "report":
        assert cli(*sweep_args(trained, tmp_path / "sw"))[0] == 0
    code, _, err = cli(*args, "--device", "tpu")
    assert_user_error(code, err, "tpu")


def test_precision_is_part_of_a_cells_identity_and_every_row_says_where_it_ran(trained, cli, tmp_path):
    out = tmp_path / "sw"
    assert cli(*sweep_args(trained, out, "--precision", "bf16", "--device", "cpu"))[0] == 0
    assert cli(*sweep_args(trained, out, "--device", "cpu"))[0] == 0  # fp32: bf16 cells do not answer for it
    df = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    assert sorted(df["precision"]) == ["bf16", "bf16", "fp32", "fp32"]
    assert set(df["n"]) == {"40"} and all(d.startswith("cpu (") for d in df["device"])
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert [(r["precision"], r["device"].split()[0]) for r in runs] == [("bf16", "cpu"), ("fp32", "cpu")]


def test_rows_logged_before_precision_existed_count_as_fp32(trained, cli, tmp_path):
    out = tmp_path / "sw"
    assert cli(*sweep_args(trained, out, "--device", "cpu"))[0] == 0
    log = out / "cells.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    log.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in ("precision", "device")}) + "\n"
                           for r in rows))
    from resbench.sweep import SweepConfig, run_sweep

    ran = []
    run_sweep(SweepConfig(checkpoints=[str(trained["conv"])], out=str(out), test_res=[(7, 7), (14, 14)],
                          policy=["native"], dataset="synthetic", limit=40, threads=1), quiet=True,
              on_cell_done=ran.append)
    assert ran == []  # the old fp32 rows are found: nothing is recomputed
    assert set(pd.read_csv(out / "results.csv", dtype=str)["precision"]) == {"fp32"}


@cuda
def test_a_sweep_on_the_gpu_matches_the_cpu(trained, cli, tmp_path):
    for device in ("cpu", "cuda"):
        assert cli(*sweep_args(trained, tmp_path / device, "--device", device))[0] == 0
    cpu, gpu = (pd.read_csv(tmp_path / d / "results.csv") for d in ("cpu", "cuda"))
    assert (cpu["n"] == gpu["n"]).all() and ((cpu["correct"] - gpu["correct"]).abs() <= 1).all()
    assert all(d.startswith("cuda:0 (") for d in gpu["device"])


@cuda
def test_training_on_the_gpu_records_the_device(cli, tmp_path):
    code, _, err = cli("train", "conv2d_iso", "--dataset", "synthetic", "--train-res", 14, "--epochs", 1, "--limit",
                       64, "--test-limit", 64, "--set", "d_model=8", "--set", "n_layers=1", "--device", "cuda",
                       "--quiet", "-o", tmp_path / "m.pt")
    assert code == 0, err
    from resbench.checkpoints import load_checkpoint

    assert load_checkpoint(tmp_path / "m.pt").provenance["device"].startswith("cuda:0 (")


def test_a_report_keeps_precisions_apart(trained, cli, tmp_path):
    out = tmp_path / "sw"
    for precision in ("bf16", "fp32"):
        assert cli(*sweep_args(trained, out, "--precision", precision, "--device", "cpu"))[0] == 0
    code, _, err = cli("report", out, "-o", tmp_path / "r" / "x", "--format", "md")
    assert code == 0, err
    md = (tmp_path / "r" / "x.md").read_text()
    assert "| conv2d_iso_14 [bf16] |" in md and "| conv2d_iso_14 |" in md
