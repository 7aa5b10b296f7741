"""The `resbench` command line: parse options, call one library function, print with rich."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from resbench.crash import crash_line, write_crash_file
from resbench.errors import ResbenchError
from resbench.runtime import flushed_denormals, keep_freed_memory

__all__ = ["cli", "main"]

_RUN = {"debug": False}  # set by the group's --debug option, read by main() when a command fails


class _Command(click.Command):
    """A command that names every missing required argument and option in one error (click names the first)."""

    def parse_args(self, ctx, args):
        required = [p for p in self.params if p.required]
        for p in required:
            p.required = False
        try:
            rest = super().parse_args(ctx, args)
        finally:
            for p in required:
                p.required = True
        missing = [p for p in required if ctx.params.get(p.name) in (None, ())]
        if missing and not ctx.resilient_parsing:
            names = [p.opts[-1] if isinstance(p, click.Option) else p.human_readable_name for p in missing]
            raise click.UsageError(f"missing {', '.join(names)}", ctx)
        return rest


class _Group(click.Group):
    command_class = _Command


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False)  # names are text, never rich markup


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="resbench")
@click.option("--debug", is_flag=True, help="On an internal error print the traceback instead of writing a crash file.")
def cli(debug):
    """Zero-shot resolution robustness of S4ND and baseline models.

    \b
    Examples (a quick sweep; --dry-run first says how long a sweep takes):
      resbench sweep checkpoints/s4nd_iso_14.pt --test-res 7,14,28 --limit 1000 -o results/quick
      resbench report results/quick -o reports/quick
      resbench sweep checkpoints/ --dry-run -o results/all
    """
    _RUN["debug"] = debug


def _flushing(command):
    """Run a command that trains or evaluates with subnormal floats flushed (runtime.flushed_denormals); set
    per command, not in main, so --help, merge and the user errors never wait for torch's import."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        with flushed_denormals():
            return command(*args, **kwargs)
    return run


@cli.command("models")
def models_cmd():
    """List the model registry: each model's resolution policies and parameter count.

    \b
    Example:
      resbench models
    """
    from rich.table import Table

    from resbench.models import count_params, create_model, list_models

    from resbench.models import model_class

    table = Table(title="resbench models", caption="1 channel, 10 classes, images trained at 14;\n"
                  "inputs: L signals, HxW images, TxHxW clips")
    for col in ("model", "inputs", "parameters", "bandlimit"):
        table.add_column(col, no_wrap=True)
    example = {1: [8000], 2: 14, 3: [8, 14, 14]}  # a training size per input kind (parameters do not depend on it)
    described = {}  # each model's policies, said once below the table (a column of them needs 240 columns)
    for name in list_models():
        dims = model_class(name).DIMS
        try:
            model = create_model(name, train_res=example[2 if 2 in dims else dims[0]])
        except ResbenchError:  # an architecture that needs larger inputs (4-stage ConvNeXts): its own default
            model = create_model(name)
        inputs = " ".join({1: "L", 2: "HxW", 3: "TxHxW"}[d] for d in dims)  # signals, images, clips
        table.add_row(name, inputs, f"{count_params(model):,}", "yes" if model.has_bandlimit else "-")
        for policy, text in model.POLICIES.items():
            described.setdefault((policy, text), []).append(name)
    console = _console()
    console.print(table)
    console.print("resolution policies (sweep --policy):", soft_wrap=False)
    for (policy, text), names in described.items():
        console.print(f"  {policy} ({', '.join(names)}): {text}", markup=False, soft_wrap=False)


@cli.command("info")
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


@cli.command("train")
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
@_flushing
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
                       mask=mask, multiscale=multiscale, model_overrides=_parse_overrides(overrides), dataset=dataset, data_dir=data_dir,
                       batch_size=batch_size, lr=lr, ssm_lr=ssm_lr, weight_decay=weight_decay, seed=seed,
                       limit=limit, test_limit=test_limit, device=device)
    ckpt = train(cfg, out, resume=resume, quiet=quiet)
    prov = ckpt.provenance
    epochs_done = f"{prov['epochs']} epoch{'' if prov['epochs'] == 1 else 's'}"
    click.echo(f"wrote {out}: native accuracy {prov['native_accuracy']:.4f} at {format_size(ckpt.train_res)} "
               f"on {prov['native_test_n']} test images after {epochs_done} (training {prov['train_time_s']:.0f} s, "
               f"final test {prov['test_time_s']:.0f} s, {prov['wall_time_s']:.0f} s in all)")


def _split_list(text: str, option: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",")]
    if not text or any(not t for t in items):
        raise ResbenchError(f"{option} {text!r}: expected a comma-separated list without empty items")
    return items


@cli.command("sweep")
@click.argument("checkpoints", nargs=-1, type=click.Path())
@click.option("--model", "models", multiple=True, metavar="SPEC",
              help="A model from outside resbench (repeatable): timm:NAME (built by timm, weights from --weights) "
              "or package.module:factory (any callable returning an nn.Module).")
@click.option("--weights", default=None, type=click.Path(),
              help="State dict file for the --model options (plain, or under 'state_dict' or 'model').")
@click.option("--train-res", default=None, help="Size the --model options were trained at, e.g. 32 or 32x24 "
              "(required unless the model declares resbench_train_res).")
@click.option("--in-chans", default=None, type=int, help="Input channels of the --model options "
              "(default: declared, else the dataset's).")
@click.option("--num-classes", default=None, type=int, help="Classes of the --model options "
              "(default: declared, else the dataset's for timm, the logits it returns for a factory).")
@click.option("--mean", default=None, help="Normalisation mean per channel for the --model options, e.g. 0.5 or "
              "0.49,0.48,0.45, or a preset for mean and std: imagenet or inception (timm's constants); default: "
              "declared, else the dataset's train-split statistics, with a warning in every row.")
@click.option("--std", default=None, help="Normalisation std per channel for the --model options (with --mean).")
@click.option("--test-res", default=None, help="Test sizes, e.g. 7,14,21,28,35,42,56,28x20 "
              "(default for images: nine sizes from half to twice each training size, rounded to multiples of 16 "
              "from 128 px, 8 from 64, 4 from 16: 224 -> 112,128,160,...,448; 28 -> 14,16,20,...,56).")
@click.option("--kind", default="all", show_default=True,
              help="Sweep only these kinds of model: images, signals (1-d), clips (3-d), or a list like "
                   "signals,clips; one OUT can take one command per kind, each with its own --test-res.")
@click.option("--bandlimit", default="on,off", show_default=True,
              help="Bandlimit settings for S4ND models (and models with resbench_set_bandlimit): on (trained "
              "alpha), off, capped (S4ND below the training size: alpha_eff = min(alpha, test/train) per axis, no "
              "mode above the test grid's Nyquist), adaptive (the older rule: S4ND alpha x test/train, CKConv "
              "taps averaged over each test cell); capped and adaptive cells run only below the training "
              "size; or an alpha.")
@click.option("--policy", default="native,resize-input", show_default=True, help="Resolution policies.")
@click.option("--dataset", default=None, help="Test dataset (default: each checkpoint's own; required with --model).")
@click.option("--data-dir", default=None, help="Folder of the dataset files.")
@click.option("--limit", default=None, type=int, help="Use N test images, the same in every cell and on every "
              "machine: a class-stratified sample drawn with --seed (see --subset).")
@click.option("--subset", default="stratified", show_default=True,
              help="How --limit chooses: stratified (each class in proportion, drawn with --seed) or first (the "
                   "first N in the split's order). Rendered sets draw each sample independently: their first N.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seeds rendered test sets (spoken digits, clips) and the --limit sample.")
@click.option("--reader", default="memory", show_default=True,
              help="Image folders: memory (decoded whole, resized per batch) or stream (decoded per batch by "
                   "--workers processes, each image through timm's eval transform: shorter side to size / crop-pct, "
                   "centre crop; memory does not grow with the split).")
@click.option("--workers", default=None, type=int, help="With --reader stream: loader processes (default: the "
              "cores less one, at most 8; 0: decode in this process).")
@click.option("--crop-pct", default=None, type=float, help="With --reader stream: timm's crop_pct (default 1.0).")
@click.option("--interpolation", default=None, help="With --reader stream: bilinear (default), bicubic, ...")
@click.option("--batch-size", default=None, type=int,
              help="Images a batch, honoured unless memory cannot take it (then lowered, with a line and a note "
                   "in the run record). Default: 256, on the CPU cut to about 25,000 model pixels a batch "
                   "(32 images at 28x28), which keeps activations near the cache.")
@click.option("--shard", default="1/1", show_default=True, help="Run part K of N of the cells.")
@click.option("--device", default="auto", show_default=True,
              help="auto (the first GPU if any, else the CPU), cpu, cuda, cuda:N or mps.")
@click.option("--precision", default="fp32", show_default=True, help="fp32, bf16 or fp16 (autocast).")
@click.option("--log-samples", is_flag=True,
              help="Also write each cell's per-image records (label, prediction, probabilities, top-5) "
                   "to OUT/samples/*.parquet, for prediction flips, calibration and paired tests.")
@click.option("--executor", default="local", show_default=True,
              help="local (this process, cell by cell) or ray (one Ray task per checkpoint and test size; "
                   "needs pip install -e '.[ray]'). This process writes every row either way.")
@click.option("--address", default=None, help="With --executor ray: an existing Ray cluster, e.g. auto or "
              "ray://head:10001 (default: start a local Ray in this process).")
@click.option("--num-workers", default=None, type=int, help="With --executor ray: tasks at once "
              "(default: as many as the CPUs Ray has allow, or its GPUs with --device cuda).")
@click.option("--cpus-per-task", default=1, show_default=True, type=int,
              help="With --executor ray: CPUs (torch threads) of each task; with --device cuda each task "
                   "also takes one GPU.")
@click.option("--cell-timeout", default=None, type=float, metavar="SECONDS",
              help="A cell (or a --model factory) running longer becomes an error row naming the timeout, and the "
                   "sweep goes on (local executor, POSIX; an op running in C stops only when it returns).")
@click.option("--dry-run", is_flag=True, help="Print the plan (each model's sizes x policies x bandlimit settings, "
              "cells already done) and its estimated time; write nothing.")
@click.option("--quiet", is_flag=True, help="No progress bar and no summary table.")
@click.option("-o", "--out", required=True, type=click.Path(), help="Output folder (results.csv, meta.json, ...).")
@_flushing
def sweep_cmd(checkpoints, models, weights, train_res, in_chans, num_classes, mean, std, test_res, kind, bandlimit,
              policy, dataset, data_dir, limit, subset, seed, reader, workers, crop_pct, interpolation, batch_size,
              shard, device, precision, log_samples, executor, address, num_workers, cpus_per_task, cell_timeout,
              dry_run, quiet, out):
    """Evaluate checkpoints and other models over a grid of test sizes, policies and bandlimit settings.

    Resumable: rerunning the same command skips the cells already in OUT. --weights, --train-res,
    --in-chans, --num-classes, --mean and --std apply to every --model; sweep models that need
    different ones with one command each into the same OUT.

    \b
    Examples:
      resbench sweep checkpoints/s4nd_iso_14.pt --test-res 7,14,28 --limit 1000 -o results/quick
      resbench sweep checkpoints/ --dry-run -o results/all
      resbench sweep checkpoints/ --log-samples -o results/study
      resbench sweep checkpoints/s4nd_iso_14.pt --test-res 14,28,28x20 --bandlimit on,off --limit 1000 -o results/quick
      resbench sweep --model timm:resnet18 --weights ft.pth --train-res 28 --dataset fashion-mnist -o results/timm
      resbench sweep checkpoints/ --model mypkg.nets:build --dataset fashion-mnist -o results/mine
      resbench sweep checkpoints/ --executor ray --num-workers 8 -o results/study
    """
    from resbench.external import ModelOptions, load_models
    from resbench.resolution import parse_kinds, parse_size_specs
    from resbench.sweep import SweepConfig, parse_shard, run_sweep, summary_frame

    options = ModelOptions(dataset=dataset, data_dir=data_dir, seed=seed, weights=weights, train_res=train_res,
                           in_chans=in_chans, num_classes=num_classes, timeout=cell_timeout,
                           **_stats_options(mean, std))
    cfg = SweepConfig(checkpoints=list(checkpoints), out=out, models=load_models(models, options),
                      test_res=parse_size_specs(test_res) if test_res is not None else None, kinds=parse_kinds(kind),
                      bandlimit=_split_list(bandlimit, "--bandlimit"), policy=_split_list(policy, "--policy"),
                      dataset=dataset, data_dir=data_dir, limit=limit, subset=subset, seed=seed, batch_size=batch_size,
                      shard=parse_shard(shard), device=device, precision=precision, log_samples=log_samples,
                      executor=executor, address=address, num_workers=num_workers, cpus_per_task=cpus_per_task,
                      dry_run=dry_run, reader=reader, workers=workers, crop_pct=crop_pct,
                      interpolation=interpolation, cell_timeout=cell_timeout)
    df = run_sweep(cfg, quiet=quiet)
    if dry_run:
        return
    if not quiet:
        swept = df.attrs.get("checkpoint_sha256")  # this run's files: a folder may hold other kinds' rows
        mine = df if swept is None else df[df["checkpoint_sha256"].isin(set(swept))]
        kinds = sorted(set(mine["dims"])) or [2]
        for dims in kinds:  # a table per kind of input: a signal's sizes and an image's are not one axis
            frame, failed = summary_frame(df, swept, cfg.precision, df.attrs.get("limit"), df.attrs.get("seed"),
                                          dims if len(kinds) > 1 else None)
            kind = {1: "signals (samples)", 2: "images", 3: "clips (frames x height x width)"}[dims]
            _print_wide(_console(), _summary_table(frame, failed, df.attrs.get("subset", {}).get(dims, ""),
                                                   kind if len(kinds) > 1 or dims != 2 else ""))
    click.echo(f"{len(df)} cells in {out}/results.csv")


def _step_lines(command: str):
    """A `say` for long commands: '[HH:MM:SS] COMMAND: STEP' on stderr, a line each (a terminal and a log alike)."""
    from datetime import datetime

    def say(step: str) -> None:
        click.echo(f"[{datetime.now().strftime('%H:%M:%S')}] {command}: {step}", err=True)
    return say


def _summary_table(frame, failed: int, subset: str = "", kind: str = ""):
    """The sweep summary (accuracy % by test size) as a rich table; its caption counts the failed cells and
    says when the cells used a subset of the test images; `kind` names the inputs when not only images."""
    from rich.table import Table

    sizes = [c for c in frame.columns if c not in ("checkpoint", "train_res", "policy", "bandlimit")]
    table = Table(title="accuracy (%) by test size" + (f", {kind}" if kind else "") + (f" ({subset})" if subset else ""))
    for col in ["checkpoint", "train", "policy", "bandlimit", *sizes]:
        table.add_column(col, justify="right" if col in sizes else "left", no_wrap=True)
    for row in frame.itertuples(index=False):
        values = row[4:]
        table.add_row(*map(str, row[:4]), *["" if v != v else f"{v:.1f}" for v in values])  # v != v: NaN
    if failed:
        table.caption = f"{failed} cell(s) failed: see the error column of results.csv"
    return table


def _print_wide(console, table) -> None:
    """Print a table whole: into a log file or pipe (80 columns by default) at the width it needs, so
    names are never cut to 's4n…'; a terminal keeps its own width."""
    from rich.measure import Measurement

    if not console.is_terminal:
        needed = Measurement.get(console, console.options.update_width(1000), table).maximum
        console.width = max(console.width, needed)
    console.print(table)


@cli.command("merge")
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


@cli.command("report")
@click.argument("sweeps", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(), help="OUT/NAME: writes NAME.md, NAME.pdf, figures.")
@click.option("--format", "formats", default="md,pdf,png,svg", show_default=True, help="What to write.")
@click.option("--kernels", default=None, type=click.Path(), help="Add kernel spectra and aliasing of this checkpoint.")
@click.option("--reliability", default=None, metavar="NAME,NAME",
              help="Checkpoints of the reliability diagram (default: an s4nd_iso and a conv2d_iso trained at the "
                   "same size); needs a sweep run with --log-samples.")
@click.option("--device", default="auto", show_default=True,
              help="Where --kernels is analysed: auto, cpu, cuda, cuda:N or mps.")
@click.option("--quiet", is_flag=True, help="No line per step (a study's report takes a minute or two).")
@_flushing
def report_cmd(sweeps, out, formats, kernels, reliability, device, quiet):
    """Write a markdown + PDF report (figures as PNG/SVG; LaTeX and HTML on request) from one or more sweep folders.

    \b
    Examples:
      resbench report results/demo -o reports/demo --kernels checkpoints/s4nd_iso_7.pt
      resbench report results/study -o reports/study --format md,pdf,png,tex,html --reliability s4nd_iso_14,conv2d_iso_14
    """
    from resbench.report import parse_formats, write_report

    names = _split_list(reliability, "--reliability") if reliability else None
    result = write_report(list(sweeps), out, parse_formats(formats), kernels=kernels, kernel_device=device,
                          reliability=names, say=None if quiet else _step_lines("report"))
    if result["missing"]:
        click.echo(f"note: {len(result['missing'])} planned cells have no result (listed in the report)", err=True)
    click.echo(f"wrote {', '.join(result['written'])} in {Path(out).parent}")


@cli.command("import-official")
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
                           None if mean is None else _floats(mean, "--mean"),
                           None if std is None else _floats(std, "--std"))
    official = ckpt.provenance["official"]
    if ckpt.model.startswith("s4nd_official_convnext"):
        from resbench.checkpoints.official_convnext import summary

        click.echo(f"wrote {out}: {summary(ckpt)}")
        return
    click.echo(f"wrote {out}: s4nd_official, {ckpt.config['n_layers']} layers, d_model {ckpt.config['d_model']}, "
               f"kernel {ckpt.config['layer'].get('kernel') or ckpt.config['layer'].get('mode') or 'dplr'}, "
               f"trained at {ckpt.provenance['train_res']} (official rate {official['train_rate']:g}), "
               f"dataset {ckpt.provenance['dataset']}")


def _stats_options(mean: str | None, std: str | None) -> dict:
    """--mean/--std as numbers per channel, or --mean PRESET (imagenet, inception, as timm names them) for both."""
    from resbench.data.transforms import NORM_PRESETS, norm_preset

    preset = None if mean is None else norm_preset(mean)
    if preset is not None:
        if std is not None and norm_preset(std) != preset:
            raise ResbenchError(f"--std {std!r}: --mean {mean} sets the std too; leave --std out")
        return {"mean": list(preset[0]), "std": list(preset[1])}
    if std is not None and norm_preset(std) is not None:
        raise ResbenchError(f"--std {std!r}: a preset goes in --mean (one of {', '.join(NORM_PRESETS)})")
    return {"mean": None if mean is None else _floats(mean, "--mean"),
            "std": None if std is None else _floats(std, "--std")}


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in _split_list(text, option)]
    except ValueError:
        raise ResbenchError(f"{option} {text!r}: expected numbers separated by commas") from None


@cli.command("plot-kernels")
@click.argument("checkpoint", type=click.Path())
@click.option("--test-res", default=None, help="Test sizes whose grids to show (default: 14,28,56 for images; "
              "for signals and clips the sweep's defaults, half to twice the training size per axis).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("-o", "--out", required=True, type=click.Path(), help="Output folder.")
@_flushing
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


def main(argv=None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2; an internal error (a bug)
    becomes one line naming the command and the failing step, its traceback in a crash file, exit code 1."""
    keep_freed_memory()
    _RUN["debug"] = False
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        cli.main(args=args, prog_name="resbench", standalone_mode=False)
    except ResbenchError as e:
        click.echo(f"resbench: error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("resbench: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"resbench: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except Exception as e:  # a bug: say where, keep the details in a file
        if _RUN["debug"]:
            raise
        click.echo(crash_line(e, args, write_crash_file(e, args)), err=True)
        sys.exit(1)
    return 0


if __name__ == "__main__":
    main()
