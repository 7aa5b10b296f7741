"""Figures of a checkpoint's continuous kernels: resampled taps, energy spectra against each test grid's
Nyquist, and the aliasing fraction at each test size."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from resbench.report.figures import STYLE, side
from resbench.resolution import format_size, parse_size, size_key

__all__ = ["kernel_figure", "aliasing_figure"]


def _size_text(size) -> str:
    """A size as the figures write it: 14x14, 28x20, 8000, 8x14x14."""
    return f"{size[0]}x{size[1]}" if len(size) == 2 else format_size(size)


def _size_colour(j: int, test_sizes) -> tuple:
    """The colour of the j-th test size: viridis from the first to the last."""
    return plt.cm.viridis(j / max(1, len(test_sizes) - 1))


def _taps_panel(ax, name: str, row: int, train, test_sizes, taps_fn, unit: str, axis_name: str) -> None:
    """One layer's resampled taps at each test size and bandlimit setting (axis 0, channel 0)."""
    for j, size in enumerate(test_sizes):
        below = size[0] < train[0]  # axis 0, the one drawn: adaptive differs from "on" only below training
        for bl in ("on", "off", "adaptive") if below else ("on", "off"):
            pos, k = taps_fn(size, row, bl)
            ax.plot(pos, k, STYLE[bl], color=_size_colour(j, test_sizes), lw=1,
                    marker=".", ms=2, label=f"test {format_size(size)}, bandlimit {bl}")
    ax.set_xlabel(f"position (training {unit}s)")
    ax.set_ylabel(f"tap value (per training {unit})")
    ax.set_title(f"{name}: causal kernel, {axis_name}, channel 0", fontsize=8)
    if row == 0:
        ax.legend(fontsize=6)


def _spectrum_panel(ax, name: str, row: int, train, test_sizes, spectra, unit: str, axis_name: str) -> None:
    """One layer's energy spectra along axis 0, with the Nyquist of each test grid."""
    colour = {tuple(size): _size_colour(j, test_sizes) for j, size in enumerate(test_sizes)}
    for sp in [s for s in spectra if s.layer == name and s.axis == 0]:
        if sp.group == "backward":
            continue
        norm = sp.energy / sp.energy.max()
        if sp.test_res is None:
            ax.semilogy(sp.freqs, norm + 1e-12, STYLE.get(sp.bandlimit, "-"), lw=1, color="0.2" if
                        sp.bandlimit != "off" else "0.55", label=f"bandlimit {sp.bandlimit}")
        else:  # adaptive: its own spectrum at each test size below training, in that size's colour
            ax.semilogy(sp.freqs, norm + 1e-12, STYLE["adaptive"], lw=1,
                        color=colour.get(parse_size(sp.test_res, len(train)), "C3"),
                        label=f"adaptive at {sp.test_res}")
    for j, size in enumerate(test_sizes):
        ax.axvline(0.5 * size[0] / train[0], color=_size_colour(j, test_sizes), lw=0.8)
        # x in data, y in axes fraction: the label hangs from the top inside the axes, clear of the title
        ax.text(0.5 * size[0] / train[0], 0.97, f"Nyq {size[0]}", rotation=90, fontsize=7, va="top",
                ha="right", transform=ax.get_xaxis_transform())
    ax.set_xlim(0, max(1.0, 0.75 * max(s[0] for s in test_sizes) / train[0]))
    ax.set_ylim(1e-8, 10)
    ax.set_xlabel(f"frequency (cycles per training {unit})")
    ax.set_ylabel("normalised energy")
    ax.set_title(f"{name}: energy spectrum, {axis_name} (vertical: Nyquist of each test grid; dash-dot: "
                 "adaptive)", fontsize=8)
    if row == 0:
        ax.legend(fontsize=6)


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
            _taps_panel(ax_k, name, row, train, test_sizes, taps_fn, unit, axis_name)
        else:
            ax_k.axis("off")
        _spectrum_panel(ax_f, name, row, train, test_sizes, spectra, unit, axis_name)
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
