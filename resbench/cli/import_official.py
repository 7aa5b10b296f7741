"""`resbench import-official`: convert a checkpoint of the official S4ND code into a resbench checkpoint."""

from __future__ import annotations

import click

from resbench.cli._common import Command, floats

__all__ = ["import_official_cmd"]


@click.command("import-official", cls=Command)
@click.argument("source", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(), help="The resbench checkpoint to write (.pt).")
@click.option("--train-res", default=None, help="Training size (e.g. 16 or 16x12); default: the official "
              "loader.img_size / loader.train_resolution.")
@click.option("--dataset", default=None, help="resbench dataset to test it on (default: the official dataset's).")
@click.option("--mean", default=None, help="Input normalisation mean per channel, e.g. 0.48 or 0.49,0.48,0.45 "
              "(default: what the official dataloader of that dataset uses).")
@click.option("--std", default=None, help="Input normalisation std per channel (with --mean).")
def import_official_cmd(source, out, train_res, dataset, mean, std):
    """Convert a checkpoint of the official S4ND code (state-spaces/s4) into a resbench checkpoint.

    Reads Lightning checkpoints (their omegaconf config included) and plain state-dict files without
    running code; `resbench sweep` also takes such files directly.

    \b
    Example:
      resbench import-official last.ckpt -o checkpoints/official_s4nd.pt
    """
    from resbench.checkpoints import import_official
    from resbench.resolution import parse_size

    size = None
    if train_res is not None:
        size = list(parse_size(train_res))
    ckpt = import_official(source, out, size, dataset,
                           None if mean is None else floats(mean, "--mean"),
                           None if std is None else floats(std, "--std"))
    official = ckpt.provenance["official"]
    if ckpt.model.startswith("s4nd_official_convnext"):
        from resbench.checkpoints.official_convnext import summary

        click.echo(f"wrote {out}: {summary(ckpt)}")
        return
    click.echo(f"wrote {out}: s4nd_official, {ckpt.config['n_layers']} layers, d_model {ckpt.config['d_model']}, "
               f"kernel {ckpt.config['layer'].get('kernel') or ckpt.config['layer'].get('mode') or 'dplr'}, "
               f"trained at {ckpt.provenance['train_res']} (official rate {official['train_rate']:g}), "
               f"dataset {ckpt.provenance['dataset']}")

