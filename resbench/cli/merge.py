"""`resbench merge`: join sweep folders into one."""

from __future__ import annotations

import click

from resbench.cli._common import Command

__all__ = ["merge_cmd"]


@click.command("merge", cls=Command)
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(), help="Folder to merge into.")
def merge_cmd(sources, out):
    """Join sweep folders (for example shards run on other machines) into one.

    \b
    Example:
      resbench merge results/part1 results/part2 -o results/all
    """
    from resbench.store import merge_sweeps

    df = merge_sweeps(list(sources), out)
    click.echo(f"{len(df)} cells in {out}/results.csv")

