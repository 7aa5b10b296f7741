"""A sweep's guards: --cell-timeout, one sweep per folder (and shard) at a time, and errors caused by a file's
content naming the file."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import assert_user_error, make_checkpoint
from resbench.checkpoints import save_checkpoint


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()  # run_sweep sets it for the whole process
    yield
    torch.set_num_threads(threads)


def _factory_sweep(spec, out, *extra):
    return ["sweep", "--model", spec, "--dataset", "synthetic", "--test-res", "8,16,24", "--limit", 16,
            "--device", "cpu", "--quiet", "-o", out, *extra]


# ---------------------------------------------------------------------------------------------
# --cell-timeout


def test_a_cell_past_the_cell_timeout_is_an_error_row_and_the_sweep_goes_on(tmp_path, cli):
    handler = signal.getsignal(signal.SIGALRM)
    code, _, err = cli(*_factory_sweep("factory_models:sleeps_at_24", tmp_path / "out", "--cell-timeout", "2"))
    assert code == 0, err
    df = pd.read_csv(tmp_path / "out" / "results.csv", keep_default_na=False, dtype={"test_res": str})
    hung = df[(df["test_res"] == "24") & (df["policy"] == "native")]  # the only cell whose forward sees 24 px
    assert len(hung) == 1 and hung["n"].iloc[0] == 0
    assert "--cell-timeout" in hung["error"].iloc[0] and "ran past 2 s" in hung["error"].iloc[0]
    rest = df.drop(hung.index)
    assert len(rest) == 4 and (rest["error"] == "").all() and (rest["n"] == 16).all()  # 8, 16, 24 resized, 8 resized
    record = json.loads(next((tmp_path / "out" / "runs").glob("*.json")).read_text())
    assert record["config"]["cell_timeout"] == 2
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and signal.getsignal(signal.SIGALRM) == handler


def test_a_factory_past_the_cell_timeout_is_one_line(tmp_path, cli):
    code, _, err = cli(*_factory_sweep("factory_models:sleeps", tmp_path / "out", "--cell-timeout", "0.5"))
    assert_user_error(code, err, "factory_models:sleeps", "--cell-timeout", "ran past 0.5 s")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, named", [(["--cell-timeout", "0"], "positive"), (["--cell-timeout", "-1"], "positive"),
                                          (["--cell-timeout", "nan"], "positive"),
                                          (["--cell-timeout", "inf"], "positive")])
def test_cell_timeout_options_are_checked(trained, tmp_path, cli, extra, named):
    code, _, err = cli("sweep", trained["conv"], "--test-res", "7", "--limit", 8, *extra, "-o", tmp_path / "out")
    assert_user_error(code, err, "--cell-timeout", named)
    assert not (tmp_path / "out").exists()


def test_the_time_limit_interrupts_a_sleep_and_costs_nothing_without_a_limit():
    import time

    from resbench.runtime import TimeLimitExceeded, time_limit

    with pytest.raises(TimeLimitExceeded, match="the work ran past 0.2 s"):
        with time_limit(0.2, "the work"):
            time.sleep(30)
    with time_limit(None, "the work"):  # no timer is set
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


# ---------------------------------------------------------------------------------------------
# one sweep per folder at a time

_HOLD = """
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "host": "node7", "started": "then"}).encode())
print("held", flush=True)
time.sleep(300)
"""


def test_a_second_sweep_into_a_folder_being_swept_is_one_line_naming_the_holder(trained, tmp_path, cli):
    from resbench.store import lock_path

    out = tmp_path / "out"
    out.mkdir()
    args = ("sweep", trained["conv"], "--test-res", "7", "--policy", "native", "--limit", 8, "--quiet", "-o", out)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(lock_path(out, (1, 1)))], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = cli(*args)
        assert_user_error(code, err, str(out), f"pid {holder.pid} on node7", "another sweep")
        assert not (out / "cells.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    # killed, the holder left its file naming a dead pid: stale, so the next sweep takes it over
    assert json.loads(lock_path(out, (1, 1)).read_text())["pid"] == holder.pid
    code, _, err = cli(*args)
    assert code == 0, err
    assert json.loads(lock_path(out, (1, 1)).read_text())["pid"] == os.getpid()
    assert len((out / "cells.jsonl").read_text().splitlines()) == 1


def test_shards_of_one_sweep_have_locks_of_their_own(tmp_path):
    from resbench.store import lock_path

    paths = {lock_path(tmp_path, shard) for shard in [(1, 1), (1, 3), (2, 3), (3, 3)]}
    assert len(paths) == 4 and all(p.parent == tmp_path and p.name.startswith(".") for p in paths)


def test_a_dry_run_takes_no_lock(trained, tmp_path, cli):
    code, _, err = cli("sweep", trained["conv"], "--test-res", "7", "--limit", 8, "--dry-run", "-o", tmp_path / "out")
    assert code == 0, err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# errors caused by a file's content name the file


def test_a_schedule_in_a_checkpoint_that_resbench_cannot_read_names_the_file(tmp_path, cli):
    ckpt = make_checkpoint()
    ckpt.provenance["schedule"] = [["abc", 1]]
    save_checkpoint(ckpt, tmp_path / "odd.pt")
    code, _, err = cli("sweep", tmp_path / "odd.pt", "--dataset", "synthetic", "--test-res", "14", "--limit", 8,
                       "-o", tmp_path / "out")
    assert_user_error(code, err, tmp_path / "odd.pt", "schedule", "abc")
    assert not (tmp_path / "out").exists()  # refused before any work


@pytest.fixture(scope="module")
def logged(trained, tmp_path_factory) -> Path:
    from conftest import quiet_sweep
    from resbench.sweep import SweepConfig

    out = tmp_path_factory.mktemp("logged")
    quiet_sweep(SweepConfig(checkpoints=[str(trained["conv"])], out=str(out), test_res=[(7, 7), (14, 14)],
                            policy=["native"], limit=10, threads=1))
    return out


@pytest.mark.parametrize("column, value", [("test_res", "0"), ("test_res", "7x0"), ("test_res", "8x14x14"),
                                           ("test_res", "99999999999999999999"), ("train_res", "5000")])
@pytest.mark.parametrize("command", ["sweep", "report"])
def test_a_log_row_with_a_size_it_cannot_have_names_the_file(trained, logged, tmp_path, cli, column, value, command):
    folder = tmp_path / "out"
    shutil.copytree(logged, folder)
    row = json.loads((folder / "cells.jsonl").read_text().splitlines()[0]) | {column: value}
    with open(folder / "cells.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    args = {"sweep": ["sweep", trained["conv"], "--test-res", "7,14", "--policy", "native", "--limit", 10, "--quiet",
                      "-o", folder],
            "report": ["report", folder, "-o", tmp_path / "r" / "x", "--format", "md"]}[command]
    code, _, err = cli(*args)
    assert_user_error(code, err, folder / "cells.jsonl", "line 3", f"{column}=\"{value}\"")
