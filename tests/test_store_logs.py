"""Which logged row stands for a cell evaluated twice (two shards over one folder, or two sweeps)."""

import json
from pathlib import Path

import pytest

from resbench.store import read_rows


def _row(template: dict, **changes) -> dict:
    return {**template, **changes}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_cell_swept_twice_keeps_its_per_image_records(tmp_path, study_row):
    with_records = _row(study_row, samples="samples/a.parquet", correct=700, n=1000)
    without = _row(study_row, samples=None, correct=700, n=1000)
    _write(tmp_path / "cells-1of2.jsonl", [with_records])
    _write(tmp_path / "cells-2of2.jsonl", [without])
    (row,) = read_rows(tmp_path)
    assert row["samples"] == "samples/a.parquet"


def test_records_of_a_run_that_counted_differently_are_not_borrowed(tmp_path, study_row):
    _write(tmp_path / "cells-1of2.jsonl", [_row(study_row, samples="samples/a.parquet", correct=700, n=1000)])
    _write(tmp_path / "cells-2of2.jsonl", [_row(study_row, samples=None, correct=701, n=1000)])
    (row,) = read_rows(tmp_path)
    assert not row["samples"] and row["correct"] == 701  # the last success wins, without records not its own


def test_a_later_failure_does_not_replace_a_success(tmp_path, study_row):
    _write(tmp_path / "cells.jsonl", [_row(study_row, samples="samples/a.parquet", correct=700, n=1000),
                                      _row(study_row, samples=None, error="boom", correct=0, n=0)])
    (row,) = read_rows(tmp_path)
    assert row["correct"] == 700 and not row.get("error")


@pytest.fixture
def study_row():
    """A real cell row of the committed study (its first logged line)."""
    log = Path(__file__).resolve().parents[1] / "reports" / "study-results" / "cells-1of2.jsonl"
    return json.loads(log.read_text().split("\n", 1)[0])
