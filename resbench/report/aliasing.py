"""The kernels' side of a report: a checkpoint's continuous kernels and their aliasing at each test grid, and the
kernel metrics of every swept zero-shot cell beside its accuracy drop (judged in report.metric_order)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from resbench.device import resolve_device
from resbench.errors import ResbenchError
from resbench.report.figures import save_figure
from resbench.report.kernel_figures import aliasing_figure, kernel_figure
from resbench.report.load import SweptFiles, reference_setting, seen_in_training
from resbench.resolution import default_test_sizes, fit_sizes, parse_size, size_key, sort_sizes
from resbench.store import atomic_write_bytes, csv_bytes

__all__ = ["ALIASING_TITLE", "kernel_analysis", "write_kernel_plots", "aliasing_drop_cells", "aliasing_summary"]


ALIASING_TITLE = ("Kernel aliasing (fraction of spectral energy above the Nyquist of the coarser of the test and "
                  "training grids)")


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
                         "bandlimit": r.bandlimit, "dims": ckpt.dims,
                         "drop": 100 * (float(base.iloc[0]) - r.accuracy), **m.to_dict()})
    return pd.DataFrame(rows)


def aliasing_summary(aliasing: pd.DataFrame) -> pd.DataFrame:
    """Mean aliasing per (test size, bandlimit); sizes by pixels, not as text."""
    summary = aliasing.groupby(["test_res", "bandlimit"])["aliasing"].mean().reset_index()
    order = sorted(range(len(summary)), key=lambda i: (size_key(summary["test_res"][i]), summary["bandlimit"][i]))
    return summary.iloc[order].reset_index(drop=True)
