"""`resbench train`: train one model and write a self-describing checkpoint."""

from __future__ import annotations

import json

import click

from resbench.cli._common import Command, flushing
from resbench.errors import ResbenchError

__all__ = ["train_cmd", "parse_overrides"]


def parse_overrides(items) -> dict:
    """('d_model=128', 'dropout=0.1') -> {'d_model': 128, 'dropout': 0.1}; values parsed as JSON when they can be."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ResbenchError(f"--set {item!r}: expected KEY=VALUE, for example --set d_model=128")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@click.command("train", cls=Command)
@click.argument("model")
@click.option("--dataset", default="fashion-mnist", show_default=True,
              help="Training dataset: one of resbench.data.DATASETS (docs/datasets.md).")
@click.option("--data-dir", default=None, help="Folder of the dataset files (default: the dataset's usual place).")
@click.option("--train-res", default=None, help="Train at this size for --epochs epochs: 14 or 28x20 (images), "
              "8000 (a signal's length), 8x14x14 (clips: frames x height x width).")
@click.option("--epochs", default=None, type=int, help="Epochs at --train-res (default 3).")
@click.option("--schedule", default=None, help="Progressive resizing SIZE:EPOCHS,... e.g. 7:2,14:1,28:1 "
              "(clips: 4x14x14:1,8x14x14:2).")
@click.option("--bandlimit", default=None, help="S4ND bandlimit alpha, or 'off' (default: the model's).")
@click.option("--mask", default=None, type=click.Choice(["band", "random"]),
              help="S4ND mask at --bandlimit: band (the modes below alpha/2 cycles per step; the default) or random "
              "(the control arm: as many modes per channel, chosen at random by the seed and kept in the checkpoint).")
@click.option("--multiscale", default=None, help="Multi-scale training: each batch at a size drawn at random from "
              "these, e.g. 4,5,6,7 with --train-res 7 (the model's training size in sweeps, one of them).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seeds the weights, the data order and any random mask.")
@click.option("--batch-size", default=64, show_default=True, type=int, help="Training images per step.")
@click.option("--lr", default=5e-3, show_default=True, type=float, help="AdamW learning rate.")
@click.option("--ssm-lr", default=1e-3, show_default=True, type=float,
              help="Learning rate of the S4ND state-space parameters (no weight decay on them).")
@click.option("--weight-decay", default=0.05, show_default=True, type=float, help="AdamW weight decay.")
@click.option("--set", "overrides", multiple=True, help="Model config field KEY=VALUE (repeatable).")
@click.option("--limit", default=None, type=int, help="Use only the first N training images.")
@click.option("--test-limit", default=None, type=int, help="Final test on the first N test images only.")
@click.option("--device", default="auto", show_default=True,
              help="auto (the first GPU if any, else the CPU), cpu, cuda, cuda:N or mps.")
@click.option("--resume", is_flag=True, help="Continue from OUT.state if a killed run left one.")
@click.option("--quiet", is_flag=True, help="No progress bar and no line per epoch.")
@click.option("-o", "--out", required=True, type=click.Path(), help="Checkpoint file to write.")
@flushing
def train_cmd(model, dataset, data_dir, train_res, epochs, schedule, bandlimit, mask, multiscale, seed, batch_size, lr,
              ssm_lr, weight_decay, overrides, limit, test_limit, device, resume, quiet, out):
    """Train MODEL and write a self-describing checkpoint.

    \b
    Examples:
      resbench train s4nd_iso --train-res 14 --epochs 3 --bandlimit 0.5 -o checkpoints/s4nd_iso_14.pt
      resbench train s4nd_iso --schedule 7:2,14:1,28:1 -o checkpoints/s4nd_iso_prog28.pt
    """
    from resbench.resolution import format_size
    from resbench.train import train, train_config

    cfg = train_config(model, train_res=train_res, epochs=epochs, schedule=schedule, bandlimit=bandlimit,
                       mask=mask, multiscale=multiscale, model_overrides=parse_overrides(overrides), dataset=dataset,
                       data_dir=data_dir,
                       batch_size=batch_size, lr=lr, ssm_lr=ssm_lr, weight_decay=weight_decay, seed=seed,
                       limit=limit, test_limit=test_limit, device=device)
    ckpt = train(cfg, out, resume=resume, quiet=quiet)
    prov = ckpt.provenance
    epochs_done = f"{prov['epochs']} epoch{'' if prov['epochs'] == 1 else 's'}"
    click.echo(f"wrote {out}: native accuracy {prov['native_accuracy']:.4f} at {format_size(ckpt.train_res)} "
               f"on {prov['native_test_n']} test images after {epochs_done} (training {prov['train_time_s']:.0f} s, "
               f"final test {prov['test_time_s']:.0f} s, {prov['wall_time_s']:.0f} s in all)")

