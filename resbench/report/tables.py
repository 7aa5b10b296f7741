"""The report's tables of accuracy and change: native accuracy, change from native, bandlimit ablations, flips,
calibration and top-5; each a frame with a column per test size, its note in attrs["note"] and, where it can be
empty, why in attrs["empty"]."""

from __future__ import annotations

import pandas as pd

from resbench.errors import ResbenchError
from resbench.report.load import SEEN_MARK, reference_setting, seen_in_training
from resbench.report.persample import ECE_BINS, Records, calibration_frame, flip_frame, has_records
from resbench.report.shape import by_size, checkpoint_rank, ci_text, marked, pivot_sizes, sort_rows
from resbench.report.stats import policy_table
from resbench.report.summary import change_interval
from resbench.report.trained_reference import TITLE as TRAINED_HERE_TITLE, trained_reference_table
from resbench.resolution import parse_size, size_key

__all__ = ["report_tables", "NO_NATIVE", "CHANGE_TITLE", "TRAINED_ABLATION_TITLE", "FLIP_TITLE", "ECE_TITLE",
           "TOP5_TITLE", "ADAPTIVE_NOTE", "SEEN_NOTE", "CAPPED_TITLE"]

NO_NATIVE = "no native cell"
TRAINED_ABLATION_TITLE = ("Bandlimit ablation, trained models: trained with it minus trained without it (points; "
                          "native policy)")
CHANGE_TITLE = "Change from native accuracy (points, negative = a loss; native policy)"
CHANGE_NOTE = ("change: accuracy at the test size in the row's bandlimit setting minus the native accuracy (at the "
               "training size, in the checkpoint's reference setting); negative: a loss.")
SEEN_NOTE = ("\u2020: the checkpoint trained at this size (an earlier stage of its schedule), so the cell is not "
             "zero-shot; such cells are left out of zero-shot comparisons.")
ADAPTIVE_NOTE = ("adaptive: S4ND's trained alpha scaled by min(1, test/train) per axis, CKConv's taps averaged over "
                 "each test pixel; it runs only below the training size (natively), since at and above it it is "
                 "the fixed setting.")
REMOVED_NOTE = ("Not an ablation of the bandlimit: these checkpoints trained with the mask, so the modes it masks "
                "never received a gradient and removing it at evaluation adds untrained modes. The trained "
                "ablation is the table above.")
TRAINED_ABLATION_NOTE = ("Pairs of checkpoints with the same model and recipe (schedule, epochs, overrides), one "
                         "trained with the bandlimit and evaluated with it on, one trained and evaluated without it.")
NO_TRAINED_PAIR = ("no checkpoint here has a twin of the same model and recipe trained without the bandlimit, so "
                   "the bandlimit's effect on training is not measured for these inputs")
FLIP_TITLE = "Prediction flips: images whose predicted class differs from the training size's (%; native policy)"
FLIP_NOTE = ("From the per-image records: the share of the same test images whose predicted class at this size differs "
             "from the checkpoint's prediction at its training size (its reference bandlimit setting). A flip can "
             "be right to wrong or wrong to right, so flips bound the accuracy change from above.")
ECE_TITLE = "Calibration: expected calibration error (%; native policy)"
ECE_NOTE = (f"ECE over {ECE_BINS} equal-width confidence bins (confidence: the predicted class's softmax probability); "
            "0 is perfectly calibrated. The reliability diagram shows the bins for a pair of checkpoints.")
CAPPED_TITLE = "Capped bandlimit below the training size: capped minus on (points; native policy)"
CAPPED_NOTE = ("capped: S4ND's cutoff at min(alpha, test/train) of the training grid's Nyquist per axis, so it never "
               "passes what the test grid cannot hold (docs/bandlimits.md); on: the trained alpha. Each cell: capped "
               "minus on at a size below training, in points, with its 95% interval (Newcombe; both cells score the "
               "same images, so the interval is conservative). At and above the training size the two rules are "
               "the same cell.")
TOP5_TITLE = "Top-5 accuracy (%) by test size (native policy; test sets of more than five classes)"


def _if_empty(table: pd.DataFrame, reason: str) -> pd.DataFrame:
    """`table` with the reason it has no rows, which every format prints as its one line (markup.no_rows)."""
    table.attrs["empty"] = reason
    return table


def _native_table(at_train: pd.DataFrame, rank: dict[str, int], lacking: list[str]) -> pd.DataFrame:
    native = at_train[["checkpoint", "model", "train_res", "acc", "ci_low", "ci_high", "n"]].copy()
    native["ci95"] = [ci_text(lo, hi) for lo, hi in zip(native.pop("ci_low"), native.pop("ci_high"))]
    native = sort_rows(native.rename(columns={"acc": "native accuracy (%)"}), rank)
    if lacking:
        native.attrs["note"] = (f"{NO_NATIVE} (the sweep did not test the training size with the native policy) "
                                f"for: {', '.join(lacking)}.")
    return _if_empty(native, native.attrs.get("note", NO_NATIVE).rstrip("."))


def _upsampling_note(frame: pd.DataFrame) -> str:
    """Say which test sizes exceed their dataset's native size: upsampled images hold no new detail. (A rendered
    set, synthetic fields or clips, is sampled anew at every size: none of its sizes is an upsampling.)"""
    from resbench import data

    parts = []
    for name, g in frame.groupby("dataset"):
        try:
            native = data.dataset_info(str(name)).native_size
            if data.is_rendered(str(name)):
                continue
        except ResbenchError:  # a dataset not installed here, or one without a fixed size
            continue
        if native is None:
            continue
        dims = len(native)
        above = sorted({t for t in g["test_res"] if any(a > b for a, b in zip(parse_size(t, dims), native))},
                       key=lambda t: size_key(t, dims))
        if above:
            parts.append(f"on {name}, test sizes {', '.join(above)} are upsamplings of its "
                         f"{native[0]}x{native[1]} originals (a finer grid, no new detail)")
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:] if parts else ""


def _seen_cells(frame: pd.DataFrame) -> pd.Series:
    """Cells marked SEEN_MARK: at a size the checkpoint trained at other than its final one."""
    return frame["seen"] & (frame["test_res"] != frame["train_res"])


def _change_table(native_pol: pd.DataFrame, at_train: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame:
    """Accuracy minus native accuracy (negative: a loss); a checkpoint with no native cell keeps its rows, blank,
    noted."""
    base = dict(zip(at_train["checkpoint"], at_train["acc"]))
    has_base = native_pol["checkpoint"].isin(base)
    change = native_pol[has_base].copy()
    # float64: mapping an empty str column gives a str column under some pandas 3 releases, and str - float raises
    change["change"] = (change["acc"] - change["checkpoint"].map(base).astype("float64")).round(2)
    seen = _seen_cells(change).any()
    if seen:
        change["change"] = marked(change["change"], change)
    index = ["checkpoint", "train_res", "bandlimit"]
    table = pivot_sizes(change, index, "change")
    if not has_base.all():
        lacking = native_pol.loc[~has_base, index].drop_duplicates().assign(note=NO_NATIVE)
        table = pd.concat([table.assign(note=""), lacking], ignore_index=True) if len(table) else lacking
    table = sort_rows(table, rank, ("bandlimit",))
    notes = [CHANGE_NOTE, *[note for note in (_upsampling_note(change),) if note]]
    if seen:
        notes.append(SEEN_NOTE)
    if (change["bandlimit"] == "adaptive").any():
        notes.append(ADAPTIVE_NOTE)
    table.attrs["note"] = " ".join(notes)
    return table


def _removed_table(native_pol: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame:
    """On minus off for checkpoints trained with the mask: removing it at evaluation, not an ablation."""
    s4 = native_pol[native_pol["bandlimit"].isin(["on", "off"])]
    on = s4[s4["bandlimit"] == "on"].set_index(["checkpoint", "train_res", "test_res"])["acc"]
    off = s4[s4["bandlimit"] == "off"].set_index(["checkpoint", "train_res", "test_res"])["acc"]
    ablation = (on - off).dropna().round(2).rename("on - off").reset_index()
    if not len(ablation):
        return _if_empty(ablation, "no checkpoint trained with the bandlimit was swept with it both on and off")
    table = sort_rows(pivot_sizes(ablation, ["checkpoint", "train_res"], "on - off"), rank)
    table.attrs["note"] = REMOVED_NOTE
    return table


def _trained_ablation_table(native_pol: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame:
    """Accuracy of a checkpoint trained with the bandlimit (on) minus its twin trained without it (off):
    the same model and recipe (schedule and overrides), the bandlimit the only difference."""
    trained = pd.to_numeric(native_pol["trained_bandlimit"], errors="coerce")
    keys = ["model", "recipe", "train_res", "test_res"]
    with_mask = native_pol[trained.notna() & (native_pol["bandlimit"] == "on")]
    without = native_pol[trained.isna() & (native_pol["bandlimit"] == "off")]
    both = with_mask.merge(without, on=keys, suffixes=("", " (without)"))
    both = both[both["recipe"] != ""]  # rows logged before recipes were recorded cannot be paired
    if not len(both):
        return _if_empty(pd.DataFrame(columns=["checkpoint", "trained without", "train_res"]), NO_TRAINED_PAIR)
    both["with - without"] = (both["acc"] - both["acc (without)"]).round(2)
    both = both.rename(columns={"checkpoint (without)": "trained without"})
    table = sort_rows(pivot_sizes(both, ["checkpoint", "trained without", "train_res"], "with - without"), rank)
    table.attrs["note"] = TRAINED_ABLATION_NOTE
    return table


def _adaptive_table(native_pol: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame | None:
    """Adaptive minus the fixed setting (on, or none for CKConv), at the sizes below training where it ran; None
    where no adaptive cell was swept (the setting is not among the defaults)."""
    keys = ["checkpoint", "train_res", "test_res"]
    adaptive = native_pol[native_pol["bandlimit"] == "adaptive"].set_index(keys)["acc"]
    if adaptive.empty:
        return None
    fixed = native_pol[reference_setting(native_pol)].set_index(keys)["acc"]
    gain = (adaptive - fixed).dropna().round(2).rename("adaptive - fixed").reset_index()
    if not len(gain):
        return _if_empty(gain, "no adaptive cell has a cell of the fixed setting beside it")
    table = sort_rows(pivot_sizes(gain, ["checkpoint", "train_res"], "adaptive - fixed"), rank)
    table.attrs["note"] = ADAPTIVE_NOTE
    return table


def _capped_table(native_pol: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame | None:
    """The capped rule's effect: capped minus on, with its 95% interval, at each size below training where both
    ran; None where no capped cell was swept."""
    keys = ["checkpoint", "train_res", "test_res"]
    capped = native_pol[native_pol["bandlimit"] == "capped"]
    if capped.empty:
        return None
    on = native_pol[native_pol["bandlimit"] == "on"]
    both = capped.merge(on, on=keys, suffixes=("", "_on"))
    if both.empty:
        return _if_empty(pd.DataFrame(columns=keys), "no capped cell has a cell with the bandlimit on beside it")
    both["capped - on"] = [_gain_text((r.accuracy, r.ci_low, r.ci_high), (r.accuracy_on, r.ci_low_on, r.ci_high_on))
                           for r in both.itertuples(index=False)]
    table = sort_rows(pivot_sizes(both, ["checkpoint", "train_res"], "capped - on").fillna(""), rank)
    table.attrs["note"] = CAPPED_NOTE
    return table


def _gain_text(a: tuple[float, float, float], b: tuple[float, float, float]) -> str:
    """a minus b in points with its 95% Newcombe interval, each given as (accuracy, Wilson low, Wilson high)."""
    low, high = change_interval(a, b)
    return f"{100 * (a[0] - b[0]):+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def _flip_table(ref: pd.DataFrame, rank: dict[str, int], records: Records) -> pd.DataFrame:
    flips = flip_frame(ref, records)
    if flips.empty:
        return pd.DataFrame()
    table = by_size(flips, "flips", rank)
    worst = flips.loc[~flips["seen"]].sort_values("flips").tail(1)
    table.attrs["note"] = FLIP_NOTE + (f" Largest zero-shot flip rate: {worst['checkpoint'].iloc[0]} at "
                                       f"{worst['test_res'].iloc[0]}: {worst['flips'].iloc[0]:.1f}% of the images "
                                       f"({worst['right_to_wrong'].iloc[0]:.1f}% right to wrong, "
                                       f"{worst['wrong_to_right'].iloc[0]:.1f}% wrong to right)."
                                       if len(worst) else "")
    return table


def _calibration_table(ref: pd.DataFrame, rank: dict[str, int], records: Records) -> pd.DataFrame:
    cal = calibration_frame(ref, records)
    if cal.empty:
        return pd.DataFrame()
    table = by_size(cal, "ece", rank)
    table.attrs["note"] = ECE_NOTE
    return table


def _top5_table(reference: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame:
    """Top-5 accuracy with its Wilson 95% interval, a column per test size; empty when no row has it."""
    if "top5_accuracy" not in reference:
        return pd.DataFrame()
    have = reference[reference["top5_accuracy"].notna()]
    if have.empty:
        return pd.DataFrame()
    seen = have["seen"] & (have["test_res"] != have["train_res"])  # as marked marks them
    text = [f"{100 * a:.2f}{SEEN_MARK if m else ''} [{100 * lo:.1f}, {100 * hi:.1f}]"
            for a, lo, hi, m in zip(have["top5_accuracy"], have["top5_ci_low"], have["top5_ci_high"], seen)]
    table = sort_rows(pivot_sizes(have.assign(value=text), ["checkpoint", "train_res"], "value"), rank)
    table.columns.name = None
    table.attrs["note"] = "Each cell: top-5 accuracy and its 95% Wilson interval."
    return table


def report_tables(df: pd.DataFrame, records: Records | None = None) -> dict[str, pd.DataFrame]:
    """The report's tables, in order: native accuracy, change from native, bandlimit ablation, policy comparison.

    A table's `attrs["note"]`, where set, is printed under it. With `records` (and rows that have per-image
    records), prediction flips and calibration are added and the policy comparison uses a paired test.
    """
    ok = df[df["error"] == ""].copy()
    ok["acc"] = (100 * ok["accuracy"]).round(2)
    ok["seen"] = seen_in_training(ok)
    for column in ("trained_bandlimit", "recipe"):  # rows logged before these columns existed
        if column not in ok:
            ok[column] = "" if column == "recipe" else float("nan")
    ok["recipe"] = ok["recipe"].fillna("").astype(str)
    rank = checkpoint_rank(ok)
    native_pol = ok[ok["policy"] == "native"]
    reference = native_pol[reference_setting(native_pol)]
    at_train = reference[reference["test_res"] == reference["train_res"]]
    lacking = sorted(set(ok["checkpoint"]) - set(at_train["checkpoint"]), key=rank.__getitem__)
    tables = {"Native accuracy (test size = train size, native policy)": _native_table(at_train, rank, lacking),
            CHANGE_TITLE: _change_table(native_pol, at_train, rank),
            TRAINED_ABLATION_TITLE: _trained_ablation_table(native_pol, rank),
            "Bandlimit removed at evaluation: trained mask on minus removed (points; native policy)":
                _removed_table(native_pol, rank),
            CAPPED_TITLE: _capped_table(native_pol, rank),
            "Adaptive bandlimit below the training size: adaptive minus fixed (points; native policy)":
                _adaptive_table(native_pol, rank),
            "Policy comparison: zero-shot (native) vs resize-input, accuracy (%)":
                _if_empty(policy_table(ok, rank, records), "no zero-shot cell was run with both policies"),
            TRAINED_HERE_TITLE: _if_empty(sort_rows(trained_reference_table(native_pol), rank, ("test_res",)),
                                       "no checkpoint was tested at a size that another checkpoint of its model, "
                                       "dataset and bandlimit arm trained at")}
    tables = {title: table for title, table in tables.items() if table is not None}  # settings not swept
    top5 = _top5_table(reference, rank)
    if not top5.empty:
        tables[TOP5_TITLE] = top5
    if records is not None and has_records(ok):
        tables[FLIP_TITLE] = _flip_table(reference, rank, records)
        tables[ECE_TITLE] = _calibration_table(reference, rank, records)
    return tables
