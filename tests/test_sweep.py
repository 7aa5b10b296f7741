"""Tests for resbench.sweep: the tidy table, resuming after a kill, shards, intervals, and user errors."""

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO, assert_user_error, run_cli
from resbench.checkpoints import file_sha256
from resbench.device import cpu_model
from resbench.errors import ResbenchError
from resbench.resolution import default_test_sizes
from resbench.scoring import wilson_interval
from resbench.store import RESULT_COLUMNS, read_results
from resbench.sweep import SweepConfig, parse_shard, run_sweep
from resbench.sweep.config import Cell
from resbench.sweep.grid import shard_cells

# the grid every sweep here runs: 2 checkpoints x 5 sizes x 2 policies x (on, off for S4ND; none for Conv2D)
SIZES = [7, 14, 21, 28, 35]
LIMIT = 100
# s4nd_iso_14: on and off (the default settings) at every size and policy; conv2d_iso_14: none; resize-input at
# the training size (14) is the native cell, not run again (one cell per setting fewer)
N_CELLS = len(SIZES) * 2 * (2 + 1) - (2 + 1)
CELL = ["checkpoint", "test_res", "policy", "bandlimit"]


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()  # run_sweep sets it for the whole process
    yield
    torch.set_num_threads(threads)


def config(ckpt_dir, out, **changes) -> SweepConfig:
    settings = {"test_res": [(s, s) for s in SIZES], "limit": LIMIT, "threads": 1, **changes}
    return SweepConfig(checkpoints=[str(ckpt_dir)], out=str(out), **settings)


def sweep_args(ckpt_dir, out, *extra):
    """The CLI arguments of the same grid."""
    return ["sweep", ckpt_dir, "--test-res", ",".join(map(str, SIZES)), "--limit", LIMIT, "-o", out, *extra]


def read_table(out) -> pd.DataFrame:
    """results.csv as written ("none" and "" are values of bandlimit and error, sizes are text)."""
    return pd.read_csv(Path(out) / "results.csv", dtype={"train_res": str, "test_res": str}, keep_default_na=False)


def assert_same_cells(a: pd.DataFrame, b: pd.DataFrame):
    """Same cells with the same counts (timings differ between runs; the loss to float rounding)."""
    a = a.sort_values(CELL).reset_index(drop=True)
    b = b.sort_values(CELL).reset_index(drop=True)
    cols = CELL + ["model", "checkpoint_sha256", "train_res", "n", "correct", "accuracy", "error"]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_dtype=False)
    assert ((a["loss"] - b["loss"]).abs() < 1e-5).all()


def log_rows(path: Path) -> list[dict]:
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"", "the log ends with a partial line"
    return [json.loads(line) for line in lines[:-1]]


def assert_no_duplicates(out: Path):
    rows = [r for log in sorted(out.glob("cells*.jsonl")) for r in log_rows(log)]
    keys = [tuple(r[c] for c in CELL) for r in rows]
    assert len(keys) == len(set(keys))
    assert not read_table(out).duplicated(CELL).any()


@pytest.fixture(scope="module")
def full(trained, tmp_path_factory) -> Path:
    """An uninterrupted sweep of the grid: the reference every other way of running it must reproduce."""
    out = tmp_path_factory.mktemp("full")
    threads = torch.get_num_threads()
    run_sweep(config(trained["s4nd"].parent, out), quiet=True)
    torch.set_num_threads(threads)
    return out


@pytest.fixture
def full_copy(full, tmp_path) -> Path:
    return Path(shutil.copytree(full, tmp_path / "copy"))


# ---------------------------------------------------------------------------------------------
# the table


def test_columns_and_dtypes(full):
    assert (full / "results.csv").read_text().splitlines()[0] == ",".join(RESULT_COLUMNS)
    df = read_table(full)
    assert list(df.columns) == RESULT_COLUMNS
    assert df["n"].dtype == "int64" and df["correct"].dtype == "int64" and df["seed"].dtype == "int64"
    for col in ("accuracy", "ci_low", "ci_high", "loss"):
        assert df[col].dtype == "float64", col
    assert (df["n"] == LIMIT).all()
    assert df["accuracy"].between(0, 1).all()
    assert (df["accuracy"] == df["correct"] / df["n"]).all()
    assert ((df["ci_low"] <= df["accuracy"]) & (df["accuracy"] <= df["ci_high"])).all()
    assert (df["error"] == "").all()
    assert set(df["dataset"]) == {"synthetic"} and set(df["train_res"]) == {"14"}


def test_one_row_per_cell(full, trained):
    df = read_table(full)
    assert len(df) == N_CELLS
    expected = {(name, str(size), policy, bl)
                for name, bandlimits in (("s4nd_iso_14", ("on", "off")), ("conv2d_iso_14", ("none",)))
                for size in SIZES for policy in ("native", "resize-input") for bl in bandlimits
                if (size, policy) != (14, "resize-input")}
    assert set(map(tuple, df[CELL].values.tolist())) == expected
    assert not df.duplicated(CELL).any()
    assert set(df.loc[df["model"] == "conv2d_iso", "bandlimit"]) == {"none"}
    assert set(df.loc[df["model"] == "s4nd_iso", "bandlimit"]) == {"on", "off"}


def test_alpha_column(full):
    df = read_results(full)
    assert (df.loc[df["bandlimit"].isin(["on", "adaptive"]), "alpha"] == 0.5).all()  # adaptive scales it per axis
    assert df.loc[~df["bandlimit"].isin(["on", "adaptive"]), "alpha"].isna().all()


def test_read_results_from_the_csv_alone(full, tmp_path):
    """A folder with only results.csv (copied without its logs) reads back as the same frame."""
    shutil.copy(full / "results.csv", tmp_path / "results.csv")
    pd.testing.assert_frame_equal(read_results(tmp_path), read_results(full))


def test_read_results_of_an_empty_folder(tmp_path):
    with pytest.raises(ResbenchError, match="no sweep results"):
        read_results(tmp_path)


def test_per_class_sums_match_results(full):
    per_class = pd.read_csv(full / "per_class.csv", dtype={"test_res": str}, keep_default_na=False)
    sums = per_class.groupby(["checkpoint", "test_res", "policy", "bandlimit"])[["n", "correct"]].sum()
    results = read_table(full).set_index(CELL)[["n", "correct"]]
    pd.testing.assert_frame_equal(sums.sort_index(), results.sort_index(), check_names=False)
    assert set(per_class["class"]) == {0, 1, 2, 3}


def test_meta_json(full, trained):
    meta = json.loads((full / "meta.json").read_text())
    assert isinstance(meta["command"], str) and meta["command"]
    assert meta["versions"]["torch"] and meta["versions"]["resbench"]
    assert meta["machine"]["cpu"] == cpu_model() and meta["machine"]["cpu"]  # speeds depend on the CPU
    assert meta["finished"] is not None
    assert meta["config"]["limit"] == LIMIT and meta["config"]["test_res"] == [str(s) for s in SIZES]
    by_name = {c["name"]: c for c in meta["checkpoints"]}
    assert set(by_name) == {"s4nd_iso_14", "conv2d_iso_14"}
    for path in trained.values():
        assert by_name[path.stem]["sha256"] == file_sha256(path)
    assert set(read_table(full)["checkpoint_sha256"]) == {file_sha256(p) for p in trained.values()}


def test_bandlimit_switch_changes_s4nd_rows(full):
    df = read_results(full).set_index(["model", "test_res", "policy", "bandlimit"])
    on, off = df.loc[("s4nd_iso", "28", "native", "on")], df.loc[("s4nd_iso", "28", "native", "off")]
    assert on["loss"] != off["loss"] or on["correct"] != off["correct"]


def test_explicit_alpha(ckpt_dir, tmp_path, full):
    df = run_sweep(config(ckpt_dir, tmp_path, test_res=[(28, 28)], policy=["native"], bandlimit=["0.25"]), quiet=True)
    s4nd = df[df["model"] == "s4nd_iso"].iloc[0]
    assert s4nd["bandlimit"] == "0.25" and s4nd["alpha"] == 0.25
    on = read_results(full).query("model == 's4nd_iso' and test_res == '28' and policy == 'native' "
                                  "and bandlimit == 'on'").iloc[0]
    assert s4nd["loss"] != on["loss"]
    assert list(df.loc[df["model"] == "conv2d_iso", "bandlimit"]) == ["none"]


# ---------------------------------------------------------------------------------------------
# resuming


def test_rerun_adds_nothing(full_copy, ckpt_dir):
    log_before = (full_copy / "cells.jsonl").read_bytes()
    evaluated = []
    df = run_sweep(config(ckpt_dir, full_copy), quiet=True, on_cell_done=evaluated.append)
    assert evaluated == []
    assert (full_copy / "cells.jsonl").read_bytes() == log_before
    assert len(df) == N_CELLS
    assert_no_duplicates(full_copy)


def test_killed_sweep_resumes_to_the_same_table(full, ckpt_dir, tmp_path, cli):
    out = tmp_path / "killed"
    log = out / "cells.jsonl"
    args = [str(a) for a in sweep_args(ckpt_dir, out, "--quiet")]
    proc = subprocess.Popen([sys.executable, "cli.py", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if log.exists() and log.read_bytes().count(b"\n") >= 1:  # one cell done, the rest in flight
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep finished before it could be killed"
    assert 1 <= len(read_results(out)) < N_CELLS

    code, _, err = cli(*sweep_args(ckpt_dir, out, "--quiet"))
    assert code == 0, err
    assert_same_cells(read_table(out), read_table(full))
    assert_no_duplicates(out)


def test_partial_last_line_is_repaired(full, full_copy, ckpt_dir):
    log = full_copy / "cells.jsonl"
    lines = log.read_bytes().split(b"\n")[:-1]
    cut = lines[-3]
    log.write_bytes(b"\n".join(lines[:-3]) + b"\n" + cut[:len(cut) // 2])  # killed while writing a line
    assert len(read_results(full_copy)) == N_CELLS - 3  # the partial line is not a row

    evaluated = []
    run_sweep(config(ckpt_dir, full_copy), quiet=True, on_cell_done=evaluated.append)
    assert len(evaluated) == 3
    assert len(log_rows(log)) == N_CELLS
    assert_same_cells(read_table(full_copy), read_table(full))
    assert_no_duplicates(full_copy)


# ---------------------------------------------------------------------------------------------
# shards


def test_shards_merged_equal_the_full_sweep(full, ckpt_dir, tmp_path, cli):
    parts = [tmp_path / "part1", tmp_path / "part2"]
    for k, part in enumerate(parts, start=1):
        run_sweep(config(ckpt_dir, part, shard=(k, 2)), quiet=True)
        assert (part / f"cells-{k}of2.jsonl").exists() and (part / f"meta-{k}of2.json").exists()
    sizes = [len(read_table(p)) for p in parts]
    assert sorted(sizes, reverse=True) == [(N_CELLS + 1) // 2, N_CELLS // 2]
    keys = [set(map(tuple, read_table(p)[CELL].values.tolist())) for p in parts]
    assert not keys[0] & keys[1]

    merged = tmp_path / "merged"
    code, out, err = cli("merge", *parts, "-o", merged)
    assert code == 0, err
    assert f"{N_CELLS} cells" in out
    assert_same_cells(read_table(merged), read_table(full))
    assert_no_duplicates(merged)


def test_shards_into_one_folder_give_the_full_table(full, ckpt_dir, tmp_path):
    for k in (1, 2):
        run_sweep(config(ckpt_dir, tmp_path, shard=(k, 2)), quiet=True)
    assert_same_cells(read_table(tmp_path), read_table(full))
    assert_no_duplicates(tmp_path)


def _pixels(cells: list[Cell]) -> int:
    return sum(math.prod(c.test_res) for c in cells)


def test_shards_draw_every_size_whatever_the_grid_period():
    """Four test sizes over four shards: every 4th cell would give one shard all the 56 px cells (64x the
    work of the 7 px ones); dealt by size each shard gets a like share."""
    cells = [Cell(0, (s, s), "native", "on") for s in [7, 14, 28, 56]] * 12  # 48 cells, period 4
    ckpts = [SimpleNamespace(train_res=(14, 14))]
    shards = [shard_cells(cells, ckpts, (k, 4)) for k in range(1, 5)]
    for part in shards:
        assert {c.test_res[0] for c in part} == {7, 14, 28, 56}
    work = [_pixels(part) for part in shards]
    assert max(work) - min(work) <= 56 * 56


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 64), min_size=0, max_size=60), st.integers(1, 9))
def test_shards_partition_the_cells_and_balance_pixels(sizes, n):
    cells = [Cell(0, (s, s), "native", str(i)) for i, s in enumerate(sizes)]
    ckpts = [SimpleNamespace(train_res=(14, 14))]
    shards = [shard_cells(cells, ckpts, (k, n)) for k in range(1, n + 1)]
    dealt = [c for part in shards for c in part]
    assert sorted(dealt, key=cells.index) == cells and len(dealt) == len(cells)  # each cell once
    for part in shards:
        assert part == sorted(part, key=cells.index)  # the grid's order kept
    counts = [len(part) for part in shards]
    assert max(counts) - min(counts) <= 1
    work = [_pixels(part) for part in shards]
    assert max(work) - min(work) <= max([s * s for s in sizes], default=0)


def test_shards_deal_by_the_size_the_model_runs_at():
    """Under resize-input the model runs at its training size: those cells weigh what the training size does."""
    ckpt = SimpleNamespace(train_res=(56, 56))
    cells = [Cell(0, (28, 28), "native", "on"), Cell(0, (14, 14), "native", "on"),
             Cell(0, (7, 7), "resize-input", "on")]
    assert shard_cells(cells, [ckpt], (1, 3)) == [cells[2]]  # the 56 px model, though tested at 7


@pytest.mark.parametrize("text, expected", [("1/1", (1, 1)), ("2/3", (2, 3)), (" 1/4", (1, 4))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["3/2", "0/2", "1/0", "a/b", "1", "1/2/3", ""])
def test_parse_shard_refuses(text):
    with pytest.raises(ResbenchError, match="--shard"):
        parse_shard(text)


# ---------------------------------------------------------------------------------------------
# intervals and default sizes


def wilson_reference(correct, n, z=1.959963984540054):
    """The Wilson score interval written out from its textbook form."""
    p = correct / n
    centre = (2 * n * p + z ** 2) / (2 * (n + z ** 2))
    half = z * math.sqrt(4 * n * p * (1 - p) + z ** 2) / (2 * (n + z ** 2))
    return centre - half, centre + half


@pytest.mark.parametrize("correct, n, expected", [(0, 10, (0.0, 0.27753)), (5, 10, (0.23659, 0.76341)),
                                                  (10, 10, (0.72247, 1.0))])
def test_wilson_known_values(correct, n, expected):
    low, high = wilson_interval(correct, n)
    assert low == pytest.approx(expected[0], abs=1e-5) and high == pytest.approx(expected[1], abs=1e-5)
    if correct == 0:
        assert low == 0.0
    if correct == n:
        assert high == 1.0


def test_wilson_empty():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_properties(case):
    correct, n = case
    low, high = wilson_interval(correct, n)
    assert 0.0 <= low <= correct / n <= high <= 1.0
    ref = wilson_reference(correct, n)
    assert low == pytest.approx(max(0.0, ref[0]), abs=1e-12) and high == pytest.approx(min(1.0, ref[1]), abs=1e-12)
    mirror = wilson_interval(n - correct, n)
    assert low == pytest.approx(1 - mirror[1], abs=1e-12)


def test_default_test_sizes():
    assert default_test_sizes([(14, 14)]) == [(s, s) for s in (7, 8, 10, 12, 14, 16, 20, 24, 28)]
    assert default_test_sizes([(10, 10)])[0] == (5, 5) and (10, 10) in default_test_sizes([(10, 10)])
    # several training sizes share the union of their ladders
    both = default_test_sizes([(28, 28), (7, 7)])
    assert set(default_test_sizes([(7, 7)])) | set(default_test_sizes([(28, 28)])) == set(both)


# ---------------------------------------------------------------------------------------------
# user errors through the CLI: one line, exit code 2, and an existing sweep left as it was


def snapshot(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("sizes", ["abc", "0", "-3", "", "14,,28", "100000", "7x"])
def test_bad_test_sizes(full_copy, ckpt_dir, cli, sizes):
    before = snapshot(full_copy)
    code, _, err = cli("sweep", ckpt_dir, "--test-res", sizes, "-o", full_copy)
    assert_user_error(code, err, repr(sizes))
    assert snapshot(full_copy) == before


@pytest.mark.parametrize("extra, named", [(["--policy", "bogus"], "bogus"), (["--shard", "3/2"], "3/2"),
                                          (["--bandlimit", "-1"], "-1"), (["--bandlimit", "on,,off"], "on,,off"),
                                          (["--limit", "0"], "--limit"),
                                          (["--dataset", "mnist", "--data-dir", "/nonexistent"], "/nonexistent"),
                                          (["--dataset", "nosuchset"], "nosuchset")])
def test_bad_options(full_copy, ckpt_dir, cli, extra, named):
    before = snapshot(full_copy)
    code, _, err = cli(*sweep_args(ckpt_dir, full_copy, *extra))
    assert_user_error(code, err, named)
    assert snapshot(full_copy) == before


def test_random_bytes_checkpoint(full_copy, ckpt_dir, tmp_path, cli):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(random.Random(0).randbytes(5000))
    before = snapshot(full_copy)
    code, _, err = cli(*sweep_args(junk, full_copy))
    assert_user_error(code, err, junk)
    code, _, err = cli(*sweep_args(ckpt_dir, full_copy)[:2], junk, *sweep_args(ckpt_dir, full_copy)[2:])
    assert_user_error(code, err, junk)  # one bad file among good ones stops the sweep before any work
    assert snapshot(full_copy) == before


def test_missing_checkpoint_and_empty_folder(tmp_path, cli):
    code, _, err = cli("sweep", tmp_path / "nope.pt", "-o", tmp_path / "out")
    assert_user_error(code, err, tmp_path / "nope.pt")
    (tmp_path / "empty").mkdir()
    code, _, err = cli("sweep", tmp_path / "empty", "-o", tmp_path / "out")
    assert_user_error(code, err, tmp_path / "empty")
    assert not (tmp_path / "out").exists()


def test_output_path_that_is_a_file(ckpt_dir, tmp_path, cli):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    code, _, err = cli(*sweep_args(ckpt_dir, target))
    assert_user_error(code, err, target)
    assert target.read_text() == "keep me"


def test_merge_of_a_folder_that_is_not_a_sweep(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("merge", tmp_path / "empty", "-o", tmp_path / "out")
    assert_user_error(code, err, tmp_path / "empty")


@pytest.mark.parametrize("case", ["junk checkpoint", "missing dataset"])
def test_user_errors_in_a_real_process(full_copy, ckpt_dir, tmp_path, case):
    """The same errors from `python cli.py`: nothing else on stderr (no warning, no log line, no traceback)."""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(3000))
    args = {"junk checkpoint": sweep_args(junk, full_copy),
            "missing dataset": sweep_args(ckpt_dir, full_copy, "--dataset", "mnist", "--data-dir", "/nonexistent")}
    before = snapshot(full_copy)
    result = run_cli(*args[case])
    assert_user_error(result.returncode, result.stderr, junk if case == "junk checkpoint" else "/nonexistent")
    assert snapshot(full_copy) == before


def test_summary_printed_to_a_log_file_keeps_whole_names(cli, ckpt_dir, tmp_path):
    """Eight test sizes do not fit 80 columns; a log file (not a terminal) still gets every name and size."""
    sizes = ["7", "14", "21", "28", "35", "42", "49", "56"]
    code, out, err = cli("sweep", ckpt_dir, "--test-res", ",".join(sizes), "--policy", "native",
                         "--limit", "4", "-o", tmp_path / "out")
    assert code == 0, err
    table = out[:out.index("cells in")]
    for name in ["s4nd_iso_14", "conv2d_iso_14", "native", *sizes]:
        assert name in table, (name, table)
    assert "…" not in table, table
