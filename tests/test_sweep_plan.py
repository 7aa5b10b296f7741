"""A plan before the work: the first line of a sweep, --dry-run (writes nothing), the native cell run once."""

from pathlib import Path

import pandas as pd
import pytest

from resbench.report import native_as_resize_reference
from resbench.sweep import SweepConfig, plan, plan_cells
from resbench.sweep.planning import estimate_seconds, format_duration, plan_lines


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dry_run_writes_nothing_and_prints_the_plan(cli, ckpt_dir, tmp_path):
    out = tmp_path / "new" / "sweep"
    code, stdout, err = cli("sweep", ckpt_dir, "--test-res", "7,14,28", "--limit", 20, "--dry-run", "-o", out)
    assert code == 0, err
    assert not out.exists() and not out.parent.exists()
    first = err.strip().splitlines()[0]
    # s4nd_iso_14: 3 sizes x (native: on, off; resize-input: on, off, not at 14) = 10;
    # conv2d_iso_14: 3 native + 2 resize-input = 5
    assert "15 cells in this shard, 0 already done, 15 to run, estimated" in first
    assert "s4nd_iso_14 (trained at 14): 3 sizes 7,14,28 x native,resize-input x bandlimit on,off = 10 cells" in err
    assert "conv2d_iso_14 (trained at 14): 3 sizes 7,14,28 x native,resize-input x bandlimit none = 5 cells" in err
    # the grid's products (12 and 6) against the cells run, said, with the unit of the input
    assert "= 10 cells (2 of 12 combinations repeat another cell or do not apply)" in err
    assert "= 5 cells (1 of 6 combinations repeat another cell or do not apply)" in err
    assert err.count("test images each") == 2


def test_dry_run_leaves_a_sweep_folder_as_it_was_and_counts_its_done_cells(cli, ckpt_dir, tmp_path):
    out = tmp_path / "sweep"
    code, _, err = cli("sweep", ckpt_dir, "--test-res", "14", "--limit", 20, "--policy", "native", "--quiet",
                       "-o", out)
    assert code == 0, err
    before = tree(out)
    code, _, err = cli("sweep", ckpt_dir, "--test-res", "7,14", "--limit", 20, "--policy", "native", "--dry-run",
                       "-o", out)
    assert code == 0, err
    assert tree(out) == before
    assert "already done" in err and ", 3 already done, 3 to run" in err  # 14 and 7: on, off, none


def test_the_first_line_of_a_sweep_gives_cells_and_time(cli, ckpt_dir, tmp_path):
    code, _, err = cli("sweep", ckpt_dir, "--test-res", "14", "--limit", 10, "--policy", "native",
                       "-o", tmp_path / "s")
    assert code == 0, err
    first = err.strip().splitlines()[0]
    assert "sweep: 3 cells in this shard" in first and "estimated" in first


def test_resize_input_at_the_training_size_is_not_planned(trained, tmp_path):
    from resbench.checkpoints import load_checkpoint

    cfg = SweepConfig(checkpoints=[str(trained["conv"])], out=str(tmp_path), test_res=[(7, 7), (14, 14), (28, 28)])
    cells = plan_cells([load_checkpoint(trained["conv"])], cfg)
    assert {(c.test_res, c.policy) for c in cells} == {((7, 7), "native"), ((14, 14), "native"), ((28, 28), "native"),
                                                      ((7, 7), "resize-input"), ((28, 28), "resize-input")}


def test_the_estimate_is_images_times_pixels_times_the_measured_rate(trained, tmp_path, monkeypatch):
    from resbench.sweep import planning as sweep_plan

    cfg = SweepConfig(checkpoints=[str(trained["conv"])], out=str(tmp_path / "x"), test_res=[(7, 7), (14, 14)],
                      limit=10, dry_run=True)
    p = plan(cfg)
    assert len(plan_lines(p)) == 1 and not (tmp_path / "x").exists()
    rate = sweep_plan.model_seconds_per_pixel(p.models[0], p.ckpts[0], cfg)
    assert 0 < rate < 1  # seconds per pixel of one timed batch
    monkeypatch.setattr(sweep_plan, "model_seconds_per_pixel", lambda *a: 1e-6)
    # 7 native (the model at 7x7), 7 resize-input and 14 native (the model at 14x14), 10 images each
    assert estimate_seconds(p) == pytest.approx(10 * (49 + 196 + 196) * 1e-6)


@pytest.mark.parametrize("seconds,text", [(12, "12 s"), (270, "4.5 min"), (8280, "2.3 h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_the_report_reads_the_native_cell_as_the_resize_reference():
    row = {"checkpoint_sha256": "a", "checkpoint": "m", "train_res": "14", "bandlimit": "on", "seed": 0,
           "precision": "fp32", "limit": -1, "accuracy": 0.9}
    df = pd.DataFrame([row | {"test_res": "14", "policy": "native"},
                       row | {"test_res": "7", "policy": "native", "accuracy": 0.5},
                       row | {"test_res": "7", "policy": "resize-input", "accuracy": 0.7}])
    got = native_as_resize_reference(df)
    ref = got[(got["policy"] == "resize-input") & (got["test_res"] == "14")]
    assert len(got) == 4 and ref["accuracy"].tolist() == [0.9]
    assert len(native_as_resize_reference(got)) == 4  # an existing resize-input cell is not doubled
    native_only = df[df["policy"] == "native"]
    assert len(native_as_resize_reference(native_only)) == 2  # a sweep without resize-input gains none


def test_a_stand_in_cell_is_not_counted_as_evaluated():
    """The native cell at the training size stands for resize-input there; the scope counts it once."""
    from resbench.report.sections import scope_lines

    df = pd.DataFrame([{"checkpoint": "c", "checkpoint_sha256": "s", "model": "m", "dataset": "d", "dims": 2,
                        "train_res": "14", "test_res": t, "policy": p, "bandlimit": "none", "seed": 0,
                        "precision": "fp32", "limit": -1, "subset": "", "transform": "", "n": 100, "error": "",
                        "samples": ""}
                       for t, p in (("14", "native"), ("7", "native"), ("7", "resize-input"))])
    lines = scope_lines(native_as_resize_reference(df), [], [])
    assert any("cells: 3 evaluated" in line for line in lines), lines
