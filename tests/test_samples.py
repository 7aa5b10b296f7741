"""sweep --log-samples: one Parquet file of per-image records per cell, consistent with the cell's row,
resumable like the rows, merged with them; and the subset column that keeps partial runs apart."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import assert_user_error
from resbench.data import load_raw
from resbench.errors import ResbenchError
from resbench.store import SAMPLE_COLUMNS, merge_sweeps, read_results, read_samples
from resbench.sweep import SweepConfig, run_sweep, summary_frame


@pytest.fixture(autouse=True)
def _keep_torch_threads(keep_torch_threads):
    yield


def config(trained, out, **kw):
    base = dict(checkpoints=[str(trained["s4nd"]), str(trained["conv"])], out=str(out), test_res=[(7, 7), (14, 14)],
                bandlimit=["on"], dataset="synthetic", limit=60, threads=1, log_samples=True)
    return SweepConfig(**{**base, **kw})


def test_every_cell_gets_records_that_agree_with_its_row(trained, tmp_path):
    out = tmp_path / "sw"
    run_sweep(config(trained, out), quiet=True)
    df = read_results(out)
    assert len(df) == 6 and (df["error"] == "").all()  # 7: both policies, 14 (training size): native
    labels = load_raw("synthetic", "test", limit=60)[1]
    names = set()
    for row in df.itertuples():
        s = read_samples(out, row)
        assert s is not None, row.samples
        names.add(row.samples)
        assert list(s.columns) == SAMPLE_COLUMNS
        assert s["index"].tolist() == list(range(60)) and len(s) == row.n
        assert s["label"].tolist() == labels.tolist()  # in the test split's order
        assert int((s["pred"] == s["label"]).sum()) == row.correct
        assert ((s["p_pred"] >= s["p_label"] - 1e-6) & (s["p_label"] >= 0) & (s["p_pred"] <= 1)).all()
        assert (s["top1"] == s["pred"]).mean() > 0.95  # the argmax; only exact ties may order differently
        top = s[[f"top{k}" for k in range(1, 6)]].to_numpy()
        assert all(len(set(r)) == 5 for r in top)  # five different classes per image
    assert len(names) == 6  # one file per cell
    assert {p.name for p in (out / "samples").glob("*.parquet")} == {Path(n).name for n in names}


def test_records_resume_like_the_rows(trained, tmp_path):
    out = tmp_path / "sw"
    ran = []
    run_sweep(config(trained, out, log_samples=False), quiet=True, on_cell_done=ran.append)
    assert len(ran) == 6 and not (out / "samples").exists() and (read_results(out)["samples"] == "").all()
    ran.clear()
    run_sweep(config(trained, out), quiet=True, on_cell_done=ran.append)  # rows there, records not: run again
    assert len(ran) == 6 and all(r["samples"] for r in ran)
    before = read_results(out)
    ran.clear()
    run_sweep(config(trained, out), quiet=True, on_cell_done=ran.append)
    assert ran == []  # all there
    gone = Path(out) / before["samples"].iloc[3]
    gone.unlink()
    run_sweep(config(trained, out), quiet=True, on_cell_done=ran.append)
    assert [r["samples"] for r in ran] == [before["samples"].iloc[3]] and gone.is_file()
    after = read_results(out)
    assert after["correct"].tolist() == before["correct"].tolist()  # the rerun row replaces, never adds
    run_sweep(config(trained, out, log_samples=False), quiet=True, on_cell_done=ran.append)
    assert len(ran) == 1  # without --log-samples nothing reruns


def test_merge_brings_the_records_along(trained, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run_sweep(config(trained, a, test_res=[(7, 7)]), quiet=True)
    run_sweep(config(trained, b, test_res=[(14, 14)]), quiet=True)
    merged = merge_sweeps([str(a), str(b)], str(tmp_path / "m"))
    assert len(merged) == 6
    for row in merged.itertuples():
        assert read_samples(tmp_path / "m", row) is not None, row.samples


def test_a_cut_records_file_is_a_one_line_error(trained, tmp_path):
    out = tmp_path / "sw"
    run_sweep(config(trained, out, test_res=[(7, 7)], checkpoints=[str(trained["conv"])]), quiet=True)
    row = read_results(out).iloc[0]
    path = out / row["samples"]
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ResbenchError, match="unreadable per-image records"):
        read_samples(out, row.to_dict())


def test_log_samples_without_pyarrow_is_a_user_error(trained, cli, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    code, _, err = cli("sweep", trained["conv"], "--dataset", "synthetic", "--test-res", "7", "--limit", 8,
                       "--log-samples", "-o", tmp_path / "sw")
    assert_user_error(code, err, "--log-samples", "pyarrow")


def test_subset_and_full_cells_are_told_apart_and_never_mixed(trained, tmp_path):
    out = tmp_path / "sw"
    cfg = dict(checkpoints=[str(trained["conv"])], test_res=[(7, 7)], policy=["native"], log_samples=False)
    run_sweep(config(trained, out, **cfg, limit=20), quiet=True)
    full = run_sweep(config(trained, out, **cfg, limit=None), quiet=True)
    df = read_results(out)
    assert sorted(df["test_images"]) == ["first 20 of 1000", "full"]
    assert sorted(df["limit"]) == [-1, 20]
    frame, _ = summary_frame(full, full.attrs["checkpoint_sha256"], "fp32", full.attrs["limit"], full.attrs["seed"])
    n_full = int(df.loc[df["test_images"] == "full", "correct"].iloc[0])
    assert frame["7"].tolist() == [pytest.approx(100 * n_full / 1000)]  # the full run's cell, not the subset's
    rows = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert [r["test_images"] for r in rows] == ["first 20 of 1000", "full"]
    assert json.loads((out / "meta.json").read_text())["checkpoints"][0]["test_images"] == 1000


def test_old_rows_without_the_column_read_as_full_or_first_n(tmp_path):
    from resbench.store import results_frame

    base = {"model": "m", "checkpoint": "c", "checkpoint_sha256": "x", "train_res": "7", "test_res": "7",
            "policy": "native", "bandlimit": "none", "seed": 0, "n": 5, "correct": 3, "error": ""}
    df = results_frame([{**base, "limit": -1}, {**base, "limit": 5, "test_res": "14"}])
    assert df["test_images"].tolist() == ["full", "first 5"]
    assert torch.tensor(df["limit"].tolist()).tolist() == [-1, 5]
