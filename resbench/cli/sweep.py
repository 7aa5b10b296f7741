"""`resbench sweep`: evaluate checkpoints and other models over test sizes, policies and bandlimit settings."""

from __future__ import annotations

import click

from resbench.cli._common import Command, console, floats, flushing, split_list
from resbench.errors import ResbenchError

__all__ = ["sweep_cmd", "print_summaries", "stats_options", "summary_table", "print_wide", "renamed"]


@click.command("sweep", cls=Command)
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
                   "--loader-workers processes, each image through timm's eval transform: shorter side to size / "
                   "crop-pct, centre crop; memory does not grow with the split).")
@click.option("--loader-workers", default=None, type=int, help="With --reader stream: data-loading processes "
              "(default: the cores less one, at most 8; 0: decode in this process).")
@click.option("--workers", default=None, type=int, hidden=True, deprecated="Use --loader-workers.",
              help="Old name of --loader-workers.")
@click.option("--crop-pct", default=None, type=float, help="With --reader stream: timm's crop_pct (default: the "
              "model's own, a tagged timm name's pretrained config such as resnet50.a1_in1k; else 1.0, the whole image).")
@click.option("--interpolation", default=None,
              help="With --reader stream: bilinear, bicubic, ... (default: the model's own, else bilinear).")
@click.option("--batch-size", default=None, type=int,
              help="Images a batch, honoured unless memory cannot take it (then lowered, with a line and a note "
                   "in the run record). Default: 256, on the CPU cut to about 25,000 model pixels a batch "
                   "(32 images at 28x28), which keeps activations near the cache.")
@click.option("--shard", default="1/1", show_default=True,
              help="Run part K of N of the cells, dealt by the size each model runs at so the parts take like work.")
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
@click.option("--ray-tasks", default=None, type=int, help="With --executor ray: Ray tasks at once "
              "(default: as many as the CPUs Ray has allow, or its GPUs with --device cuda).")
@click.option("--num-workers", default=None, type=int, hidden=True, deprecated="Use --ray-tasks.",
              help="Old name of --ray-tasks.")
@click.option("--cpus-per-task", default=1, show_default=True, type=int,
              help="With --executor ray: CPUs (torch threads) of each task; with --device cuda each task "
                   "also takes one GPU.")
@click.option("--cell-timeout", default=None, type=float, metavar="SECONDS",
              help="A cell (or a --model factory) running longer becomes an error row naming the timeout, and the "
                   "sweep goes on (local or Ray executor, POSIX; an op running in C stops only when it returns).")
@click.option("--dry-run", is_flag=True, help="Print the plan (each model's sizes x policies x bandlimit settings, "
              "cells already done) and its estimated time; write nothing.")
@click.option("--quiet", is_flag=True, help="No progress bar and no summary table.")
@click.option("-o", "--out", required=True, type=click.Path(), help="Output folder (results.csv, meta.json, ...).")
@flushing
def sweep_cmd(checkpoints, models, weights, train_res, in_chans, num_classes, mean, std, test_res, kind, bandlimit,
              policy, dataset, data_dir, limit, subset, seed, reader, loader_workers, workers, crop_pct, interpolation,
              batch_size, shard, device, precision, log_samples, executor, address, ray_tasks, num_workers,
              cpus_per_task, cell_timeout, dry_run, quiet, out):
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
      resbench sweep checkpoints/ --executor ray --ray-tasks 8 -o results/study
    """
    from resbench.external import ModelOptions, load_models
    from resbench.resolution import parse_kinds, parse_size_specs
    from resbench.sweep import SweepConfig, parse_shard, run_sweep

    options = ModelOptions(dataset=dataset, data_dir=data_dir, seed=seed, weights=weights, train_res=train_res,
                           in_chans=in_chans, num_classes=num_classes, timeout=cell_timeout,
                           **stats_options(mean, std))
    cfg = SweepConfig(checkpoints=list(checkpoints), out=out, models=load_models(models, options),
                      test_res=parse_size_specs(test_res) if test_res is not None else None, kinds=parse_kinds(kind),
                      bandlimit=split_list(bandlimit, "--bandlimit"), policy=split_list(policy, "--policy"),
                      dataset=dataset, data_dir=data_dir, limit=limit, subset=subset, seed=seed, batch_size=batch_size,
                      shard=parse_shard(shard), device=device, precision=precision, log_samples=log_samples,
                      executor=executor, address=address, cpus_per_task=cpus_per_task, dry_run=dry_run,
                      ray_tasks=renamed(ray_tasks, num_workers, "--ray-tasks", "--num-workers"), reader=reader,
                      loader_workers=renamed(loader_workers, workers, "--loader-workers", "--workers"),
                      crop_pct=crop_pct, interpolation=interpolation, cell_timeout=cell_timeout)
    df = run_sweep(cfg, quiet=quiet)
    if dry_run:
        return
    if not quiet:
        print_summaries(df, cfg.precision)
    click.echo(f"{len(df)} cells in {out}/results.csv")


def renamed(value, old_value, name: str, old_name: str):
    """An option's value given under its name or its old one (both at once is a user error)."""
    if value is not None and old_value is not None:
        raise ResbenchError(f"{old_name}: the old name of {name}; give {name} alone")
    return old_value if value is None else value


def print_summaries(df, precision: str) -> None:
    """The accuracy tables of a finished sweep: one per kind of input this run swept (a signal's sizes and an
    image's are not one axis)."""
    from resbench.sweep import summary_frame

    swept = df.attrs.get("checkpoint_sha256")  # this run's files: a folder may hold other kinds' rows
    mine = df if swept is None else df[df["checkpoint_sha256"].isin(set(swept))]
    kinds = sorted(set(mine["dims"])) or [2]
    for dims in kinds:
        frame, failed = summary_frame(df, swept, precision, df.attrs.get("limit"), df.attrs.get("seed"),
                                      dims if len(kinds) > 1 else None)
        kind = {1: "signals (samples)", 2: "images", 3: "clips (frames x height x width)"}[dims]
        print_wide(console(), summary_table(frame, failed, df.attrs.get("subset", {}).get(dims, ""),
                                            kind if len(kinds) > 1 or dims != 2 else ""))


def stats_options(mean: str | None, std: str | None) -> dict:
    """--mean/--std as numbers per channel, or --mean PRESET (imagenet, inception, as timm names them) for both."""
    from resbench.data.transforms import NORM_PRESETS, norm_preset

    preset = None if mean is None else norm_preset(mean)
    if preset is not None:
        if std is not None and norm_preset(std) != preset:
            raise ResbenchError(f"--std {std!r}: --mean {mean} sets the std too; leave --std out")
        return {"mean": list(preset[0]), "std": list(preset[1])}
    if std is not None and norm_preset(std) is not None:
        raise ResbenchError(f"--std {std!r}: a preset goes in --mean (one of {', '.join(NORM_PRESETS)})")
    return {"mean": None if mean is None else floats(mean, "--mean"),
            "std": None if std is None else floats(std, "--std")}


def summary_table(frame, failed: int, subset: str = "", kind: str = ""):
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


def print_wide(out, table) -> None:
    """Print a table whole: into a log file or pipe (80 columns by default) at the width it needs, so
    names are never cut to 's4n…'; a terminal keeps its own width."""
    from rich.measure import Measurement

    if not out.is_terminal:
        needed = Measurement.get(out, out.options.update_width(1000), table).maximum
        out.width = max(out.width, needed)
    out.print(table)
