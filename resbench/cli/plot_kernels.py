"""`resbench plot-kernels`: S4ND / CKConv kernels at each test size, their spectra and aliasing."""

from __future__ import annotations

import click

from resbench.cli._common import Command, flushing

__all__ = ["plot_kernels_cmd"]


@click.command("plot-kernels", cls=Command)
@click.argument("checkpoint", type=click.Path())
@click.option("--test-res", default=None, help="Test sizes whose grids to show (default: 14,28,56 for images; "
              "for signals and clips the sweep's defaults, half to twice the training size per axis).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("-o", "--out", required=True, type=click.Path(), help="Output folder.")
@flushing
def plot_kernels_cmd(checkpoint, test_res, device, out):
    """Plot S4ND / ckconv kernels as resampled at each test size, their spectra and Nyquist limits,
    and write aliasing.csv (energy above each test grid's Nyquist, bandlimit on and off).

    \b
    Example:
      resbench plot-kernels checkpoints/s4nd_iso_7.pt --test-res 7,14,28 -o reports/kernels
    """
    from resbench.report import write_kernel_plots
    from resbench.resolution import parse_size_specs

    sizes = parse_size_specs(test_res) if test_res is not None else None
    written, summary = write_kernel_plots(checkpoint, sizes, out, device)
    click.echo(summary.round(3).to_string())
    click.echo(f"wrote {', '.join(written)} in {out}")

