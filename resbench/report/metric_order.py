"""The report's check of the aliasing metric: within each checkpoint, does it order the test sizes by their drop
better than the distance in size does? (resbench.metric_validation: within-group rho, bootstrap over checkpoints.)
A verdict sentence made from the numbers heads the table's note."""

from __future__ import annotations

import pandas as pd

from resbench.metric_validation import compare_predictors, trivial_predictors

__all__ = ["ORDER_TITLE", "METRICS", "MIN_CHECKPOINTS", "metric_order_table", "metric_verdict"]

ORDER_TITLE = "Does the aliasing metric order the test sizes by their drop better than the distance in size?"
METRICS = ("aliasing", "above_test_nyquist")  # per cell, from the checkpoints' continuous kernels
TRIVIAL = {"log_ratio": "|log(test/train)|", "side_then_distance": "side, then distance"}
SIZES = {"all": "all zero-shot", "below": "below training", "above": "above training"}
MIN_CHECKPOINTS = 3  # a bootstrap over fewer checkpoints has no interval worth the name
DRAWS = 2000
RHO, DIFF = "rho [95% CI]", "minus {} [95% CI]"
ORDER_NOTE = (
    "rho: Spearman's rank correlation between a predictor and the drop from native accuracy over the zero-shot test "
    "sizes of one group (a checkpoint with continuous kernels in one bandlimit setting, native policy; sizes seen in "
    "training left out; groups of 3 or more sizes whose drops differ; a predictor constant over a group counts as "
    "0), averaged over the groups; 95% interval from {draws} bootstrap draws of checkpoints with all their groups. "
    "minus: the paired per-group difference from a trivial predictor, same bootstrap. Trivial predictors: "
    "|log(test/train)| (the distance in size) and side, then distance (every size below training ranked above every "
    "size above it, then by distance; below or above training alone it orders as the distance does). aliasing: "
    "kernel energy above the Nyquist of the coarser of the test and training grids; above_test_nyquist: above the "
    "test grid's alone (mean over layers, axes and directions). A metric pooled over checkpoints can correlate "
    "with the drops through which checkpoint it is, so only the order within a group counts here.")


def _ci(mean: float, low: float, high: float, signed: bool = False) -> str:
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"{f.format(mean)} [{f.format(low)}, {f.format(high)}]"


def _subset_rows(cells: pd.DataFrame, where: str, draws: int, seed: int) -> pd.DataFrame:
    """compare_predictors against each trivial predictor (the side matters only over all sizes), merged: one row
    per predictor with its rho and its differences from the trivial ones."""
    trivials = list(TRIVIAL) if where == "all" else ["log_ratio"]
    parts = [compare_predictors(cells, list(METRICS), t, where, draws, seed) for t in trivials]
    rows = parts[0].set_index("predictor")
    if len(parts) > 1:
        side = parts[1].set_index("predictor")
        rows.loc["side_then_distance"] = side.loc["side_then_distance"]
        for m in METRICS:
            for k in ("diff", "diff_low", "diff_high"):
                rows.loc[m, f"side_{k}"] = side.loc[m, k]
    return rows.loc[[*trivials, *METRICS]].reset_index()  # the trivial predictors first


def _table_row(r: pd.Series) -> dict:
    row = {"sizes": SIZES[r["sizes"]], "predictor": TRIVIAL.get(r["predictor"], r["predictor"]),
           "groups": int(r["groups"]), "checkpoints": int(r["checkpoints"]),
           RHO: _ci(r["rho"], r["rho_low"], r["rho_high"])}
    for t, prefix in (("log_ratio", ""), ("side_then_distance", "side_")):
        d = r.get(f"{prefix}diff")
        row[DIFF.format(TRIVIAL[t])] = "" if d is None or pd.isna(d) else _ci(
            d, r[f"{prefix}diff_low"], r[f"{prefix}diff_high"], signed=True)
    return row


def _checkpoints(cells: pd.DataFrame, where: str) -> int:
    """Checkpoints with a usable group (3 or more sizes whose drops differ) among `cells` at the sizes `where`."""
    return int(compare_predictors(cells, [], "log_ratio", where, draws=1)["checkpoints"].iloc[0])


def _clause(diff: float, low: float, high: float, trivial: str, what: str = "the test sizes") -> str:
    """Better only where the interval of the difference excludes 0 in the metric's favour."""
    text = f"(difference {_ci(diff, low, high, signed=True)})"
    if low > 0:
        return f"orders {what} better than {trivial} {text}"
    worse = ": worse" if high < 0 else ""
    return f"does not order {what} better than {trivial}{worse} {text}"


def metric_verdict(rows: pd.DataFrame) -> str:
    """The verdict in plain sentences from `rows` (_subset_rows over all zero-shot sizes): per metric, against
    each trivial predictor; then whether any metric beats both."""
    by = rows.set_index("predictor")
    sentences, winners = [], []
    for m in METRICS:
        r = by.loc[m]
        lows = [r["diff_low"], r["side_diff_low"]]
        clauses = [_clause(r[f"{p}diff"], r[f"{p}diff_low"], r[f"{p}diff_high"], TRIVIAL[t], what)
                   for t, p, what in (("log_ratio", "", "the test sizes"), ("side_then_distance", "side_", "them"))]
        sentences.append(f"{m} {clauses[0]}, and {clauses[1]}.")
        if min(lows) > 0:
            winners.append(m)
    plain = (f"{' and '.join(winners)} orders the test sizes better than both trivial predictors." if winners else
             "No kernel metric here orders the test sizes better than both trivial predictors.")
    return f"Verdict over all zero-shot sizes: {' '.join(sentences)} {plain}"


def metric_order_table(cells: pd.DataFrame, draws: int = DRAWS, seed: int = 0) -> pd.DataFrame:
    """One row per (sizes, predictor): groups, checkpoints, mean within-group rho and the differences of each
    metric from the trivial predictors, each with its 95% interval; the verdict heads attrs["note"]. `cells`: one
    row per native zero-shot cell (checkpoint, bandlimit, dims, train_res, test_res, drop and the METRICS). Sizes
    whose usable groups come from fewer than MIN_CHECKPOINTS checkpoints are left out (said in the note); with
    none over all sizes the table is empty, why in attrs["empty"]."""
    cells = trivial_predictors(cells)
    counts = {"all": _checkpoints(cells, "all") if len(cells) else 0}
    if counts["all"] < MIN_CHECKPOINTS:
        table = pd.DataFrame(columns=["sizes", "predictor", "groups", "checkpoints", RHO])
        table.attrs["empty"] = (f"no verdict: {counts['all']} checkpoint(s) have a group of 3 or more zero-shot "
                                f"sizes whose drops differ; the bootstrap over checkpoints needs {MIN_CHECKPOINTS}")
        return table
    counts.update({where: _checkpoints(cells, where) for where in SIZES if where != "all"})
    parts = {w: _subset_rows(cells, w, draws, seed) for w in SIZES if counts[w] >= MIN_CHECKPOINTS}
    table = pd.DataFrame([_table_row(r) for part in parts.values() for _, r in part.iterrows()])
    short = [f"{SIZES[w]} sizes ({n})" for w, n in counts.items() if n < MIN_CHECKPOINTS]
    left_out = (f" Left out, fewer than {MIN_CHECKPOINTS} checkpoints with such a group: {'; '.join(short)}."
                if short else "")
    table.attrs["note"] = f"{metric_verdict(parts['all'])} {ORDER_NOTE.format(draws=draws)}{left_out}"
    return table
