"""Figures of a resolution study, each derived from the results frame (or a kernel analysis)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display on CPU servers and CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from resbench.resolution import format_size, parse_size, size_key  # noqa: E402

__all__ = ["accuracy_vs_test_res", "clip_axes_figure", "clip_heatmaps", "train_test_heatmaps", "kernel_figure",
           "aliasing_figure", "side", "SEEN_MARK",
           "seen_in_training", "reference_setting", "alpha_cells", "accuracy_vs_alpha", "reliability_diagram"]

STYLE = {"on": "-", "none": "-", "off": "--", "adaptive": "-."}
HEATMAP_PANELS_PER_ROW = 3  # six models make a 3 x 2 grid instead of one strip
HEATMAP_MAX_WIDTH = 15.0  # inches: wide panels (many test sizes) take fewer per row


def side(size: str) -> float:
    """Plot position of a size label: the geometric mean of its sides ('28x20' -> ~23.7, '28' -> 28, a
    signal's '8000' -> 8000, '8x14x14' -> ~11.6)."""
    sides = size_key(size, 1)[1:]  # a bare number is one side, whatever the axes
    return float(np.prod(np.asarray(sides, dtype=float)) ** (1 / len(sides)))


def _size_text(size) -> str:
    """A size as the figures write it: 14x14, 28x20, 8000, 8x14x14."""
    return f"{size[0]}x{size[1]}" if len(size) == 2 else format_size(size)


def _native_or_reference(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["error"] == "") & (df["policy"] == "native")]


def checkpoint_colors(names) -> dict:
    """A distinct colour per checkpoint name: tab10 up to 10 names, tab20 beyond (no two share one up to 20)."""
    names = sorted(names)
    cmap, n = (plt.cm.tab10, 10) if len(names) <= 10 else (plt.cm.tab20, 20)
    return {name: cmap(i % n) for i, name in enumerate(names)}


SEEN_MARK = "\u2020"  # dagger: the test size is one the checkpoint trained at (its schedule), not zero-shot


def seen_in_training(frame: pd.DataFrame) -> pd.Series:
    """The rows' seen_in_training flags as booleans (False for rows logged before the column existed)."""
    if "seen_in_training" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["seen_in_training"].astype(str).str.strip().str.lower().isin(["true", "1", "1.0"])


def reference_setting(frame: pd.DataFrame) -> pd.Series:
    """Rows of each checkpoint's reference bandlimit setting: "on" (trained with the mask), "none" (no
    bandlimit), else "off" (an S4ND checkpoint trained without the mask has only that)."""
    settings = frame.groupby("checkpoint")["bandlimit"].agg(set)
    pick = {c: next((b for b in ("on", "none", "off") if b in s), None) for c, s in settings.items()}
    return frame["bandlimit"] == frame["checkpoint"].map(pick)


def _accuracy_lines(ax, cells: pd.DataFrame, colors: dict, train: str | None = None) -> None:
    """A line per checkpoint, policy and bandlimit setting of `cells` (accuracy against their column `x`) with
    its 95% CI band, one legend entry per checkpoint (its colour; the line styles are in the figure's title).
    With `train`, sizes other than it that the checkpoint trained at get an open square (not zero-shot)."""
    labelled = set()
    for (ckpt, policy, bl), g in cells.groupby(["checkpoint", "policy", "bandlimit"], sort=True):
        g = g.sort_values("x")
        style = ":" if policy == "resize-input" else STYLE.get(bl, "-.")
        ax.plot(g["x"], 100 * g["accuracy"], style, marker="o", ms=3, color=colors[ckpt],
                label=None if ckpt in labelled else ckpt)
        labelled.add(ckpt)
        ax.fill_between(g["x"], 100 * g["ci_low"], 100 * g["ci_high"], color=colors[ckpt], alpha=0.12, lw=0)
        if train is not None:
            seen = g[seen_in_training(g) & (g["test_res"] != train)]  # not zero-shot: the schedule trained there
            ax.plot(seen["x"], 100 * seen["accuracy"], "s", ms=8, mfc="none", color=colors[ckpt])


def accuracy_vs_test_res(df: pd.DataFrame, xlabel: str = "test resolution (side, px)"):
    """One panel per training size; a line per checkpoint; bandlimit on solid, off dashed; 95% CI bands.

    Images and signals (xlabel "test length (samples)"); clips have clip_axes_figure."""
    ok = df[df["error"] == ""]
    trains = sorted(ok["train_res"].unique(), key=size_key)
    fig, axes = plt.subplots(1, max(1, len(trains)), figsize=(5.2 * max(1, len(trains)), 5.0), squeeze=False,
                             sharey=True)
    colors = checkpoint_colors(ok["checkpoint"].unique())
    for ax, train in zip(axes[0], trains):
        part = ok[ok["train_res"] == train]
        _accuracy_lines(ax, part.assign(x=part["test_res"].map(side)), colors, train)
        ax.axvline(side(train), color="0.5", lw=0.8)
        ax.set_title(f"trained at {train}")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    axes[0][0].set_ylabel("top-1 accuracy (%)")
    fig.suptitle("Accuracy vs test resolution (solid: bandlimit on or none, dashed: off, dash-dot: adaptive, "
                 "dotted: resize-input; open square: a size the checkpoint trained at, not zero-shot)", fontsize=9)
    fig.tight_layout()
    return fig


def _clip_sides(size: str) -> tuple[int, int, int]:
    return parse_size(size, 3)


def clip_axes_figure(df: pd.DataFrame):
    """Clips: per training size, accuracy against the frame count at the training frame size (frame rate
    alone) and against the frame size at the training frame count (size alone); a line per checkpoint,
    policy and bandlimit setting; 95% CI bands."""
    ok = df[df["error"] == ""]
    trains = sorted(ok["train_res"].unique(), key=lambda t: size_key(t, 3))
    fig, axes = plt.subplots(len(trains), 2, figsize=(10.4, 4.4 * max(1, len(trains))), squeeze=False, sharey=True)
    colors = checkpoint_colors(ok["checkpoint"].unique())
    for row, train in enumerate(trains):
        t0, h0, w0 = _clip_sides(train)
        part = ok[ok["train_res"] == train]
        sides = np.array([_clip_sides(s) for s in part["test_res"]]).reshape(-1, 3)  # (cells, 3)
        along = {"frames": (sides[:, 1] == h0) & (sides[:, 2] == w0), "size": sides[:, 0] == t0}
        for ax, (what, keep) in zip(axes[row], along.items()):
            cells = part[keep].assign(x=sides[keep][:, 0] if what == "frames" else np.sqrt(sides[keep][:, 1] *
                                                                                         sides[keep][:, 2]))
            _accuracy_lines(ax, cells, colors)
            ax.axvline(t0 if what == "frames" else np.sqrt(h0 * w0), color="0.5", lw=0.8)
            ax.set_xscale("log", base=2)
            ticks = sorted(set(cells["x"]))
            ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
            ax.minorticks_off()
            ax.set_xlabel(f"test frames (frame size {h0}x{w0}: frame rate alone)" if what == "frames" else
                          f"test frame side (px; {t0} frames: frame size alone)")
            ax.set_title(f"trained at {train}", fontsize=9)
            ax.grid(alpha=0.3)
            if len(cells):
                ax.legend(fontsize=7)
            else:
                ax.text(0.5, 0.5, "no cell changes the " + ("frame count" if what == "frames" else "frame size")
                        + " alone", transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.4")
        axes[row][0].set_ylabel("top-1 accuracy (%)")
    fig.suptitle("Clips: accuracy vs frame rate and vs frame size, each changed alone (solid: bandlimit on or none, "
                 "dashed: off, dash-dot: adaptive, dotted: resize-input)", fontsize=9)
    fig.tight_layout()
    return fig


def clip_heatmaps(df: pd.DataFrame):
    """Clips: per checkpoint, native accuracy at its reference bandlimit setting on a frames x frame size grid."""
    ok = _native_or_reference(df)
    ok = ok[reference_setting(ok)]
    names = sorted(ok["checkpoint"].unique())
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(max(8.0, 4.6 * len(names)), 4.2), squeeze=False)
    image = None
    for ax, name in zip(axes[0], names):
        part = ok[ok["checkpoint"] == name]
        sides = [_clip_sides(s) for s in part["test_res"]]
        frames = sorted({t for t, _, _ in sides})
        sizes = sorted({(h, w) for _, h, w in sides}, key=lambda s: s[0] * s[1])
        grid = np.full((len(frames), len(sizes)), np.nan)  # (frames, frame sizes) accuracy in %
        for (t, h, w), acc in zip(sides, part["accuracy"]):
            grid[frames.index(t), sizes.index((h, w))] = 100 * acc
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto", origin="lower")
        for i, j in np.ndindex(grid.shape):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] < 60 else "black")
        ax.set_xticks(range(len(sizes)), [f"{h}x{w}" for h, w in sizes], fontsize=8)
        ax.set_yticks(range(len(frames)), [str(t) for t in frames], fontsize=8)
        ax.set_xlabel("frame size")
        ax.set_ylabel("frames")
        ax.set_title(f"{name} (trained at {part['train_res'].iloc[0]})", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="top-1 accuracy (%)")
    fig.suptitle("Clips: native accuracy, frames x frame size (reference bandlimit setting)", fontsize=9)
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


def alpha_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Native cells whose bandlimit is an alpha (a number, or "on" at the trained alpha, or "off"), for the
    checkpoints swept at two or more alphas; with a column `x`: the alpha, or OFF_X for "off"."""
    ok = _native_or_reference(df)
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


def train_test_heatmaps(df: pd.DataFrame):
    """A train x test accuracy table per model (native policy; bandlimit on where the checkpoint trained with it).

    Panels fill a grid (at most HEATMAP_PANELS_PER_ROW a row) that shares one colour bar.
    """
    ok = _native_or_reference(df)
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
    fig.suptitle(f"Top-1 accuracy (%), train x test (native policy; {SEEN_MARK}: a size the checkpoint trained at)",
                 fontsize=10)
    return fig


def kernel_figure(ckpt, test_sizes, spectra, taps_fn):
    """Per S4ND layer: resampled taps (axis 0, channel 0) and the magnitude spectrum with test Nyquists.

    Axis 0 is an image's height, a signal's time and a clip's time (frames): the temporal kernels of clips.
    """
    layers = list(dict.fromkeys(s.layer for s in spectra))  # module order: taps_fn takes the index in it
    fig, axes = plt.subplots(len(layers), 2, figsize=(10, 2.6 * len(layers)), squeeze=False)
    train = ckpt.train_res
    unit = {1: "sample", 2: "pixel", 3: "frame"}[len(train)]  # what one training step of axis 0 is
    axis_name = {1: "time", 2: "axis 0", 3: "time (axis 0)"}[len(train)]
    for row, name in enumerate(layers):
        ax_k, ax_f = axes[row]
        if taps_fn is not None:
            for j, size in enumerate(test_sizes):
                below = size[0] < train[0]  # axis 0, the one drawn: adaptive differs from "on" only below training
                for bl in ("on", "off", "adaptive") if below else ("on", "off"):
                    pos, k = taps_fn(size, row, bl)
                    ax_k.plot(pos, k, STYLE[bl], color=plt.cm.viridis(j / max(1, len(test_sizes) - 1)), lw=1,
                              marker=".", ms=2, label=f"test {format_size(size)}, bandlimit {bl}")
            ax_k.set_xlabel(f"position (training {unit}s)")
            ax_k.set_ylabel(f"tap value (per training {unit})")
            ax_k.set_title(f"{name}: causal kernel, {axis_name}, channel 0", fontsize=8)
            if row == 0:
                ax_k.legend(fontsize=6)
        else:
            ax_k.axis("off")
        colour = {tuple(size): plt.cm.viridis(j / max(1, len(test_sizes) - 1)) for j, size in enumerate(test_sizes)}
        for sp in [s for s in spectra if s.layer == name and s.axis == 0]:
            if sp.group == "backward":
                continue
            norm = sp.energy / sp.energy.max()
            if sp.test_res is None:
                ax_f.semilogy(sp.freqs, norm + 1e-12, STYLE.get(sp.bandlimit, "-"), lw=1, color="0.2" if
                              sp.bandlimit != "off" else "0.55", label=f"bandlimit {sp.bandlimit}")
            else:  # adaptive: its own spectrum at each test size below training, in that size's colour
                ax_f.semilogy(sp.freqs, norm + 1e-12, STYLE["adaptive"], lw=1,
                              color=colour.get(parse_size(sp.test_res, len(train)), "C3"),
                              label=f"adaptive at {sp.test_res}")
        for j, size in enumerate(test_sizes):
            ax_f.axvline(0.5 * size[0] / train[0], color=plt.cm.viridis(j / max(1, len(test_sizes) - 1)), lw=0.8)
            # x in data, y in axes fraction: the label hangs from the top inside the axes, clear of the title
            ax_f.text(0.5 * size[0] / train[0], 0.97, f"Nyq {size[0]}", rotation=90, fontsize=7, va="top",
                      ha="right", transform=ax_f.get_xaxis_transform())
        ax_f.set_xlim(0, max(1.0, 0.75 * max(s[0] for s in test_sizes) / train[0]))
        ax_f.set_ylim(1e-8, 10)
        ax_f.set_xlabel(f"frequency (cycles per training {unit})")
        ax_f.set_ylabel("normalised energy")
        ax_f.set_title(f"{name}: energy spectrum, {axis_name} (vertical: Nyquist of each test grid; dash-dot: "
                       "adaptive)", fontsize=8)
        if row == 0:
            ax_f.legend(fontsize=6)
    fig.suptitle(f"{ckpt.name}: continuous kernels resampled at {', '.join(_size_text(s) for s in test_sizes)}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def aliasing_figure(table: pd.DataFrame):
    """Mean aliasing fraction over layers, axes and groups vs test size; one line per checkpoint and bandlimit.

    Clips get a line per axis (time, height, width): their test sizes change frame rate and frame size apart,
    so the sizes are placed in order along x, each labelled.
    """
    clips = "dims" in table and (table["dims"] == 3).any()
    fig, ax = plt.subplots(figsize=(7 if clips else 6, 4))
    keys = ["checkpoint", "bandlimit"] + (["axis"] if clips else [])
    order = sorted(table["test_res"].unique(), key=lambda t: size_key(t, 1))
    for key, g in table.groupby(keys, sort=True):
        ckpt, bl = key[:2]
        m = g.groupby("test_res")["aliasing"].mean().reset_index()
        m = m.assign(x=m["test_res"].map(order.index if clips else side)).sort_values("x")
        untrained = " (mask removed: untrained modes)" if "untrained_modes" in g and g["untrained_modes"].any() else ""
        along = f", {('time', 'height', 'width')[key[2]]}" if clips else ""
        ax.plot(m["x"], m["aliasing"], STYLE.get(bl, "-"), marker="o", ms=3,
                label=f"{ckpt}, bandlimit {bl}{along}{untrained}")
    if clips:
        ax.set_xticks(range(len(order)), order, rotation=45, fontsize=7)
    ax.set_xlabel("test size (frames x height x width)" if clips else "test resolution (side, px)"
                  if not ("dims" in table and (table["dims"] == 1).all()) else "test length (samples)")
    ax.set_ylabel("kernel energy above min(test, train) Nyquist")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Aliasing of the continuous kernels at each test grid", fontsize=9)
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
