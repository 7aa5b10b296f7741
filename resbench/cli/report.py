"""`resbench report`: write the report of one or more sweep folders in each format asked for."""

from __future__ import annotations

import click

from resbench.cli._common import Command, flushing, split_list

__all__ = ["report_cmd", "step_lines"]


def step_lines(command: str):
    """A `say` for long commands: '[HH:MM:SS] COMMAND: STEP' on stderr, a line each (a terminal and a log alike)."""
    from datetime import datetime

    def say(step: str) -> None:
        click.echo(f"[{datetime.now().strftime('%H:%M:%S')}] {command}: {step}", err=True)
    return say


@click.command("report", cls=Command)
@click.argument("sweeps", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(),
              help="A folder (existing, or ending in /): writes NAME.md, NAME.pdf and the figures in it, NAME being "
                   "the sweep folder's name (report for several); or OUT/NAME for another name.")
@click.option("--format", "formats", default="md,pdf,png,svg", show_default=True, help="What to write.")
@click.option("--kernels", default=None, type=click.Path(), help="Add kernel spectra and aliasing of this checkpoint.")
@click.option("--reliability", default=None, metavar="NAME,NAME",
              help="Checkpoints of the reliability diagram (default: an s4nd_iso and a conv2d_iso trained at the "
                   "same size); needs a sweep run with --log-samples.")
@click.option("--device", default="auto", show_default=True,
              help="Where --kernels is analysed: auto, cpu, cuda, cuda:N or mps.")
@click.option("--quiet", is_flag=True, help="No line per step (a study's report takes a minute or two).")
@flushing
def report_cmd(sweeps, out, formats, kernels, reliability, device, quiet):
    """Write a markdown + PDF report (figures as PNG/SVG; LaTeX and HTML on request) from one or more sweep folders.

    \b
    Examples:
      resbench report results/demo -o reports/ --kernels checkpoints/s4nd_iso_7.pt
      resbench report results/study -o reports/ --format md,pdf,png,tex,html --reliability s4nd_iso_14,conv2d_iso_14
      resbench report results/a results/b -o reports/both/ab
    """
    from resbench.report import parse_formats, write_report
    from resbench.report.target import report_target

    names = split_list(reliability, "--reliability") if reliability else None
    target = report_target(out, sweeps)
    result = write_report(list(sweeps), target, parse_formats(formats), kernels=kernels, kernel_device=device,
                          reliability=names, say=None if quiet else step_lines("report"))
    if result["missing"]:
        click.echo(f"note: {len(result['missing'])} planned cells have no result (listed in the report)", err=True)
    click.echo(f"wrote {', '.join(result['written'])} in {target.parent}")

