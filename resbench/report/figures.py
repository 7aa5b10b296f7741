"""Figures of a resolution study, each drawn from the results frame: accuracy against test size, train x test
heatmaps, accuracy against the bandlimit alpha, reliability diagrams; and how a figure is saved."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on CPU servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from resbench.report.load import SEEN_MARK, reference_setting, seen_in_training  # noqa: E402
from resbench.resolution import size_key  # noqa: E402
from resbench.store import atomic_write_bytes  # noqa: E402

__all__ = ["STYLE", "side", "checkpoint_colors", "checkpoint_markers", "native_cells", "accuracy_lines",
           "accuracy_vs_test_res", "train_test_heatmaps", "alpha_cells", "OFF_X", "accuracy_vs_alpha",
           "reliability_diagram", "save_figure"]


STYLE = {"on": "-", "none": "-", "off": "--", "adaptive": "-."}
HEATMAP_PANELS_PER_ROW = 3  # six models make a 3 x 2 grid instead of one strip
HEATMAP_MAX_WIDTH = 15.0  # inches: wide panels (many test sizes) take fewer per row


def side(size: str) -> float:
    """Plot position of a size label: the geometric mean of its sides ('28x20' -> ~23.7, '28' -> 28, a
    signal's '8000' -> 8000, '8x14x14' -> ~11.6)."""
    sides = size_key(size, 1)[1:]  # a bare number is one side, whatever the axes
    return float(np.prod(np.asarray(sides, dtype=float)) ** (1 / len(sides)))


def native_cells(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["error"] == "") & (df["policy"] == "native")]


def checkpoint_colors(names) -> dict:
    """A distinct colour per checkpoint name: tab10 up to 10 names, tab20 beyond (no two share one up to 20)."""
    names = sorted(names)
    cmap, n = (plt.cm.tab10, 10) if len(names) <= 10 else (plt.cm.tab20, 20)
    return {name: cmap(i % n) for i, name in enumerate(names)}


def checkpoint_markers(names) -> dict:
    """A marker per checkpoint name that, with checkpoint_colors, tells up to 120 names apart: a new marker
    for every 20 names (tab20's colours repeat after that)."""
    return {name: "osD^v<>"[(i // 20) % 7] for i, name in enumerate(sorted(names))}


def accuracy_lines(ax, cells: pd.DataFrame, colors: dict, train: str | None = None) -> None:
    """A line per checkpoint, policy and bandlimit setting of `cells` (accuracy against their column `x`) with
    its 95% CI band, one legend entry per checkpoint (its colour; the line styles are in the figure's title).
    With `train`, sizes other than it that the checkpoint trained at get an open square (not zero-shot)."""
    labelled, markers = set(), checkpoint_markers(cells["checkpoint"].unique())
    for (ckpt, policy, bl), g in cells.groupby(["checkpoint", "policy", "bandlimit"], sort=True):
        g = g.sort_values("x")
        style = ":" if policy == "resize-input" else STYLE.get(bl, "-.")
        ax.plot(g["x"], 100 * g["accuracy"], style, marker=markers[ckpt], ms=3, color=colors[ckpt],
                label=None if ckpt in labelled else ckpt)
        labelled.add(ckpt)
        ax.fill_between(g["x"], 100 * g["ci_low"], 100 * g["ci_high"], color=colors[ckpt], alpha=0.12, lw=0)
        if train is not None:
            seen = g[seen_in_training(g) & (g["test_res"] != train)]  # not zero-shot: the schedule trained there
            ax.plot(seen["x"], 100 * seen["accuracy"], "s", ms=8, mfc="none", color=colors[ckpt])


LEGEND_PT = 7  # the per-panel legends' font size
SIDE_BY_SIDE = 8  # at most this many checkpoints in every panel: panels in one row, else one row per training size


def _legend_inches(labels) -> tuple[float, float]:
    """Width and height (inches) of a one-column legend of `labels` at LEGEND_PT."""
    return (max(map(len, labels), default=10) * 0.6 * LEGEND_PT + 28) / 72, len(labels) * LEGEND_PT * 1.55 / 72


def _panel_grid(panels: list[list[str]]):
    """A figure with a plot and, to its right, a legend column for each panel: one row of panels where each
    holds at most SIDE_BY_SIDE checkpoints, else one row per panel, each row as tall as its legend."""
    widths = [_legend_inches(labels)[0] for labels in panels] or [1.0]
    heights = [max(3.6, 1.0 + _legend_inches(labels)[1]) for labels in panels] or [3.6]
    stacked = max(map(len, panels), default=0) > SIDE_BY_SIDE
    if stacked:
        fig = plt.figure(figsize=(5.2 + max(widths), sum(heights) + 0.8))
        spec = fig.add_gridspec(len(heights), 2, width_ratios=[5.2, max(widths)], height_ratios=heights)
        return fig, [(fig.add_subplot(spec[i, 0]), fig.add_subplot(spec[i, 1])) for i in range(len(heights))]
    ratios = [w for width in widths for w in (4.6, width)]
    fig = plt.figure(figsize=(sum(ratios), max(heights) + 0.8))
    spec = fig.add_gridspec(1, len(ratios), width_ratios=ratios)
    return fig, [(fig.add_subplot(spec[0, 2 * i]), fig.add_subplot(spec[0, 2 * i + 1])) for i in range(len(widths))]


def accuracy_vs_test_res(df: pd.DataFrame, xlabel: str = "test resolution (side, px)"):
    """One panel per training size with its legend beside it; a line per checkpoint; bandlimit on solid, off
    dashed; 95% CI bands. Many checkpoints a panel stack the panels, so no legend covers a label.

    Images and signals (xlabel "test length (samples)"); clips have clip_axes_figure."""
    ok = df[df["error"] == ""]
    trains = sorted(ok["train_res"].unique(), key=size_key)
    panels = [sorted(ok.loc[ok["train_res"] == train, "checkpoint"].unique()) for train in trains]
    fig, pairs = _panel_grid(panels)
    for (ax, key), train, names in zip(pairs, trains, panels):
        part = ok[ok["train_res"] == train]  # a checkpoint has one training size: colours are the panel's own
        accuracy_lines(ax, part.assign(x=part["test_res"].map(side)), checkpoint_colors(names), train)
        ax.axvline(side(train), color="0.5", lw=0.8)
        ax.set_title(f"trained at {train}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(alpha=0.3)
        key.axis("off")
        key.legend(*ax.get_legend_handles_labels(), loc="center left", fontsize=LEGEND_PT, frameon=False,
                   borderaxespad=0)
    for ax, key in pairs[len(trains):]:
        ax.axis("off"), key.axis("off")
    seen = (seen_in_training(ok) & (ok["test_res"] != ok["train_res"])).any()
    note = ("Accuracy vs test resolution (solid: bandlimit on or none, dashed: off, "
            + ("dash-dot: adaptive, " if (ok["bandlimit"] == "adaptive").any() else "") + "dotted: resize-input"
            + ("; open square: a size the checkpoint trained at, not zero-shot)" if seen else ")"))
    # wrapped to the figure's width (9 pt sans: about 0.55 em a character), so it never makes the image wider
    lines = textwrap.wrap(note, int(fig.get_size_inches()[0] * 72 / (0.55 * 9)))
    fig.suptitle("\n".join(lines), fontsize=9)
    title = (len(lines) * 9 * 1.3 + 10) / 72  # inches the note takes at the top, kept free of the panels
    fig.tight_layout(rect=(0, 0, 1, 1 - title / fig.get_size_inches()[1]))
    return fig


def _heatmap_panel(ax, part: pd.DataFrame, model: str):
    """One model's train x test accuracy grid on `ax`; returns the image (for the shared colour bar)."""
    train_of = dict(zip(part["checkpoint"], part["train_res"]))
    # one row per checkpoint (progressive runs share a train size with their full-size twin)
    rows = sorted(train_of, key=lambda c: (size_key(train_of[c]), c))
    cols = sorted(part["test_res"].unique(), key=size_key)
    grid = np.full((len(rows), len(cols)), np.nan)  # (checkpoints, test sizes) accuracy in %
    marked = np.zeros(grid.shape, dtype=bool)  # sizes seen in training other than the final one
    for r, seen in zip(part.itertuples(), seen_in_training(part)):
        grid[rows.index(r.checkpoint), cols.index(r.test_res)] = 100 * r.accuracy
        marked[rows.index(r.checkpoint), cols.index(r.test_res)] = seen and r.test_res != r.train_res
    image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    for i, j in np.ndindex(grid.shape):
        if not np.isnan(grid[i, j]):
            ax.text(j, i, f"{grid[i, j]:.1f}" + (SEEN_MARK if marked[i, j] else ""), ha="center", va="center",
                    fontsize=8, color="white" if grid[i, j] < 60 else "black")
    ax.set_xticks(range(len(cols)), cols, fontsize=9)
    ax.set_yticks(range(len(rows)), [f"{c} ({train_of[c]})" for c in rows], fontsize=9)
    ax.set_xlabel("test resolution", fontsize=9)
    ax.set_title(model, fontsize=10)
    return image


def train_test_heatmaps(df: pd.DataFrame):
    """A train x test accuracy table per model (native policy; bandlimit on where the checkpoint trained with it).

    Panels fill a grid (at most HEATMAP_PANELS_PER_ROW a row) that shares one colour bar.
    """
    ok = native_cells(df)
    ok = ok[reference_setting(ok)]
    models = sorted(ok["model"].unique())
    n_tests = max(1, ok["test_res"].nunique())
    n_rows = max([1, *ok.groupby("model")["checkpoint"].nunique()])
    panel_w, panel_h = max(3.6, 0.6 * n_tests + 2.4), max(2.6, 0.35 * n_rows + 1.6)  # inches; room for tick labels
    per_row = max(1, min(HEATMAP_PANELS_PER_ROW, len(models), int(HEATMAP_MAX_WIDTH // panel_w)))
    grid_rows = max(1, -(-len(models) // per_row))
    fig, axes = plt.subplots(grid_rows, per_row, figsize=(panel_w * per_row + 1.2, panel_h * grid_rows + 0.6),
                             squeeze=False, layout="constrained")
    images = [_heatmap_panel(ax, ok[ok["model"] == model], model) for ax, model in zip(axes.flat, models)]
    for ax in axes.flat[len(models):]:
        ax.axis("off")
    if images:
        fig.colorbar(images[0], ax=axes, label="top-1 accuracy (%)", shrink=0.9)
    marked = (seen_in_training(ok) & (ok["test_res"] != ok["train_res"])).any()  # the mark's key only where it is
    fig.suptitle("Top-1 accuracy (%), train x test (native policy"
                 + (f"; {SEEN_MARK}: a size the checkpoint trained at)" if marked else ")"), fontsize=10)
    return fig


def alpha_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Native cells whose bandlimit is an alpha (a number, or "on" at the trained alpha, or "off"), for the
    checkpoints swept at two or more alphas; with a column `x`: the alpha, or OFF_X for "off"."""
    ok = native_cells(df)
    ok = ok[~ok["bandlimit"].isin(["none", "adaptive"])].copy()
    alpha = pd.to_numeric(ok["alpha"], errors="coerce") if "alpha" in ok else pd.Series(float("nan"), ok.index)
    ok["x"] = pd.to_numeric(ok["bandlimit"], errors="coerce").fillna(alpha)  # an alpha setting, or "on"'s
    ok.loc[ok["bandlimit"] == "off", "x"] = OFF_X
    ok = ok.dropna(subset=["x"])
    alphas = ok[ok["x"] != OFF_X].groupby("checkpoint")["x"].nunique()
    return ok[ok["checkpoint"].isin(alphas[alphas >= 2].index)]


OFF_X = 1.15  # where "off" (no mask) sits on the alpha axis, right of alpha 1 (the training grid's Nyquist)


def accuracy_vs_alpha(cells: pd.DataFrame):
    """One panel per checkpoint: accuracy against the bandlimit alpha, a line per test size (native policy)."""
    names = sorted(cells["checkpoint"].unique())
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.2), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        part = cells[cells["checkpoint"] == name]
        sizes = sorted(part["test_res"].unique(), key=size_key)
        colors = plt.cm.viridis(np.linspace(0, 0.9, max(1, len(sizes))))
        for color, size in zip(colors, sizes):
            g = part[part["test_res"] == size].sort_values("x")
            ax.plot(g["x"], 100 * g["accuracy"], "-o", ms=3, color=color, label=f"test {size}")
        trained = pd.to_numeric(part.loc[part["bandlimit"] == "on", "alpha"], errors="coerce").dropna()
        if len(trained):
            ax.axvline(float(trained.iloc[0]), color="0.5", lw=0.8, ls=":")
        ticks = sorted(set(part["x"]))
        ax.set_xticks(ticks, ["off" if t == OFF_X else f"{t:g}" for t in ticks], fontsize=8)
        ax.set_title(f"{name} (trained at {part['train_res'].iloc[0]})", fontsize=9)
        ax.set_xlabel("bandlimit alpha (1: the training grid's Nyquist)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("top-1 accuracy (%)")
    fig.suptitle("Accuracy vs bandlimit alpha at each test size (native policy; dotted: the trained alpha)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def reliability_diagram(panels: dict[str, list[tuple[str, pd.DataFrame, float]]]):
    """One panel per checkpoint: per test size, accuracy against mean confidence in each confidence bin
    (persample.reliability_bins), the diagonal being perfect calibration; the legend gives each size's ECE."""
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.6 * max(1, len(panels)), 4.6), squeeze=False)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="perfect calibration")
        for size, bins, error in curves:
            ax.plot(bins["confidence"], bins["accuracy"], marker="o", ms=3, label=f"test {size}: ECE {100 * error:.1f}%")
        ax.set_title(name)
        ax.set_xlabel("confidence (predicted class probability)")
        ax.set_ylabel("accuracy in the bin")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def save_figure(fig, base: Path, formats: list[str]) -> list[str]:
    written = []
    for ext in ("png", "svg"):
        if ext in formats or (ext == "png" and "md" in formats):  # the markdown links PNGs
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=130, bbox_inches="tight")
            atomic_write_bytes(base.with_name(f"{base.name}.{ext}"), buf.getvalue())
            written.append(f"{base.name}.{ext}")
    return written
