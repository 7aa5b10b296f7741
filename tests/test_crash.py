"""An internal error (a bug) is one line naming the command and the step, plus a crash file; bad input stays exit 2."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, assert_user_error


def _broken_report_tables(df, records=None):
    raise TypeError("operation 'rsub' not supported")


@pytest.fixture
def broken_report(monkeypatch, tmp_path):
    """A report whose table step has a bug; crash files go to tmp_path/crashes."""
    import resbench.report.write

    monkeypatch.setattr(resbench.report.write, "report_tables", _broken_report_tables)
    monkeypatch.setenv("RESBENCH_CRASH_DIR", str(tmp_path / "crashes"))
    return tmp_path / "crashes"


@pytest.fixture(scope="module")
def swept(trained, tmp_path_factory):
    """A small finished sweep folder of the tiny conv checkpoint."""
    from resbench.sweep import SweepConfig
    from conftest import quiet_sweep

    out = tmp_path_factory.mktemp("sweep")
    quiet_sweep(SweepConfig(checkpoints=[str(trained["conv"])], out=str(out), test_res=[(14, 14)],
                            policy=["native"], dataset="synthetic", limit=16))
    return out


def test_internal_error_is_one_line_with_a_crash_file(cli, broken_report, swept, tmp_path):
    code, out, err = cli("report", swept, "-o", tmp_path / "rep" / "x")
    assert code == 1
    lines = [line for line in err.splitlines() if not re.match(r"\[\d\d:\d\d:\d\d\] report: ", line)]
    assert len(lines) == 1 and "Traceback" not in err, err  # after the step lines, the error in one line
    assert lines[0].startswith("resbench: internal error in `report`"), err
    assert "resbench.report.write._kind_tables (write.py:" in lines[0] and "TypeError" in lines[0], err  # the step
    crashes = list(broken_report.glob("crash-report-*.txt"))
    assert len(crashes) == 1 and str(crashes[0]) in lines[0]
    text = crashes[0].read_text()
    assert "Traceback" in text and "rsub" in text and "resbench report" in text


def test_debug_prints_the_traceback_instead(broken_report, swept, tmp_path):
    from resbench.cli import main

    with pytest.raises(TypeError, match="rsub"):  # in-process: the error itself goes on, so Python prints it
        main(["--debug", "report", str(swept), "-o", str(tmp_path / "rep" / "x")])
    assert not broken_report.exists() or not list(broken_report.iterdir())


def test_bug_in_a_real_process_prints_one_line_on_stderr(tmp_path):
    code = ("import sys, resbench.cli, resbench.report as r\n"
            "def broken(*a, **k): raise KeyError('planned_cells')\n"
            "r.write_report = broken\n"
            "resbench.cli.main(sys.argv[1:])\n")
    proc = subprocess.run([sys.executable, "-c", code, "report", str(tmp_path), "-o", str(tmp_path / "r" / "x")],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RESBENCH_CRASH_DIR": str(tmp_path / "crashes")})
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "internal error in `report`" in proc.stderr and "KeyError" in proc.stderr
    assert len(list((tmp_path / "crashes").glob("crash-report-*.txt"))) == 1


def test_bad_input_keeps_its_one_line_and_exit_2(cli, tmp_path):
    code, _, err = cli("report", tmp_path / "nowhere", "-o", tmp_path / "rep" / "x")
    assert_user_error(code, err, "nowhere")
