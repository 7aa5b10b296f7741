"""`resbench info`: describe one checkpoint as a table or as JSON."""

from __future__ import annotations

import json

import click

from resbench.cli._common import Command, console

__all__ = ["info_cmd"]


@click.command("info", cls=Command)
@click.argument("checkpoint", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info_cmd(checkpoint, as_json):
    """Describe a checkpoint: model, config, provenance, parameters, sha256, policies.

    \b
    Example:
      resbench info checkpoints/s4nd_iso_14.pt
    """
    from resbench.checkpoints import describe, load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    info = describe(ckpt)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    from rich.table import Table

    table = Table(title=str(ckpt.path), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")  # fold, not "…": the sha256 must stay whole in 80 columns
    for key in ("model", "parameters", "sha256", "has_bandlimit"):
        table.add_row(key, f"{info[key]:,}" if key == "parameters" else str(info[key]))
    for key, value in info["policies"].items():
        table.add_row(f"policy {key}", value)
    for key, value in ckpt.config.items():
        table.add_row(f"config.{key}", str(value))
    for key, value in ckpt.provenance.items():
        table.add_row(f"provenance.{key}", json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    console().print(table)

