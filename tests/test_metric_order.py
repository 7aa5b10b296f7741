"""The report's aliasing-metric section: within-checkpoint rho against the trivial predictors, and its verdict."""

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from resbench.metric_validation import trivial_predictors
from resbench.report.markdown import markdown_table
from resbench.report.metric_order import DIFF, RHO, TRIVIAL, metric_order_table
from resbench.report.sections import Report, table_section

SIZES = ["7", "10", "21", "28", "42", "56"]  # training at 14: two sizes below it, four above


def _cells(n_checkpoints: int, drop, metric, sizes=SIZES) -> pd.DataFrame:
    """One group per checkpoint (bandlimit on, trained at 14): drop(c, i) and metric(c, i) at the i-th size."""
    rows = [{"checkpoint": f"c{c}", "bandlimit": "on", "dims": 2, "train_res": "14", "test_res": s,
             "drop": float(drop(c, i)), "aliasing": float(metric(c, i)), "above_test_nyquist": float(-i)}
            for c in range(n_checkpoints) for i, s in enumerate(sizes)]
    return pd.DataFrame(rows)


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+", text)]


def _row(table: pd.DataFrame, sizes: str, predictor: str) -> pd.Series:
    return table.set_index(["sizes", "predictor"]).loc[(sizes, predictor)]


def _direct_rho(cells: pd.DataFrame, column: str) -> float:
    """Mean over checkpoints of Spearman's rho with the drop, 0 where the column is constant in a checkpoint."""
    cells = trivial_predictors(cells)
    return float(np.mean([spearmanr(g[column], g["drop"])[0] if g[column].nunique() > 1 else 0.0
                          for _, g in cells.groupby("checkpoint")]))


def _random_drops(seed: int):
    rng = np.random.default_rng(seed)
    table = rng.permuted(np.tile(np.arange(len(SIZES), dtype=float), (8, 1)), axis=1)  # a random order per checkpoint
    return lambda c, i: table[c % 8, i] + 10 * c


def test_a_metric_in_the_trivial_order_is_not_better_and_differs_by_zero():
    drops = _random_drops(0)
    cells = _cells(6, drops, lambda c, i: abs(np.log(float(SIZES[i]) / 14)))
    table = metric_order_table(cells, draws=500)
    row = _row(table, "all zero-shot", "aliasing")
    assert _numbers(row[RHO])[0] == pytest.approx(_direct_rho(cells, "log_ratio"), abs=0.006)
    assert _numbers(row[DIFF.format(TRIVIAL["log_ratio"])]) == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert (row["groups"], row["checkpoints"]) == (6, 6)
    note = table.attrs["note"]
    assert note.startswith("Verdict")
    assert "aliasing does not order the test sizes better than |log(test/train)| (difference +0.00" in note
    assert "No kernel metric here orders the test sizes better than both trivial predictors." in note


def test_a_metric_constant_per_checkpoint_correlates_pooled_but_orders_nothing_within():
    drops = _random_drops(1)
    cells = _cells(6, drops, lambda c, i: float(c))  # which checkpoint, not which size
    assert cells["aliasing"].corr(cells["drop"], method="spearman") > 0.8  # pooled: looks like a good metric
    table = metric_order_table(cells, draws=500)
    row = _row(table, "all zero-shot", "aliasing")
    assert _numbers(row[RHO]) == [0.0, 0.0, 0.0]
    trivial = _direct_rho(cells, "log_ratio")
    assert _numbers(row[DIFF.format(TRIVIAL["log_ratio"])])[0] == pytest.approx(-trivial, abs=0.006)
    assert "aliasing does not order the test sizes better than |log(test/train)|" in table.attrs["note"]
    assert "aliasing orders" not in table.attrs["note"]


def test_a_metric_that_orders_the_sizes_where_the_distance_does_not_is_better():
    drops = _random_drops(2)
    cells = _cells(8, drops, drops)  # the metric is the drop itself: rho 1 in every group
    table = metric_order_table(cells, draws=500)
    row = _row(table, "all zero-shot", "aliasing")
    assert _numbers(row[RHO]) == pytest.approx([1.0, 1.0, 1.0])
    for trivial, label in TRIVIAL.items():
        diff, low, high = _numbers(row[DIFF.format(label)])
        assert diff == pytest.approx(1.0 - _direct_rho(cells, trivial), abs=0.006)
        assert low > 0
    note = table.attrs["note"]
    assert "aliasing orders the test sizes better than |log(test/train)|" in note
    assert "and orders them better than side, then distance" in note
    assert "aliasing orders the test sizes better than both trivial predictors." in note


def test_each_side_of_the_training_size_is_its_own_rows_and_the_side_rule_only_over_all_sizes():
    cells = _cells(4, _random_drops(3), lambda c, i: float(i))
    table = metric_order_table(cells, draws=200)
    assert list(dict.fromkeys(table["sizes"])) == ["all zero-shot", "above training"]  # 2 sizes below: no group
    assert set(table[table["sizes"] == "above training"]["predictor"]) == {"|log(test/train)|", "aliasing",
                                                                           "above_test_nyquist"}
    assert "Left out, fewer than 3 checkpoints with such a group: below training sizes (0)." in table.attrs["note"]


@pytest.mark.parametrize("n, sizes", [(2, SIZES), (5, ["7", "28"])])
def test_too_few_checkpoints_or_sizes_is_one_line_saying_why_there_is_no_verdict(n, sizes):
    table = metric_order_table(_cells(n, lambda c, i: i + c, lambda c, i: i, sizes), draws=100)
    assert table.empty
    line = markdown_table(table)
    assert line.count("\n") == 1 and "no verdict" in line
    assert f"{n if sizes == SIZES else 0} checkpoint(s)" in line


def test_the_verdict_reaches_every_format(tmp_path):
    from pypdf import PdfReader

    from resbench.report.html import write_html
    from resbench.report.markdown import write_markdown
    from resbench.report.pdf import write_pdf
    from resbench.report.tex import write_tex

    drops = _random_drops(4)
    table = metric_order_table(_cells(6, drops, drops), draws=200)
    report = Report("demo", [table_section("Does the aliasing metric order the test sizes?", table)])
    out = tmp_path / "demo"
    write_markdown(out, report), write_html(out, report), write_tex(out, report), write_pdf(out, report)
    said = "aliasing orders the test sizes better than"
    for suffix in (".md", ".html", ".tex"):
        assert said in out.with_suffix(suffix).read_text()
    pdf = " ".join(page.extract_text() for page in PdfReader(out.with_suffix(".pdf")).pages)
    assert said in " ".join(pdf.split())
