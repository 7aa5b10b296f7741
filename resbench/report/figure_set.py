"""Which figures a report draws, and from which cells: images, signals and clips each get their own, the
reliability diagram a pair of checkpoints with per-image records, the kernels one named checkpoint."""

from __future__ import annotations

import textwrap

import pandas as pd

from resbench.errors import ResbenchError
from resbench.report.aliasing import kernel_analysis
from resbench.report.clip_figures import clip_axes_figure, clip_heatmaps
from resbench.report.figures import (accuracy_vs_alpha, accuracy_vs_test_res, alpha_cells, reliability_diagram, side,
                                     train_test_heatmaps)
from resbench.report.load import reference_cells
from resbench.report.persample import Records, ece, has_records, reliability_bins
from resbench.resolution import KINDS, size_key

__all__ = ["reliability_pair", "draw_figures", "add_footnote", "mark_figures"]

FOOTNOTE_PT = 7  # font size of the subset note under a figure


def reliability_pair(df: pd.DataFrame, records: Records, names: list[str] | None = None) -> list[str]:
    """The checkpoints of the reliability diagram: `names` when given (each checked), else the headline pair,
    an s4nd_iso and a conv2d_iso checkpoint trained at the same size with records there (the smallest such
    training size with test sizes below and above it, else the one with the most test sizes), else the
    first two checkpoints with records."""
    ref = reference_cells(df)
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
    ref = reference_cells(df)
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


def _draw_image_figures(figures: dict, df: pd.DataFrame, kernels: str | None, kernel_sizes,
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


def draw_figures(figures: dict, parts: dict[int, pd.DataFrame], kernels: str | None, kernel_sizes,
                 device: str, records: Records, reliability: list[str] | None) -> tuple[pd.DataFrame | None, dict]:
    """Fill `figures` (key -> (title, figure)) with the figures of each kind of input in `parts` (dims -> cells).

    Returns the kernels' aliasing table (None without `kernels`) and each figure's kind (key -> dims)."""
    aliasing = _draw_image_figures(figures, parts[2], kernels, kernel_sizes, device, records, reliability) \
        if 2 in parts else None
    kind = dict.fromkeys(figures, 2)
    if 1 in parts:
        figures["signals"] = (f"Accuracy vs test length [{KINDS[1]}]",
                              accuracy_vs_test_res(parts[1], "test length (samples)"))
        kind["signals"] = 1
    if 3 in parts:
        figures["clips"] = (f"Accuracy vs frame rate and vs frame size [{KINDS[3]}]", clip_axes_figure(parts[3]))
        figures["clips_heatmap"] = (f"Frames x frame size accuracy [{KINDS[3]}]", clip_heatmaps(parts[3]))
        kind.update(clips=3, clips_heatmap=3)
    return aliasing, kind


def add_footnote(fig, text: str) -> None:
    """`text`, wrapped to the figure's width, in a strip added under everything the figure holds: the figure grows
    by the strip and the rest keeps its size and place, so the note never covers an axis label or a legend."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    width, height = fig.get_size_inches()
    lines = textwrap.wrap(text, max(30, int(width * 72 / (0.55 * FOOTNOTE_PT))))  # sans text: about 0.55 em wide
    strip = (len(lines) * 1.3 * FOOTNOTE_PT + 8) / 72  # inches
    fig.set_size_inches(width, height + strip)
    keep = height / (height + strip)  # the old content's share of the new height, above the strip
    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):  # lays the figure out at every draw: give it the rest
        engine.set(rect=(0, 1 - keep, 1, keep))
    else:  # laid out once: move everything up by the strip
        for ax in fig.axes:
            x0, y0, w, h = ax.get_position().bounds
            ax.set_position([x0, 1 - keep + y0 * keep, w, h * keep])
        for t in fig.texts:
            x, y = t.get_position()
            t.set_position((x, 1 - keep + y * keep))
    fig.text(0.995, 4 / 72 / (height + strip), "\n".join(lines), ha="right", va="bottom", fontsize=FOOTNOTE_PT,
             color="firebrick")


def mark_figures(figures: dict, kind: dict, marks: dict) -> None:
    """A figure of subset cells says so in its title and in the image (`marks`: dims -> (mark, note))."""
    for key, (title, fig) in list(figures.items()):
        mark, note = marks[kind[key]]
        if mark:
            add_footnote(fig, f"{mark}: {note or 'subset of the test data'}")
            figures[key] = (f"{title} {mark}", fig)
