"""Markdown + PDF report of one or more sweeps: figures and tables derived from the results frame only."""

from __future__ import annotations

import io
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from resbench.device import resolve_device
from resbench.errors import ResbenchError
from resbench.pdf import pdf_bytes, text_pages
from resbench.persample import (ECE_BINS, Records, calibration_frame, ece, flip_frame, has_records, holm,
                                paired_policy, reliability_bins)
from resbench.plots import (SEEN_MARK, accuracy_vs_alpha, accuracy_vs_test_res, alpha_cells, aliasing_figure,
                            clip_axes_figure, clip_heatmaps, kernel_figure, reference_setting, reliability_diagram, seen_in_training, side,
                            train_test_heatmaps)
from resbench.resolution import (KINDS, default_test_sizes, fit_sizes, format_size, parse_size, size_key,
                                 sort_sizes)
from resbench.store import (atomic_write_bytes, csv_bytes, current_files, read_results, read_runs, split_current,
                            writable_folder)
from resbench.trained_reference import TITLE as TRAINED_HERE_TITLE, trained_reference_table

__all__ = ["FORMATS", "load_sweeps", "report_tables", "missing_cells", "write_report", "parse_formats",
           "aliasing_drop_cells", "aliasing_rank_table",
           "markdown_table", "kernel_analysis", "write_kernel_plots", "save_figure", "header_pages", "subset_note"]

FORMATS = ("md", "pdf", "png", "svg", "tex", "html")
MAX_LISTED_MISSING = 40  # missing cells named on the header pages (the markdown names all)
NO_NATIVE = "no native cell"
WINNER_RULE = ("winner: named only where the two cells' 95% Wilson intervals do not overlap, else a tie. This is "
               "a conservative unpaired rule; a paired test on per-image predictions would be sharper.")
POLICY_NOTE = ("Cells at a size the checkpoint trained at are left out. Above the training size resize-input "
               "hands the model (nearly) the image it was trained on, so it is the reference a zero-shot result is "
               "measured against, not a rival (winner: '(reference)'); the comparison is informative below the "
               "training size, where both policies see the same low-resolution image. only native / only resize: "
               "images only that policy classified right.")
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
NO_TRAINED_PAIR_NOTE = ("No pair: no checkpoint here has a twin of the same model and recipe trained without the "
                        "bandlimit, so the bandlimit's effect on training is not measured for these inputs.")

SUBSET_MARK = "\u00a7"  # section sign: the cells of this line used a subset of the test images
PAIRED_RULE = ("winner: where both cells have per-image records (sweep --log-samples), an exact McNemar test on "
               "the images only one policy classified right, Holm-adjusted over the rows tested; a winner only at "
               "adjusted p < 0.05, else a tie. Rows without records keep the unpaired rule (95% Wilson intervals "
               "do not overlap).")
FLIP_TITLE = "Prediction flips: images whose predicted class differs from the training size's (%; native policy)"
FLIP_NOTE = ("From the per-image records: the share of the same test images whose predicted class at this size differs "
             "from the checkpoint's prediction at its training size (its reference bandlimit setting). A flip can "
             "be right to wrong or wrong to right, so flips bound the accuracy change from above.")
ECE_TITLE = "Calibration: expected calibration error (%; native policy)"
ECE_NOTE = (f"ECE over {ECE_BINS} equal-width confidence bins (confidence: the predicted class's softmax probability); "
            "0 is perfectly calibrated. The reliability diagram shows the bins for a pair of checkpoints.")
NO_RECORDS_NOTE = ("This sweep has no per-image records (run it with sweep --log-samples): prediction flips, "
                   "calibration and paired policy tests are left out.")
ALIASING_TITLE = ("Kernel aliasing (fraction of spectral energy above the Nyquist of the coarser of the test and "
                  "training grids)")


def parse_formats(text: str) -> list[str]:
    items = [t.strip().lower() for t in str(text).split(",")]
    bad = [t for t in items if t not in FORMATS]
    if not text or bad:
        raise ResbenchError(f"--format {text!r}: expected a comma list of {', '.join(FORMATS)}")
    return items


def load_sweeps(dirs) -> tuple[pd.DataFrame, list[dict]]:
    """Results frame of several sweep folders (concatenated, current checkpoint files only) and their run records.

    Each folder keeps every row it ever computed; the newest run naming a checkpoint decides which
    file that name means now, across all the folders given (store.current_files).
    """
    frames, runs = [], []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise ResbenchError(f"{d}: not a sweep folder (expected a folder with results.csv)")
        frames.append(read_results(d).assign(sweep_dir=str(d)))  # where each row's per-image records are
        runs.extend(read_runs(d))
    df = pd.concat(frames, ignore_index=True)
    df["error"] = df["error"].fillna("").astype(str)
    df = df.drop_duplicates(subset=["checkpoint_sha256", "test_res", "policy", "bandlimit", "seed", "precision",
                                    "limit", "subset", "transform"], keep="last")
    df = split_current(df, current_files(runs))[0]
    df = native_as_resize_reference(df)
    df["file_checkpoint"] = df["checkpoint"]  # the name the run records use (planned cells)
    # a checkpoint evaluated in bf16 or fp16 is its own line in every table and plot, never mixed with fp32;
    # so are a checkpoint's subset cells where the folders also hold full ones (their size in the name)
    low = df["precision"].fillna("fp32") != "fp32"
    df.loc[low, "checkpoint"] = df.loc[low, "checkpoint"] + " [" + df.loc[low, "precision"] + "]"
    part = df["limit"].fillna(-1).astype(int) != -1
    both = part & df["checkpoint_sha256"].isin(set(df.loc[~part, "checkpoint_sha256"]))
    df.loc[both, "checkpoint"] = [c + subset_label(n) for c, n in zip(df.loc[both, "checkpoint"], df.loc[both, "n"])]
    if df.empty:
        raise ResbenchError(f"{', '.join(map(str, dirs))}: the sweep holds no results")
    return df.reset_index(drop=True), runs


def native_as_resize_reference(df: pd.DataFrame) -> pd.DataFrame:
    """The sweep runs resize-input at the training size as the native cell (the resize is the identity): where a
    checkpoint has resize-input cells but none at its training size, its native rows there stand for them."""
    cell = [c for c in ("checkpoint_sha256", "test_res", "bandlimit", "seed", "precision", "limit", "subset",
                        "transform") if c in df]
    resize = df[df["policy"] == "resize-input"]
    at_train = df[(df["policy"] == "native") & (df["test_res"] == df["train_res"])
                  & df["checkpoint_sha256"].isin(set(resize["checkpoint_sha256"]))]
    have = set(map(tuple, resize[cell].astype(str).values.tolist()))
    copies = at_train[[tuple(k) not in have for k in at_train[cell].astype(str).values.tolist()]]
    if copies.empty:
        return df
    return pd.concat([df, copies.assign(policy="resize-input")], ignore_index=True)


def subset_label(n: int) -> str:
    """What a checkpoint's name carries in a report when some of its cells used only the first n test images
    and others the whole split (a report of subset cells alone marks every title instead: subset_mark)."""
    return f" [{SUBSET_MARK}subset {int(n)}]"


def subset_mark(df: pd.DataFrame) -> str:
    """'' when every evaluated cell used its whole test split, else the mark every title of the report gets."""
    ok = df[df["error"] == ""]
    if "limit" not in ok or not (ok["limit"].fillna(-1).astype(int) != -1).any():
        return ""
    subset = ok[ok["limit"].fillna(-1).astype(int) != -1]
    sizes = sorted({int(n) for n in subset["n"]})
    kinds = {KINDS.get(int(d), "inputs") for d in subset["dims"]} if "dims" in subset else {"images"}
    what = kinds.pop() if len(kinds) == 1 else "inputs"
    return f"[{SUBSET_MARK}SUBSET: {', '.join(map(str, sizes))} {what} per cell]"


def missing_cells(df: pd.DataFrame, runs: list[dict]) -> list[str]:
    """Cells the sweeps' runs planned (their records' planned_cells) that have no successful row."""
    names = df["file_checkpoint"] if "file_checkpoint" in df else df["checkpoint"]
    done = {(name, r.test_res, r.policy, r.bandlimit) for name, r in zip(names, df.itertuples())
            if r.error == ""}
    planned = {tuple(c) for m in runs for c in m.get("planned_cells", [])}
    cells = sorted(planned - done, key=lambda c: (c[0], size_key(c[1]), *c[2:]))  # sizes by pixels, not as text
    return [" / ".join(c) for c in cells]


def _pivot(frame: pd.DataFrame, index: list[str], values: str) -> pd.DataFrame:
    table = frame.pivot_table(index=index, columns="test_res", values=values, aggfunc="first")
    return table[sort_sizes(table.columns)].reset_index()


def _checkpoint_rank(frame: pd.DataFrame) -> dict[str, int]:
    """Position of each checkpoint in every table: by model, then training size (by pixels), then name."""
    firsts = frame.drop_duplicates("checkpoint")
    names = sorted(firsts.itertuples(index=False), key=lambda r: (r.model, size_key(r.train_res), r.checkpoint))
    return {r.checkpoint: i for i, r in enumerate(names)}


def _sort_rows(table: pd.DataFrame, rank: dict[str, int], then: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows in checkpoint `rank` order, then by the columns `then` (test_res by pixels, not as text)."""
    columns = [table[c].map(size_key) if c == "test_res" else table[c] for c in then]
    keys = list(zip(table["checkpoint"].map(rank), *columns))
    return table.iloc[sorted(range(len(table)), key=keys.__getitem__)].reset_index(drop=True)


def _ci_text(low, high) -> str:
    return f"{100 * low:.1f}-{100 * high:.1f}"


def _native_table(at_train: pd.DataFrame, rank: dict[str, int], lacking: list[str]) -> pd.DataFrame:
    native = at_train[["checkpoint", "model", "train_res", "acc", "ci_low", "ci_high", "n"]].copy()
    native["ci95"] = [_ci_text(lo, hi) for lo, hi in zip(native.pop("ci_low"), native.pop("ci_high"))]
    native = _sort_rows(native.rename(columns={"acc": "native accuracy (%)"}), rank)
    if lacking:
        native.attrs["note"] = (f"{NO_NATIVE} (the sweep did not test the training size with the native policy) "
                                f"for: {', '.join(lacking)}.")
    return native


def _marked(values: pd.Series, frame: pd.DataFrame) -> pd.Series:
    """Values of cells at a size the checkpoint trained at (other than its final size) get SEEN_MARK."""
    seen = frame["seen"] & (frame["test_res"] != frame["train_res"])
    return pd.Series([f"{v:.2f}{SEEN_MARK}" if s and pd.notna(v) else v for v, s in zip(values, seen)],
                     index=values.index, dtype=object)


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


def _drop_table(native_pol: pd.DataFrame, at_train: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame:
    """Accuracy minus native accuracy; a checkpoint with no native cell keeps its rows, blank, noted."""
    base = dict(zip(at_train["checkpoint"], at_train["acc"]))
    has_base = native_pol["checkpoint"].isin(base)
    drop = native_pol[has_base].copy()
    # float64: mapping an empty str column gives a str column under some pandas 3 releases, and str - float raises
    drop["drop"] = (drop["acc"] - drop["checkpoint"].map(base).astype("float64")).round(2)
    if drop["seen"].any():
        drop["drop"] = _marked(drop["drop"], drop)
    index = ["checkpoint", "train_res", "bandlimit"]
    table = _pivot(drop, index, "drop")
    if not has_base.all():
        lacking = native_pol.loc[~has_base, index].drop_duplicates().assign(note=NO_NATIVE)
        table = pd.concat([table.assign(note=""), lacking], ignore_index=True) if len(table) else lacking
    table = _sort_rows(table, rank, ("bandlimit",))
    notes = [note for note in (_upsampling_note(drop),) if note]
    if drop["seen"].any():
        notes.append(SEEN_NOTE)
    if (drop["bandlimit"] == "adaptive").any():
        notes.append(ADAPTIVE_NOTE)
    if notes:
        table.attrs["note"] = " ".join(notes)
    return table


def _removed_table(native_pol: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame:
    """On minus off for checkpoints trained with the mask: removing it at evaluation, not an ablation."""
    s4 = native_pol[native_pol["bandlimit"].isin(["on", "off"])]
    on = s4[s4["bandlimit"] == "on"].set_index(["checkpoint", "train_res", "test_res"])["acc"]
    off = s4[s4["bandlimit"] == "off"].set_index(["checkpoint", "train_res", "test_res"])["acc"]
    ablation = (on - off).dropna().round(2).rename("on - off").reset_index()
    if not len(ablation):
        return ablation
    table = _sort_rows(_pivot(ablation, ["checkpoint", "train_res"], "on - off"), rank)
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
        table = pd.DataFrame(columns=["checkpoint", "trained without", "train_res"])
        table.attrs["note"] = NO_TRAINED_PAIR_NOTE
        return table
    both["with - without"] = (both["acc"] - both["acc (without)"]).round(2)
    both = both.rename(columns={"checkpoint (without)": "trained without"})
    table = _sort_rows(_pivot(both, ["checkpoint", "trained without", "train_res"], "with - without"), rank)
    table.attrs["note"] = TRAINED_ABLATION_NOTE
    return table


def _adaptive_table(native_pol: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame:
    """Adaptive minus the fixed setting (on, or none for CKConv), at the sizes below training where it ran."""
    keys = ["checkpoint", "train_res", "test_res"]
    adaptive = native_pol[native_pol["bandlimit"] == "adaptive"].set_index(keys)["acc"]
    fixed = native_pol[reference_setting(native_pol)].set_index(keys)["acc"]
    gain = (adaptive - fixed).dropna().round(2).rename("adaptive - fixed").reset_index()
    if not len(gain):
        return gain
    table = _sort_rows(_pivot(gain, ["checkpoint", "train_res"], "adaptive - fixed"), rank)
    table.attrs["note"] = ADAPTIVE_NOTE
    return table


def _winner(native: tuple[float, float], resize: tuple[float, float]) -> str:
    """WINNER_RULE on two (ci_low, ci_high) intervals; NaN bounds compare False, so they give a tie."""
    if native[0] > resize[1]:
        return "native (zero-shot)"
    if resize[0] > native[1]:
        return "resize-input"
    return "tie (95% CIs overlap)"


def _paired_columns(pol: pd.DataFrame, ref_bl: pd.DataFrame, records: Records) -> pd.DataFrame:
    """The paired test of each informative row (below the training size) whose two cells have per-image records:
    images only native / only resize-input got right, the exact McNemar p, Holm's adjustment over the rows
    tested, and the winner it supports (a tie unless the adjusted p is below 0.05)."""
    cells = {(r.checkpoint, r.test_res, r.policy): r for r in ref_bl.itertuples()}
    tests = {}
    for i, r in pol.iterrows():
        if size_key(r["test_res"]) < size_key(r["train_res"]):
            a, b = cells.get((r["checkpoint"], r["test_res"], "native")), \
                cells.get((r["checkpoint"], r["test_res"], "resize-input"))
            if a is not None and b is not None and (t := paired_policy(a, b, records)) is not None:
                tests[i] = t
    if not tests:
        return pol
    adjusted = dict(zip(tests, holm([t["p"] for t in tests.values()])))
    pol["only native"] = [str(tests[i]["only_native"]) if i in tests else "" for i in pol.index]  # counts
    pol["only resize"] = [str(tests[i]["only_resize"]) if i in tests else "" for i in pol.index]
    pol["p (Holm)"] = [f"{adjusted[i]:.2g}" if i in tests else "" for i in pol.index]
    for i, t in tests.items():
        if adjusted[i] >= 0.05:
            pol.loc[i, "winner"] = "tie (paired test)"
        else:
            pol.loc[i, "winner"] = ("native (zero-shot)" if t["only_native"] > t["only_resize"] else "resize-input") \
                + " (paired test)"
    pol.attrs["paired"] = len(tests)
    return pol


def _policy_table(ok: pd.DataFrame, rank: dict[str, int], records: Records | None = None) -> pd.DataFrame:
    ref_bl = ok[reference_setting(ok)]
    wide = ref_bl.pivot_table(index=["checkpoint", "train_res", "test_res"], columns="policy",
                              values=["acc", "ci_low", "ci_high"], aggfunc="first")
    pol = wide["acc"].reset_index() if len(wide) else pd.DataFrame(columns=["checkpoint", "train_res", "test_res"])
    pol.columns.name = None
    if not {"native", "resize-input"} <= set(pol.columns):
        return pol
    bounds = {name: list(zip(wide["ci_low"][name], wide["ci_high"][name])) for name in ("native", "resize-input")}
    for name, intervals in bounds.items():
        pol[f"{name} ci95"] = [_ci_text(lo, hi) for lo, hi in intervals]
    pol["winner"] = [_winner(n, r) for n, r in zip(bounds["native"], bounds["resize-input"])]
    seen = ref_bl[ref_bl["seen"]].groupby(["checkpoint", "test_res"]).size().index
    pol = pol.dropna(subset=["native", "resize-input"])
    pol = pol[pol["test_res"] != pol["train_res"]]
    pol = pol[[(c, t) not in seen for c, t in zip(pol["checkpoint"], pol["test_res"])]]  # zero-shot cells only
    # above the training size resize-input gives the model (nearly) the image it trained on: a reference
    # every zero-shot drop falls below, not a competitor, so no winner is named there
    above = [size_key(t) > size_key(r) for t, r in zip(pol["test_res"], pol["train_res"])]
    pol["winner"] = ["(reference)" if a else w
                     for a, w in zip(above, pol["winner"])]
    pol = _sort_rows(pol, rank, ("test_res",))
    if records is not None:
        pol = _paired_columns(pol, ref_bl, records)
    pol.attrs["note"] = (PAIRED_RULE if pol.attrs.get("paired") else WINNER_RULE) + " " + POLICY_NOTE
    return pol


def _by_size(frame: pd.DataFrame, column: str, rank: dict[str, int]) -> pd.DataFrame:
    """A row per checkpoint, a column per test size: `column`, rounded, seen-in-training cells marked."""
    table = _sort_rows(_pivot(frame.assign(value=_marked(frame[column].round(2), frame)),
                              ["checkpoint", "train_res"], "value"), rank)
    table.columns.name = None
    return table


def _flip_table(ref: pd.DataFrame, rank: dict[str, int], records: Records) -> pd.DataFrame:
    flips = flip_frame(ref, records)
    if flips.empty:
        return pd.DataFrame()
    table = _by_size(flips, "flips", rank)
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
    table = _by_size(cal, "ece", rank)
    table.attrs["note"] = ECE_NOTE
    return table


TOP5_TITLE = "Top-5 accuracy (%) by test size (native policy; test sets of more than five classes)"


def _top5_table(reference: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame:
    """Top-5 accuracy with its Wilson 95% interval, a column per test size; empty when no row has it."""
    if "top5_accuracy" not in reference:
        return pd.DataFrame()
    have = reference[reference["top5_accuracy"].notna()]
    if have.empty:
        return pd.DataFrame()
    seen = have["seen"] & (have["test_res"] != have["train_res"])  # as _marked marks them
    text = [f"{100 * a:.2f}{SEEN_MARK if m else ''} [{100 * lo:.1f}, {100 * hi:.1f}]"
            for a, lo, hi, m in zip(have["top5_accuracy"], have["top5_ci_low"], have["top5_ci_high"], seen)]
    table = _sort_rows(_pivot(have.assign(value=text), ["checkpoint", "train_res"], "value"), rank)
    table.columns.name = None
    table.attrs["note"] = "Each cell: top-5 accuracy and its 95% Wilson interval."
    return table


def report_tables(df: pd.DataFrame, records: Records | None = None) -> dict[str, pd.DataFrame]:
    """The report's tables, in order: native accuracy, drop from native, bandlimit ablation, policy comparison.

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
    rank = _checkpoint_rank(ok)
    native_pol = ok[ok["policy"] == "native"]
    reference = native_pol[reference_setting(native_pol)]
    at_train = reference[reference["test_res"] == reference["train_res"]]
    lacking = sorted(set(ok["checkpoint"]) - set(at_train["checkpoint"]), key=rank.__getitem__)
    tables = {"Native accuracy (test size = train size, native policy)": _native_table(at_train, rank, lacking),
            "Drop from native accuracy (points; native policy)": _drop_table(native_pol, at_train, rank),
            "Bandlimit ablation, trained models: trained with it minus trained without it (points; native policy)":
                _trained_ablation_table(native_pol, rank),
            "Bandlimit removed at evaluation: trained mask on minus removed (points; native policy)":
                _removed_table(native_pol, rank),
            "Adaptive bandlimit below the training size: adaptive minus fixed (points; native policy)":
                _adaptive_table(native_pol, rank),
            "Policy comparison: zero-shot (native) vs resize-input, accuracy (%)": _policy_table(ok, rank, records),
            TRAINED_HERE_TITLE: _sort_rows(trained_reference_table(native_pol), rank, ("test_res",))}
    top5 = _top5_table(reference, rank)
    if not top5.empty:
        tables[TOP5_TITLE] = top5
    if records is not None and has_records(ok):
        tables[FLIP_TITLE] = _flip_table(reference, rank, records)
        tables[ECE_TITLE] = _calibration_table(reference, rank, records)
    return tables


GOAL_NOTE = ("Each S4ND checkpoint against its discrete twin (same dataset and training size; native policy, S4ND "
             "with its trained bandlimit), on the same test images. drop: accuracy at the training size minus at the "
             "test size (points; negative: a gain), with its 95% interval. Two claims, each a paired test on the "
             "per-image records (resbench.goals): 'S4ND within 2' is shown when S4ND's drop has a 90% interval inside "
             "+-2 points (an equivalence test); 'twin falls further' is shown when the twin's drop minus S4ND's, per "
             "image, has a 95% interval above zero. Without per-image records (sweep --log-samples) neither is "
             "tested and the row says so.")
GOAL_TITLE = "Zero-shot goals: S4ND and its discrete twin at half and twice the training rate"


def _goal_changes(train: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """The changes of the signal and clip goals: (what changed, test size) at half and twice each rate."""
    half, twice = (lambda v: max(1, round(v / 2))), (lambda v: 2 * v)
    if len(train) == 1:
        return [("sampling rate x1/2", (half(train[0]),)), ("sampling rate x2", (twice(train[0]),))]
    t, h, w = train
    return [("frame rate x1/2", (half(t), h, w)), ("frame rate x2", (twice(t), h, w)),
            ("frame size x1/2", (t, half(h), half(w))), ("frame size x2", (t, twice(h), twice(w))),
            ("both x1/2", (half(t), half(h), half(w))), ("both x2", (twice(t), twice(h), twice(w)))]


def _goal_row(cells: dict, records: Records | None) -> dict:
    """The figures of one goal from its four cells (S4ND and twin, at the training and the test size)."""
    from resbench.goals import goal_tests

    acc = {k: 100 * row.accuracy for k, row in cells.items()}
    row = {"S4ND %": round(acc["s4_test"], 2), "S4ND drop": round(acc["s4_train"] - acc["s4_test"], 2),
           "twin %": round(acc["twin_test"], 2), "twin drop": round(acc["twin_train"] - acc["twin_test"], 2)}
    frames = [records.get(cells[k]) for k in ("s4_train", "s4_test", "twin_train", "twin_test")] if records else []
    tests = goal_tests(*frames) if frames and all(f is not None for f in frames) else None
    if tests is None:
        return {**row, "S4ND 95% CI": "", "twin - S4ND": "", "S4ND within 2": "untested (no per-image records)",
                "twin falls further": "untested (no per-image records)"}
    interval = "[{:.2f}, {:.2f}]".format  # points; both ends may be negative
    return {**row, "S4ND 95% CI": interval(*tests["S4ND 95% CI"]),
            "twin - S4ND": f"{tests['twin - S4ND']:.2f} {interval(*tests['twin - S4ND 95% CI'])}",
            "S4ND within 2": "shown" if tests["S4ND within 2"] else "not shown",
            "twin falls further": "shown" if tests["twin falls further"] else "not shown"}


def goal_table(df: pd.DataFrame, records: Records | None = None) -> pd.DataFrame:
    """For signals and clips: each S4ND checkpoint and each discrete twin, their drops at half and twice the
    training rate per axis, and the goal's two paired tests (GOAL_NOTE). Empty without such a pair."""
    ok = df[(df["error"] == "") & (df["policy"] == "native")]
    ok = ok[reference_setting(ok)]
    firsts = ok.drop_duplicates("checkpoint")
    continuous = firsts[firsts["model"].str.startswith("s4nd")]
    discrete = firsts[firsts["bandlimit"] == "none"]
    rows = []
    for s4 in continuous.itertuples(index=False):
        twins = discrete[(discrete["dataset"] == s4.dataset) & (discrete["train_res"] == s4.train_res)]
        dims = int(s4.dims)
        train = parse_size(s4.train_res, dims)
        for twin in twins.itertuples(index=False):
            by_size = {name: {parse_size(r.test_res, dims): r for r in g.itertuples(index=False)}
                       for name, g in ok[ok["checkpoint"].isin([s4.checkpoint, twin.checkpoint])].groupby("checkpoint")}
            a, b = by_size.get(s4.checkpoint, {}), by_size.get(twin.checkpoint, {})
            if train not in a or train not in b:
                continue
            for change, size in _goal_changes(train):
                if size not in a or size not in b:
                    continue
                cells = {"s4_train": a[train], "s4_test": a[size], "twin_train": b[train], "twin_test": b[size]}
                rows.append({"S4ND": s4.checkpoint, "twin": twin.checkpoint, "change": change,
                             "test_res": format_size(size), **_goal_row(cells, records)})
    table = pd.DataFrame(rows)
    if len(table):
        table.attrs["note"] = GOAL_NOTE
    return table


def markdown_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "_(no rows)_\n"

    def cell(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.2f}"
        return str(v)

    from resbench.export import md_text

    cols = [md_text(c) for c in table.columns]  # names from files and options: literal, one cell each
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(md_text(cell(v)) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def kernel_analysis(ckpt_path: str, test_sizes, device: str = "cpu") -> tuple[object, pd.DataFrame, object]:
    """(kernel figure, aliasing table, aliasing figure) of one S4ND or ckconv checkpoint at each test size."""
    from resbench.checkpoints import load_checkpoint
    from resbench.kernels import aliasing_table, kernel_spectra, resampled_taps

    ckpt = load_checkpoint(ckpt_path)
    if test_sizes is None:  # images: 14, 28, 56; signals and clips: half, the same and twice the training size
        test_sizes = [(14, 14), (28, 28), (56, 56)] if ckpt.dims == 2 else default_test_sizes([ckpt.train_res])
    test_sizes = fit_sizes(test_sizes, ckpt.dims, ckpt.name)  # by pixels, each once
    device = str(resolve_device(device))
    spectra = kernel_spectra(ckpt, device=device, test_sizes=test_sizes)
    table = aliasing_table(ckpt, test_sizes, spectra)
    has_s4nd = any(s.group in ("forward", "backward") for s in spectra)
    taps = (lambda size, layer, bl: resampled_taps(ckpt, size, layer, 0, 0, bl, device)) if has_s4nd else None
    return kernel_figure(ckpt, test_sizes, spectra, taps), table, aliasing_figure(table)


def write_kernel_plots(ckpt_path: str, test_sizes, out: str | Path,
                       device: str = "cpu") -> tuple[list[str], pd.DataFrame]:
    """plot-kernels: kernels.png/svg, aliasing.png/svg and aliasing.csv in the folder `out`.

    Returns the files written and the mean aliasing by test size (rows, in size order) and bandlimit.
    """
    import matplotlib.pyplot as plt

    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ResbenchError(f"{out_dir}: exists and is not a folder")
    kfig, table, afig = kernel_analysis(ckpt_path, test_sizes, device)
    try:
        written = save_figure(kfig, out_dir / "kernels", ["png", "svg"]) + save_figure(afig, out_dir / "aliasing",
                                                                                        ["png", "svg"])
    finally:  # an unwritable OUT must not leave the figures open in a long-lived process
        plt.close(kfig)
        plt.close(afig)
    atomic_write_bytes(out_dir / "aliasing.csv", csv_bytes(table))
    summary = table.groupby(["test_res", "bandlimit"])["aliasing"].mean().unstack()
    dims = int(table["dims"].iloc[0])  # what a bare size means: a signal's length or a square image
    return written + ["aliasing.csv"], summary.loc[sort_sizes(summary.index, dims)]  # 7, 14, 28: not as text


def save_figure(fig, base: Path, formats: list[str]) -> list[str]:
    written = []
    for ext in ("png", "svg"):
        if ext in formats or (ext == "png" and "md" in formats):  # the markdown links PNGs
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=130, bbox_inches="tight")
            atomic_write_bytes(base.with_name(f"{base.name}.{ext}"), buf.getvalue())
            written.append(f"{base.name}.{ext}")
    return written


def subset_note(df: pd.DataFrame, runs: list[dict]) -> str:
    """'' when every cell used its whole test split (as far as the run records tell), else a plain warning."""
    split = {c["name"]: c["test_split_images"] for r in runs for c in r.get("checkpoints") or []
             if isinstance(c, dict) and c.get("test_split_images")}
    ok = df[df["error"] == ""]
    dims = ok["dims"] if "dims" in ok else pd.Series(2, index=ok.index)
    parts = sorted({(int(n), split[c], KINDS.get(int(d), "inputs"))
                    for c, n, d in zip(ok["checkpoint"], ok["n"], dims) if c in split and n < split[c]})
    if not parts:
        return ""
    used = ", ".join(f"{k} of {n} test {kind}" for k, n, kind in parts)
    return (f"SUBSET: cells use the first {used}: a quick look, not the full study "
            f"(95% intervals about +-{100 * 1.96 * (0.25 / parts[0][0]) ** 0.5:.1f} points at worst)")


def _records_line(df: pd.DataFrame) -> str:
    ok = df[df["error"] == ""]
    logged = int((ok["samples"].fillna("").astype(str) != "").sum()) if "samples" in ok else 0
    if not logged:
        return f"- per-image records: none. {NO_RECORDS_NOTE}"
    return (f"- per-image records (sweep --log-samples): {logged} of {len(ok)} evaluated cells; flips, calibration "
            f"and paired tests use those cells only")


def _header(df: pd.DataFrame, metas: list[dict], dirs, missing: list[str]) -> list[str]:
    from resbench.export import md_code

    versions = metas[0].get("versions", {}) if metas else {}
    subset = subset_note(df, metas)
    lines = [*([f"- **{subset}**"] if subset else []),
             f"- generated: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- sweeps: {', '.join(map(md_code, dirs))}",
             *[f"- command: {md_code(m.get('command', '?'))} (started {m.get('started')}, finished {m.get('finished')})"
               for m in metas],
             f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
             f"- dataset: {', '.join(sorted(df['dataset'].astype(str).unique()))}; images per cell: "
             f"{', '.join(str(n) for n in sorted(df.loc[df['error'] == '', 'n'].unique()))}",
             f"- cells: {int((df['error'] == '').sum())} evaluated, {int((df['error'] != '').sum())} failed, "
             f"{len(missing)} missing",
             _records_line(df)]
    if "warning" in df:
        warned = df[df["warning"].fillna("").astype(str) != ""].groupby("checkpoint")["warning"].agg(
            lambda w: "; ".join(sorted(set(w))))
        lines += [f"- **warning** for {md_code(name)}: {text}" for name, text in warned.items()]
    seen = set()
    for m in metas:
        for c in m.get("checkpoints", []):
            if c.get("sha256") not in seen:
                seen.add(c.get("sha256"))
                lines.append(f"- checkpoint {md_code(c.get('name'))} ({c.get('model')}, trained at {c.get('train_res')}): "
                             f"sha256 `{c.get('sha256')}`")
    return lines


def header_pages(df: pd.DataFrame, metas: list[dict], dirs, missing: list[str]) -> list:
    """The PDF's first pages: the header (sweeps, commands, versions, checkpoints) and the first missing cells."""
    lines = [line.replace("**", "") for line in _header(df, metas, dirs, missing)]  # markdown bold: not in a PDF
    if missing:
        extra = ["..."] if len(missing) > MAX_LISTED_MISSING else []
        lines += ["", "Missing cells:", *missing[:MAX_LISTED_MISSING], *extra]
    title = "resbench resolution report" + (" (SUBSET of the test data)" if subset_note(df, metas) else "")
    return text_pages(title, lines)


def _reference_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Successful native-policy cells of each checkpoint's reference bandlimit setting, with their seen flags."""
    ok = df[(df["error"] == "") & (df["policy"] == "native")].copy()
    ok["seen"] = seen_in_training(ok)
    return ok[reference_setting(ok)]


def reliability_pair(df: pd.DataFrame, records: Records, names: list[str] | None = None) -> list[str]:
    """The checkpoints of the reliability diagram: `names` when given (each checked), else the headline pair,
    an s4nd_iso and a conv2d_iso checkpoint trained at the same size with records there (the smallest such
    training size with test sizes below and above it, else the one with the most test sizes), else the
    first two checkpoints with records."""
    ref = _reference_cells(df)
    at_train = ref[ref["test_res"] == ref["train_res"]]
    logged = [r for r in at_train.itertuples() if records.get(r) is not None]
    if names:
        known = {r.checkpoint for r in logged}
        for name in names:
            if name not in known:
                raise ResbenchError(f"--reliability {name!r}: no checkpoint of that name has per-image records at "
                                    f"its training size (have: {', '.join(sorted(known)) or 'none'})")
        return list(names)
    by_model: dict[tuple[str, str], list[str]] = {}
    for r in logged:
        by_model.setdefault((r.model, r.train_res), []).append(r.checkpoint)
    trains = [t for (m, t) in by_model if m == "s4nd_iso" and ("conv2d_iso", t) in by_model]
    if trains:
        sizes = set(ref["test_res"])
        both = [t for t in trains if any(size_key(x) < size_key(t) for x in sizes)
                and any(size_key(x) > size_key(t) for x in sizes)]
        train = min(both, key=size_key) if both else \
            max(trains, key=lambda t: (len(ref[ref["train_res"] == t]["test_res"].unique()), -size_key(t)[0]))
        return [sorted(by_model[("s4nd_iso", train)])[0], sorted(by_model[("conv2d_iso", train)])[0]]
    return sorted({r.checkpoint for r in logged})[:2]


def _reliability_figure(df: pd.DataFrame, records: Records, names: list[str]):
    """The reliability diagram of `names`: at the training size, the smallest test size and twice the training
    side (else the largest), zero-shot cells only."""
    ref = _reference_cells(df)
    panels = {}
    for name in names:
        g = ref[(ref["checkpoint"] == name) & ~(ref["seen"] & (ref["test_res"] != ref["train_res"]))]
        have = {r.test_res: r for r in g.itertuples() if records.get(r) is not None}
        train = g["train_res"].iloc[0]
        sizes = sorted(have, key=size_key)
        double = next((t for t in sizes if side(t) == 2 * side(train)), sizes[-1])
        pick = [t for t in dict.fromkeys([train, sizes[0], double]) if t in have]
        panels[f"{name} (trained at {train})"] = [
            (t, reliability_bins(records.get(have[t])), ece(records.get(have[t]))) for t in pick]
    return reliability_diagram(panels)


def _draw_figures(figures: dict, df: pd.DataFrame, kernels: str | None, kernel_sizes,
                  device: str = "cpu", records: Records | None = None,
                  reliability: list[str] | None = None) -> pd.DataFrame | None:
    """Fill `figures` (key -> (title, figure)) as each is drawn, so the caller can close them on an error.

    Returns the kernels' aliasing table (None without `kernels`)."""
    figures["accuracy"] = ("Accuracy vs test resolution", accuracy_vs_test_res(df))
    figures["heatmap"] = ("Train x test accuracy", train_test_heatmaps(df))
    alphas = alpha_cells(df)
    if not alphas.empty:  # a sweep over several alphas (--bandlimit 0.25,0.5,1,...) gets its own figure
        figures["alpha"] = ("Accuracy vs bandlimit alpha", accuracy_vs_alpha(alphas))
    if records is not None and has_records(df):
        names = reliability_pair(df, records, reliability)
        if names:
            figures["reliability"] = (f"Reliability diagram: {' vs '.join(names)}",
                                      _reliability_figure(df, records, names))
    if not kernels:
        return None
    kfig, aliasing, afig = kernel_analysis(kernels, kernel_sizes or set(df["test_res"]), device)
    figures["kernels"] = ("Continuous kernels and test-grid Nyquist limits", kfig)
    figures["aliasing"] = ("Aliasing of the kernels", afig)
    return aliasing


def _aliasing_summary(aliasing: pd.DataFrame) -> pd.DataFrame:
    """Mean aliasing per (test size, bandlimit); sizes by pixels, not as text."""
    summary = aliasing.groupby(["test_res", "bandlimit"])["aliasing"].mean().reset_index()
    order = sorted(range(len(summary)), key=lambda i: (size_key(summary["test_res"][i]), summary["bandlimit"][i]))
    return summary.iloc[order].reset_index(drop=True)


def _markdown(out: Path, header: list[str], missing: list[str], figures: dict, links: dict, tables: dict,
              aliasing: pd.DataFrame | None, kernels: str | None) -> str:
    from resbench.export import md_code, md_link, md_text

    md = [f"# Resolution report: {md_text(out.name)}", "", *header, ""]
    if missing:
        md += ["## Missing cells", "", "This report covers a partial sweep; these planned cells have no result:",
               "", *[f"- {md_text(m)}" for m in missing], ""]
    for key, (title, _) in figures.items():
        if links.get(key):
            alt = md_text(title.replace("[", "(").replace("]", ")"))  # brackets would end the image's alt text
            md += [f"## {md_text(title)}", "", f"![{alt}]({md_link(links[key])})", ""]
    for title, table in tables.items():
        md += [f"## {md_text(title)}", "", markdown_table(table)]
        if table.attrs.get("note"):
            md += [f"Note: {table.attrs['note']}", ""]
    if aliasing is not None:
        md += [f"## {ALIASING_TITLE}", "",
               f"Checkpoint {md_code(kernels)}; mean over layers, axes and directions; per-layer values in "
               f"[{md_text(out.name)}_aliasing.csv]({md_link(out.name + '_aliasing.csv')}).", "", markdown_table(_aliasing_summary(aliasing))]
    return "\n".join(md)


RANK_NOTE = ("Spearman rank correlation between a kernel metric (mean over layers, axes and directions) and the "
             "measured drop from native accuracy, over the native zero-shot cells of the checkpoints with continuous "
             "kernels whose files the sweep's run records name (sizes seen in training left out). aliasing: energy "
             "above the Nyquist of the coarser of the test and training grids; above_test_nyquist: above the test "
             "grid's alone. 'untrained modes' cells are those of a checkpoint trained with the mask and evaluated "
             "with it removed. A metric that ranks the drops well has rho near 1.")


class SweptFiles:
    """The checkpoint files a sweep's run records name (path and sha256), each loaded once when first asked
    for: `get(sha256)` is the Checkpoint, or None where the file is gone, no longer loads or has changed."""

    def __init__(self, runs: list[dict]):
        self.paths = {c.get("sha256"): c.get("path") for r in runs for c in r.get("checkpoints") or []
                      if isinstance(c, dict) and c.get("path")}
        self._loaded: dict[str, object] = {}

    def get(self, sha: str):
        from resbench.checkpoints import load_checkpoint

        if sha not in self._loaded:
            path, ckpt = self.paths.get(sha), None
            if path and Path(path).is_file():
                try:
                    ckpt = load_checkpoint(path)
                except ResbenchError:
                    ckpt = None
            self._loaded[sha] = ckpt if ckpt is not None and ckpt.sha256 == sha else None
        return self._loaded[sha]


def aliasing_drop_cells(df: pd.DataFrame, runs: list[dict], device: str = "cpu",
                        files: SweptFiles | None = None, say: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per native zero-shot cell of a checkpoint with continuous kernels: its drop and kernel metrics.

    Checkpoint files come from the run records (path and sha256; `files` to share the loaded ones); a file
    that is gone or changed is skipped. `say` is told each checkpoint as its kernels are analysed.
    """
    from resbench.kernels import aliasing_table, kernel_spectra

    device = str(resolve_device(device))
    files = files or SweptFiles(runs)
    ok = df[(df["error"] == "") & (df["policy"] == "native")].copy()
    ok["seen"] = seen_in_training(ok)
    rows = []
    groups = list(ok.groupby("checkpoint_sha256"))
    for i, (sha, g) in enumerate(groups):
        ckpt = files.get(sha)
        if ckpt is None:
            continue
        if say is not None:
            say(f"rank correlation: {ckpt.name} ({i + 1}/{len(groups)})")
        try:
            sizes = [parse_size(t, ckpt.dims) for t in sorted(set(g["test_res"]), key=lambda t: size_key(t, ckpt.dims))]
            spectra = kernel_spectra(ckpt, device=device, test_sizes=sizes)
        except ResbenchError:  # no continuous kernels
            continue
        metrics = aliasing_table(ckpt, sizes, spectra).groupby(["test_res", "bandlimit"]).agg(
            aliasing=("aliasing", "mean"), above_test_nyquist=("above_test_nyquist", "mean"),
            untrained_modes=("untrained_modes", "any"))
        train = g["train_res"].iloc[0]
        base = g[(g["test_res"] == train) & reference_setting(g)]["accuracy"]
        if base.empty:
            continue
        for r in g[(g["test_res"] != train) & ~g["seen"] & g["bandlimit"].isin(["on", "off", "none", "adaptive"])
                   ].itertuples():
            key = (r.test_res, r.bandlimit)
            if key not in metrics.index:
                continue
            m = metrics.loc[key]
            rows.append({"checkpoint": r.checkpoint, "train_res": train, "test_res": r.test_res,
                         "bandlimit": r.bandlimit, "drop": 100 * (float(base.iloc[0]) - r.accuracy),
                         "below_training": size_key(r.test_res) < size_key(train), **m.to_dict()})
    return pd.DataFrame(rows)


SEEDS_TITLE = "Training seeds: accuracy mean \u00b1 sd across seeds (%; native policy)"
SEEDS_NOTE = ("Checkpoints trained with the same recipe (every training setting but the seed) and different seeds, "
              "as their files' provenance says. Each cell: mean \u00b1 sample standard deviation across the seeds, "
              "then in brackets the mean half-width of the cells' 95% Wilson intervals, which cover test-set "
              "sampling only; a seed spread larger than that half-width is variation between trained models that "
              "the intervals do not show.")
_NOT_RECIPE = ("seed", "threads", "data_dir", "test_limit", "device")  # settings that leave the recipe the same


def seed_groups(df: pd.DataFrame, runs: list[dict], files: SweptFiles | None = None) -> dict[str, tuple[str, int]]:
    """Checkpoint name -> (recipe key, training seed), from the files the run records name (a file that is
    gone, changed or not trained by resbench is left out)."""
    import json

    files = files or SweptFiles(runs)
    out = {}
    for name, sha in df.drop_duplicates("checkpoint")[["checkpoint", "checkpoint_sha256"]].itertuples(index=False):
        ckpt = files.get(sha)
        config = ckpt.provenance.get("train_config") if ckpt is not None else None
        if not isinstance(config, dict) or "seed" not in config:
            continue
        key = json.dumps({k: v for k, v in config.items() if k not in _NOT_RECIPE}, sort_keys=True, default=str)
        out[name] = (key, int(config["seed"]))
    return out


def seed_spread_table(df: pd.DataFrame, runs: list[dict], files: SweptFiles | None = None) -> pd.DataFrame:
    """One row per recipe trained with two or more seeds: mean +- sd of accuracy at each test size (SEEDS_NOTE)."""
    groups = seed_groups(df, runs, files)
    by_key: dict[str, dict[int, str]] = {}
    for name, (key, seed) in groups.items():
        by_key.setdefault(key, {})[seed] = name
    ref = _reference_cells(df)
    rows = []
    for key, seeds in by_key.items():
        if len(seeds) < 2:
            continue
        names = [seeds[k] for k in sorted(seeds)]
        g = ref[ref["checkpoint"].isin(names)]
        row = {"checkpoints": ", ".join(names), "seeds": ",".join(map(str, sorted(seeds))),
               "train_res": g["train_res"].iloc[0] if len(g) else ""}
        for size, cells in sorted(g.groupby("test_res"), key=lambda kv: size_key(kv[0])):
            if cells["checkpoint"].nunique() != len(names):
                continue  # a size not swept for every seed
            acc = 100 * cells["accuracy"]
            half = 100 * (cells["ci_high"] - cells["ci_low"]).mean() / 2
            row[size] = f"{acc.mean():.2f} \u00b1 {acc.std(ddof=1):.2f} [\u00b1{half:.2f}]"
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    sizes = sort_sizes([c for c in table.columns if c not in ("checkpoints", "seeds", "train_res")])
    table = table[["checkpoints", "seeds", "train_res", *sizes]].fillna("")
    table.attrs["note"] = SEEDS_NOTE
    return table


def aliasing_rank_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Spearman rho of each metric against the drops, over all cells and over named subsets of them."""
    if cells.empty:
        return pd.DataFrame(columns=["cells", "n", "rho aliasing", "rho above_test_nyquist"])
    subsets = {"all zero-shot cells": cells, "without untrained modes": cells[~cells["untrained_modes"]],
               "below the training size": cells[cells["below_training"]],
               "above the training size": cells[~cells["below_training"]]}
    rows = []
    for name, part in subsets.items():
        with warnings.catch_warnings():  # a constant column has no rank correlation: nan, said in the table
            warnings.simplefilter("ignore")
            rho = {m: part[m].corr(part["drop"], method="spearman") if len(part) > 2 else float("nan")
                   for m in ("aliasing", "above_test_nyquist")}
        rows.append({"cells": name, "n": len(part), "checkpoints": part["checkpoint"].nunique(),
                     "rho aliasing": round(rho["aliasing"], 3),
                     "rho above_test_nyquist": round(rho["above_test_nyquist"], 3)})
    table = pd.DataFrame(rows)
    table.attrs["note"] = RANK_NOTE
    return table


def write_report(dirs, out: str | Path, formats=("md", "pdf", "png", "svg"), kernels: str | None = None,
                 kernel_sizes=None, kernel_device: str = "cpu", reliability: list[str] | None = None,
                 say: Callable[[str], None] | None = None) -> dict:
    """Write OUT.md / OUT.pdf and each figure as OUT_<figure>.png/.svg. Returns what was written.

    `kernels`: a checkpoint whose continuous kernels are analysed too, on `kernel_device`. `reliability`: the
    checkpoints of the reliability diagram (default: the headline pair; needs per-image records). `say`, when
    given, is called with a line as each step starts (a study's report takes a minute or two)."""
    import matplotlib.pyplot as plt

    say = say or (lambda line: None)

    out = Path(out)
    if out.is_dir():
        raise ResbenchError(f"{out}: is a folder; expected OUT/NAME (the report is written as NAME.md, NAME.pdf)")
    df, metas = load_sweeps(dirs)
    # bad input is one line, before the first step line: a bad --device or --kernels, an unwritable OUT (made
    # only once the rest is known good)
    resolve_device(kernel_device)
    if kernels:
        from resbench.checkpoints import load_checkpoint
        from resbench.kernels import check_continuous

        check_continuous(load_checkpoint(kernels))
    writable_folder(out.parent)
    missing = missing_cells(df, metas)
    say(f"{len(df)} cells from {', '.join(map(str, dirs))}; tables")
    records = Records()
    # images, signals and clips apart: their sizes are not one axis (a signal's 8000 is no 8000 px square)
    parts = {int(d): g for d, g in df.groupby("dims")} if len(df) else {2: df}
    images = parts.get(2, df.iloc[0:0])
    tables = report_tables(images, records) if 2 in parts else {}
    kind_of = dict.fromkeys(tables, 2)  # title -> the kind of input its cells are (absent: several kinds)
    for dims in (1, 3):
        if dims in parts:
            kind = {f"{title} [{KINDS[dims]}]": table for title, table in report_tables(parts[dims], records).items()}
            goals = goal_table(parts[dims], records)
            if len(goals):
                kind[f"{GOAL_TITLE} [{KINDS[dims]}]"] = goals
            tables.update(kind)
            kind_of.update(dict.fromkeys(kind, dims))
    files = SweptFiles(metas)  # the checkpoint files, loaded once for the seed table and the rank correlation
    say("seed table")
    seeds = seed_spread_table(df, metas, files)
    if not seeds.empty:
        tables[SEEDS_TITLE] = seeds
    say("the aliasing metric's rank correlation: the continuous kernels of each swept checkpoint")
    ranked = aliasing_drop_cells(df, metas, kernel_device, files, say)
    if not ranked.empty:
        tables["Does the aliasing metric rank the accuracy drops? (Spearman rank correlation)"] = \
            aliasing_rank_table(ranked)
    figures, written, links, pages = {}, [], {}, []
    # a report of subset cells: every table's title says so (as shown; `tables` returned keep their titles), and
    # every figure in its title and in the image, each with what its own kind of input used
    marks = {dims: (subset_mark(part), subset_note(part, metas)) for dims, part in parts.items()}
    marks[None] = (subset_mark(df), subset_note(df, metas))
    shown = {}
    for title, table in tables.items():
        mark = marks[kind_of.get(title)][0]
        shown[f"{title} {mark}" if mark else title] = table
    try:
        say("figures" + (f" and the kernels of {kernels}" if kernels else ""))
        aliasing = _draw_figures(figures, images, kernels, kernel_sizes, kernel_device, records, reliability) \
            if 2 in parts else None
        figure_kind = dict.fromkeys(figures, 2)  # key -> the kind of input its cells are
        if 1 in parts:
            figures["signals"] = (f"Accuracy vs test length [{KINDS[1]}]",
                                  accuracy_vs_test_res(parts[1], "test length (samples)"))
            figure_kind["signals"] = 1
        if 3 in parts:
            figures["clips"] = (f"Accuracy vs frame rate and vs frame size [{KINDS[3]}]", clip_axes_figure(parts[3]))
            figures["clips_heatmap"] = (f"Frames x frame size accuracy [{KINDS[3]}]", clip_heatmaps(parts[3]))
            figure_kind.update(clips=3, clips_heatmap=3)
        for key, (title, fig) in list(figures.items()):
            mark, note = marks[figure_kind[key]]
            if mark:
                fig.text(0.995, 0.005, f"{mark}: {note or 'subset of the test data'}",
                         ha="right", va="bottom", fontsize=7, color="firebrick")
                figures[key] = (f"{title} {mark}", fig)
        say(f"writing {len(figures)} figure" + ("s" if len(figures) != 1 else ""))
        for key, (_, fig) in figures.items():
            files = save_figure(fig, out.with_name(f"{out.name}_{key}"), formats)
            written += files
            links[key] = next((f for f in files if f.endswith(".png")), files[0] if files else None)
        if aliasing is not None:
            atomic_write_bytes(out.with_name(f"{out.name}_aliasing.csv"), csv_bytes(aliasing))
            written.append(f"{out.name}_aliasing.csv")
        if "tex" in formats or "html" in formats:  # both need the figures still open
            from resbench.export import write_html, write_tex

            title = f"Resolution report: {out.name}"
            header = _header(df, metas, dirs, missing)
            sections = dict(shown)
            if aliasing is not None:
                sections[ALIASING_TITLE] = _aliasing_summary(aliasing)
            say(" and ".join(f for f in ("tex", "html") if f in formats))
            if "tex" in formats:
                written += write_tex(out, title, header, missing, figures, sections)
            if "html" in formats:
                written += write_html(out, title, header, missing, figures, sections)
        if "pdf" in formats:
            say("pdf")
            pdf, pages = pdf_bytes(header_pages(df, metas, dirs, missing), figures, shown)
            plain = {shown_title: title for shown_title, title in zip(shown, tables)}
            pages = [plain.get(page, page) for page in pages]  # a table's page by its title, as in `tables`
            atomic_write_bytes(out.with_name(f"{out.name}.pdf"), pdf)
            written.append(f"{out.name}.pdf")
    finally:  # on an error too (a bad --kernels file, an unwritable OUT): no figure is left open
        for _, fig in figures.values():
            plt.close(fig)
    if "md" in formats:
        md = _markdown(out, _header(df, metas, dirs, missing), missing, figures, links, shown, aliasing, kernels)
        atomic_write_bytes(out.with_name(f"{out.name}.md"), md.encode())
        written.append(f"{out.name}.md")
    return {"written": written, "pages": pages, "missing": missing, "tables": tables}


from resbench._callable import make_callable  # noqa: E402  (last: the module is complete)

make_callable(__name__, "report")  # resbench.report(...) is resbench.api.report(...)
