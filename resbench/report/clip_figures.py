"""Figures of clips (frames x height x width): accuracy along frame rate and frame size apart, and heatmaps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from resbench.report.figures import accuracy_lines, checkpoint_colors, native_cells
from resbench.report.load import reference_setting
from resbench.resolution import parse_size, size_key

__all__ = ["clip_axes_figure", "clip_heatmaps"]


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
            accuracy_lines(ax, cells, colors)
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
    ok = native_cells(df)
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
