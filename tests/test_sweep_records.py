"""What a sweep folder records: progress without a terminal, one record per run, replaced files kept apart,
cells keyed by the images really used, class names."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import run_cli
from resbench.layers import onednn
from resbench.store import read_results
from resbench.sweep import SweepConfig, run_sweep


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()  # run_sweep sets it for the whole process
    yield
    torch.set_num_threads(threads)


def table(out) -> pd.DataFrame:
    return pd.read_csv(Path(out) / "results.csv", dtype={"train_res": str, "test_res": str}, keep_default_na=False)


def test_without_a_terminal_every_finished_cell_prints_a_line(trained, tmp_path):
    # a real process whose stderr is a pipe, as under nohup, CI or `make demo > log`
    proc = run_cli("sweep", trained["conv"], "--dataset", "synthetic", "--test-res", "7,14", "--limit", 40,
                   "-o", tmp_path / "sw")
    assert proc.returncode == 0, proc.stderr
    first = [line for line in proc.stderr.splitlines() if "cells in this shard" in line]
    assert len(first) == 1 and "3 to run, estimated" in first[0] \
        and first[0].endswith("; SUBSET: the first 40 of 1000 test images per cell"), \
        proc.stderr  # whole on one line: a log file is 80 columns wide for rich
    lines = [line for line in proc.stderr.splitlines() if line.startswith("cell ")]
    # 7 native and resize-input, 14 native (resize-input at 14, the training size, is that cell)
    assert [re.match(r"cell (\d+)/3 ", line).group(1) for line in lines] == ["1", "2", "3"]
    for line in lines:
        assert "conv2d_iso_14 @ " in line and "img/s" in line and "elapsed" in line and "ETA" in line, line


def test_quiet_prints_no_cell_lines(trained, cli, tmp_path):
    code, _, err = cli("sweep", trained["conv"], "--dataset", "synthetic", "--test-res", "7", "--limit", 16,
                       "--quiet", "-o", tmp_path / "sw")
    assert code == 0 and "cell 1/" not in err


def test_every_run_keeps_its_record_with_the_code_commit(trained, cli, tmp_path):
    out = tmp_path / "sw"
    for sizes in ("7", "7,14"):
        code, _, err = cli("sweep", trained["conv"], "--dataset", "synthetic", "--test-res", sizes, "--limit", 16,
                           "--quiet", "-o", out)
        assert code == 0, err
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert len(records) == 2
    assert [r["config"]["test_res"] for r in records] == [["7"], ["7", "14"]]
    assert all(r["finished"] for r in records)
    assert all(re.fullmatch(r"[0-9a-f]{40}", r["code"]["commit"]) for r in records)  # this repo is a checkout
    assert all(r["onednn_linears"] == onednn.status() for r in records)
    assert json.loads((out / "meta.json").read_text())["config"]["test_res"] == ["7", "14"]  # the newest


def test_a_limit_above_the_test_set_is_keyed_as_the_full_set(trained, tmp_path):
    out = tmp_path / "sw"
    cfg = dict(checkpoints=[str(trained["conv"])], out=str(out), test_res=[(7, 7)], policy=["native"],
               dataset="synthetic", threads=1)
    run_sweep(SweepConfig(**cfg, limit=99999), quiet=True)
    rows = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert [(r["limit"], r["n"]) for r in rows] == [(-1, 1000)]  # the synthetic test split holds 1000 images
    ran = []
    run_sweep(SweepConfig(**cfg), quiet=True, on_cell_done=ran.append)  # the full run finds the cell done
    assert ran == []
    run_sweep(SweepConfig(**cfg, limit=10), quiet=True, on_cell_done=ran.append)  # a real subset is its own cell
    assert [r["n"] for r in ran] == [10]


def test_a_replaced_checkpoint_file_leaves_the_main_table(trained, cli, tmp_path):
    from resbench.checkpoints import load_checkpoint, save_checkpoint

    ckdir, out = tmp_path / "ck", tmp_path / "sw"
    ckdir.mkdir()
    path = ckdir / "model.pt"
    shutil.copy(trained["conv"], path)
    args = ["sweep", ckdir, "--dataset", "synthetic", "--test-res", "7,14", "--limit", 16, "-o", out]
    assert cli(*args)[0] == 0
    old_sha = table(out)["checkpoint_sha256"].iloc[0]
    ckpt = load_checkpoint(path)
    ckpt.provenance["note"] = "retrained"  # another file under the same name
    save_checkpoint(ckpt, path)
    code, stdout, err = cli(*args)
    assert code == 0, err
    new = table(out)
    assert len(new) == 3 and set(new["checkpoint_sha256"]) == {load_checkpoint(path).sha256}
    assert set(pd.read_csv(out / "superseded.csv")["checkpoint_sha256"]) == {old_sha}
    assert len(read_results(out)) == 3  # 7 both policies, 14 (the training size) native only
    assert "failed" not in stdout + err  # the old file's rows are not failures
    per_class = pd.read_csv(out / "per_class.csv")
    assert set(per_class["checkpoint_sha256"]) == {load_checkpoint(path).sha256}


def test_per_class_names_the_classes(trained, tmp_path):
    from resbench.data import dataset_info

    out = tmp_path / "sw"
    run_sweep(SweepConfig(checkpoints=[str(trained["conv"])], out=str(out), test_res=[(7, 7)], policy=["native"],
                          dataset="synthetic", limit=40, threads=1), quiet=True)
    per_class = pd.read_csv(out / "per_class.csv")
    names = dict(zip(per_class["class"], per_class["class_name"]))
    assert names == dict(enumerate(dataset_info("synthetic").classes))


def test_a_subset_says_so_in_the_terminal_the_run_record_and_the_report(trained, cli, tmp_path):
    args = ["sweep", trained["conv"], "--dataset", "synthetic", "--test-res", "7", "--policy", "native"]
    code, _, err = cli(*args, "--limit", 40, "-o", tmp_path / "part")
    assert code == 0 and "SUBSET: the first 40 of 1000 test images per cell" in err, err
    record = json.loads((tmp_path / "part" / "meta.json").read_text())["checkpoints"][0]
    assert (record["test_images"], record["test_split_images"]) == (40, 1000)
    assert cli("report", tmp_path / "part", "-o", tmp_path / "rep" / "part", "--format", "md")[0] == 0
    assert "SUBSET: cells use the first 40 of 1000 test images" in (tmp_path / "rep" / "part.md").read_text()
    code, _, err = cli(*args, "-o", tmp_path / "full")  # the whole split: nothing to warn about
    assert code == 0 and "SUBSET" not in err
    assert cli("report", tmp_path / "full", "-o", tmp_path / "rep" / "full", "--format", "md")[0] == 0
    assert "SUBSET" not in (tmp_path / "rep" / "full.md").read_text()


def test_a_float32_cpu_cell_runs_the_models_linears_through_onednn(trained, tmp_path, monkeypatch):
    rows = []
    real = onednn.linear
    monkeypatch.setattr(onednn, "linear", lambda x, w, b: rows.append(x.shape[0]) or real(x, w, b))
    run_sweep(SweepConfig(checkpoints=[str(trained["conv"])], out=str(tmp_path / "sw"), test_res=[(7, 7)],
                          policy=["native"], dataset="synthetic", limit=16), quiet=True)
    if onednn._operator() is None:
        assert rows == []
    else:
        assert sum(rows) == 16  # conv2d_iso's one nn.Linear, its classifier, once per image
