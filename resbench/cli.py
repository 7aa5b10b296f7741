"""The `resbench` command line: parse options, call one library function, print with rich."""

from __future__ import annotations

import json
import sys

import click

from resbench.errors import ResbenchError

__all__ = ["cli", "main"]


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="resbench")
def cli():
    """Zero-shot resolution robustness of S4ND and baseline models.

    \b
    Example:
      resbench sweep checkpoints/ -o results/ && resbench report results/ -o reports/demo
    """


@cli.command("models")
def models_cmd():
    """List the model registry: each model's resolution policies and parameter count.

    \b
    Example:
      resbench models
    """
    from rich.table import Table

    from resbench.models import count_params, create_model, list_models

    table = Table(title="resbench models (defaults: 1 channel, 10 classes, trained at 14)")
    for col in ("model", "parameters", "bandlimit", "policies"):
        table.add_column(col)
    for name in list_models():
        model = create_model(name, train_res=14)
        policies = "\n".join(f"{k}: {v}" for k, v in model.POLICIES.items())
        table.add_row(name, f"{count_params(model):,}", "yes" if model.has_bandlimit else "-", policies)
    _console().print(table)


@cli.command("info")
@click.argument("checkpoint", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info_cmd(checkpoint, as_json):
    """Describe a checkpoint: model, config, provenance, parameters, sha256, policies.

    \b
    Example:
      resbench info checkpoints/s4nd_iso_14.pt
    """
    from resbench.checkpoints import load_checkpoint
    from resbench.models import count_params

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build_model()
    info = {"checkpoint": str(ckpt.path), "sha256": ckpt.sha256, "model": ckpt.model,
            "parameters": count_params(model), "policies": model.POLICIES,
            "has_bandlimit": model.has_bandlimit, "config": ckpt.config, "provenance": ckpt.provenance,
            "data_stats": ckpt.data_stats}
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    from rich.table import Table

    table = Table(title=str(ckpt.path), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key in ("model", "parameters", "sha256", "has_bandlimit"):
        table.add_row(key, f"{info[key]:,}" if key == "parameters" else str(info[key]))
    for key, value in info["policies"].items():
        table.add_row(f"policy {key}", value)
    for key, value in ckpt.config.items():
        table.add_row(f"config.{key}", str(value))
    for key, value in ckpt.provenance.items():
        table.add_row(f"provenance.{key}", json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    _console().print(table)


def _parse_overrides(items) -> dict:
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


def _parse_bandlimit(text: str | None):
    if text is None:
        return ...
    if text.lower() in ("off", "none"):
        return None
    try:
        alpha = float(text)
    except ValueError:
        alpha = -1.0
    if not alpha > 0:
        raise ResbenchError(f"--bandlimit {text!r}: expected a positive alpha such as 0.5, or 'off'")
    return alpha


@cli.command("train")
@click.argument("model")
@click.option("--dataset", default="fashion-mnist", show_default=True)
@click.option("--data-dir", default=None, help="Folder of the dataset files (default: the dataset's usual place).")
@click.option("--train-res", default=None, type=int, help="Train at this size for --epochs epochs.")
@click.option("--epochs", default=None, type=int, help="Epochs at --train-res (default 3).")
@click.option("--schedule", default=None, help="Progressive resizing SIZE:EPOCHS,... e.g. 7:2,14:1,28:1.")
@click.option("--bandlimit", default=None, help="S4ND bandlimit alpha, or 'off' (default: the model's).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--lr", default=5e-3, show_default=True, type=float)
@click.option("--ssm-lr", default=1e-3, show_default=True, type=float)
@click.option("--weight-decay", default=0.05, show_default=True, type=float)
@click.option("--set", "overrides", multiple=True, help="Model config field KEY=VALUE (repeatable).")
@click.option("--limit", default=None, type=int, help="Use only the first N training images.")
@click.option("--resume", is_flag=True, help="Continue from OUT.state if a killed run left one.")
@click.option("--quiet", is_flag=True)
@click.option("-o", "--out", required=True, type=click.Path(), help="Checkpoint file to write.")
def train_cmd(model, dataset, data_dir, train_res, epochs, schedule, bandlimit, seed, batch_size, lr, ssm_lr,
              weight_decay, overrides, limit, resume, quiet, out):
    """Train MODEL and write a self-describing checkpoint.

    \b
    Examples:
      resbench train s4nd_iso --train-res 14 --epochs 3 --bandlimit 0.5 -o checkpoints/s4nd_iso_14.pt
      resbench train s4nd_iso --schedule 7:2,14:1,28:1 -o checkpoints/s4nd_iso_prog28.pt
    """
    from resbench.models import create_model
    from resbench.train import TrainConfig, parse_schedule, train

    if schedule is not None and (train_res is not None or epochs is not None):
        raise ResbenchError("--schedule: give either --schedule or --train-res/--epochs, not both")
    sched = parse_schedule(schedule) if schedule else parse_schedule(f"{train_res or 14}:{epochs or 3}")
    model_overrides = _parse_overrides(overrides)
    alpha = _parse_bandlimit(bandlimit)
    probe = create_model(model, **model_overrides)  # unknown model or field: user error before any work
    if alpha is not ...:
        if not probe.has_bandlimit:
            raise ResbenchError(f"--bandlimit: model {model!r} has no bandlimit")
        model_overrides["bandlimit"] = alpha
    for name, value in (("--batch-size", batch_size), ("--limit", limit if limit is not None else 1)):
        if value < 1:
            raise ResbenchError(f"{name} {value}: expected a positive number")
    cfg = TrainConfig(model=model, dataset=dataset, data_dir=data_dir, schedule=sched, batch_size=batch_size,
                      lr=lr, ssm_lr=ssm_lr, weight_decay=weight_decay, seed=seed, limit=limit,
                      model_overrides=model_overrides)
    ckpt = train(cfg, out, resume=resume, quiet=quiet)
    prov = ckpt.provenance
    click.echo(f"wrote {out}: native accuracy {prov['native_accuracy']:.4f} at {prov['train_res']} "
               f"after {prov['epochs']} epochs, {prov['wall_time_s']:.0f}s")


def main(argv=None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2; bugs keep their traceback."""
    try:
        cli.main(args=argv, prog_name="resbench", standalone_mode=False)
    except ResbenchError as e:
        click.echo(f"resbench: error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("resbench: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"resbench: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    return 0


if __name__ == "__main__":
    main()
