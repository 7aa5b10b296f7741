"""`make` sets up each interpreter it is given: a stamp left by one Python does not stand for another."""

import shutil
import subprocess
import sys

import pytest

from conftest import REPO


def dry_run(python, *flags) -> str:
    """What `make test PYTHON=python` would run (make -n prints the commands without running them)."""
    return subprocess.run(["make", "-n", *flags, "test", f"PYTHON={python}"], cwd=REPO, capture_output=True,
                          text=True, check=True, timeout=60).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_another_interpreter_gets_its_own_set_up(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    other = dry_run(tmp_path / "venv" / "bin" / "python")
    assert "pip install" in other and f"{tmp_path}/venv/bin/python -m pytest" in other
    # the two interpreters' stamps differ, so one's set-up never stands for the other's
    # (-B: as if nothing were set up, so both print the stamp they would touch)
    runs = [dry_run(tmp_path / "venv" / "bin" / "python", "-B"), dry_run(sys.executable, "-B")]
    stamps = {line.split()[-1] for run in runs for line in run.splitlines() if line.startswith("touch .setup-done")}
    assert len(stamps) == 2, stamps
