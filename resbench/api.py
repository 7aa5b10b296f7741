"""The Python face of resbench, for notebooks: sweep models, load a results folder, write a report.

`resbench.sweep`, `resbench.load_results` and `resbench.report` are these functions.
"""

from __future__ import annotations

import dataclasses
import numbers
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from resbench.checkpoints import Checkpoint
from resbench.errors import ResbenchError
from resbench.external import TIMM, ExternalSource, ModelOptions, from_module, from_spec, source_sha256
from resbench.resolution import parse_size, parse_size_specs

__all__ = ["sweep", "load_results", "report"]

# SweepConfig fields that sweep() takes as keyword options (the others have parameters of their own)
OPTIONS = ("data_dir", "subset", "reader", "loader_workers", "crop_pct", "interpolation", "seed", "batch_size",
           "shard", "threads", "device", "precision", "log_samples", "executor", "address", "ray_tasks",
           "cpus_per_task", "kind", "cell_timeout")


def sweep(models, out: str | Path | None = None, *, test_res=None, bandlimit=None, policy=None,
          dataset: str | None = None, limit: int | None = None, weights: str | None = None, train_res=None,
          in_chans: int | None = None, num_classes: int | None = None, mean=None, std=None, quiet: bool = False,
          **options) -> pd.DataFrame:
    """Sweep models over test sizes, policies and bandlimit settings, as `resbench sweep` does.

    Parameters
    ----------
    models : str, Path, Checkpoint, nn.Module, or a list of them
        Checkpoint files or folders, Checkpoint objects, specs (``"timm:NAME"``, ``"package.module:factory"``)
        and nn.Module objects (their training size given as `train_res` or declared: see resbench.external).
    out : str or Path, optional
        The sweep folder, written as the CLI writes it; a rerun skips the cells already there. None keeps
        nothing on disk: the sweep runs in a temporary folder that is removed once the frame is read
        (``df.attrs["out"]`` is then None).
    test_res : str or list, optional
        ``"7,14,28x20"`` or a list of sizes (a bare number fits image and signal models alike, a tuple names
        its axes); None: the defaults the CLI uses.
    bandlimit, policy : str or list, optional
        Comma text or lists, as ``--bandlimit`` and ``--policy``; None: the CLI's defaults.
    dataset : str, optional
        Test dataset (default: each checkpoint's own; required for specs and modules).
    limit : int, optional
        Test images per cell (default: the whole test split).
    weights, train_res, in_chans, num_classes, mean, std
        What ``--weights`` ... ``--std`` say, for every spec and module. `mean` and `std` take a number, a
        list of numbers or comma text (``0.5``, ``[0.49, 0.48, 0.45]``, ``"0.49,0.48,0.45"``).
    quiet : bool
        No progress bar or summary.
    **options
        The CLI's other options, named as its long options with ``_`` for ``-`` and the same defaults: data_dir,
        subset (``"stratified"`` or ``"first"``: how `limit` chooses), reader (``"stream"``: an image folder
        through timm's eval transform, with loader_workers, crop_pct, interpolation), seed, batch_size, shard
        (``"K/N"``), device (default ``"auto"``), precision, log_samples, kind (``"images"``, ``"signals"``,
        ``"clips"`` or a comma list), the Ray executor's executor (``"ray"``), address, ray_tasks, cpus_per_task;
        cell_timeout (seconds a cell may run, local executor: past it the cell is an error row); and threads
        (torch's CPU threads, which the CLI leaves to torch).

    Returns
    -------
    pandas.DataFrame
        The folder's results, as `load_results` gives them (one row per cell, numeric sizes).

    Examples
    --------
    >>> df = resbench.sweep("checkpoints/s4nd_iso_7.pt", test_res="7,14", limit=200)  # doctest: +SKIP
    """
    from resbench.sweep import SweepConfig, parse_shard, run_sweep

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ResbenchError(f"sweep(): unknown option {unknown[0]!r}; expected some of {', '.join(OPTIONS)}")
    options = {"device": "auto", **options}
    if "kind" in options:
        from resbench.resolution import parse_kinds

        options["kinds"] = parse_kinds(options.pop("kind"))
    if isinstance(options.get("shard"), str):
        options["shard"] = parse_shard(options["shard"])
    if out is None and options.get("log_samples"):
        raise ResbenchError("sweep(): log_samples writes per-image records to disk; give out= a folder")
    opts = ModelOptions(dataset=dataset, data_dir=options.get("data_dir"), seed=options.get("seed", 0),
                        weights=None if weights is None else str(weights), train_res=train_res, in_chans=in_chans,
                        num_classes=num_classes, mean=_channel_values(mean, "mean"),
                        std=_channel_values(std, "std"), timeout=options.get("cell_timeout"))
    paths, sources = _sources(models if isinstance(models, (list, tuple)) else [models], opts)
    temporary = out is None
    folder = Path(tempfile.mkdtemp(prefix="resbench-sweep-") if temporary else out)
    grid = {k: _listed(v) for k, v in (("bandlimit", bandlimit), ("policy", policy)) if v is not None}
    cfg = SweepConfig(checkpoints=paths, out=str(folder), models=sources, test_res=_sizes(test_res),
                      dataset=dataset, limit=limit, **grid, **options)
    threads = torch.get_num_threads()
    try:
        run_sweep(cfg, quiet=quiet)
        df = load_results(folder)
    finally:
        torch.set_num_threads(threads)  # run_sweep sets it for the whole process; a notebook keeps its own
        if temporary:  # in memory only: no folder left behind
            shutil.rmtree(folder, ignore_errors=True)
    df.attrs["out"] = None if temporary else str(folder)
    return df


def load_results(out: str | Path) -> pd.DataFrame:
    """The results of a sweep folder as one tidy frame, with the columns results.csv has.

    Parameters
    ----------
    out : str or Path
        A folder written by `resbench sweep` or `sweep` (complete or not: the cells done so far).

    Returns
    -------
    pandas.DataFrame
        One row per cell. ``train_res`` and ``test_res`` are numbers for one-axis sizes (images at a square
        size, signals) and tuples of numbers for the others (``(28, 20)``, ``(8, 14, 14)``), so they sort and
        compare as sizes; ``df.attrs["out"]`` names the folder.
    """
    from resbench.store import read_results

    folder = Path(out)
    if not folder.is_dir():
        raise ResbenchError(f"{folder}: no such sweep folder")
    df = read_results(folder)
    for column in ("train_res", "test_res"):
        if column in df:
            df[column] = df[column].map(_size_value)
    df.attrs["out"] = str(folder)
    return df


def report(sweeps, out: str | Path, *, formats=("md", "pdf", "png", "svg"), kernels: str | Path | None = None,
           reliability=None, device: str = "auto", quiet: bool = True) -> list[Path]:
    """Write a report of one or more sweep folders, as `resbench report` does.

    Parameters
    ----------
    sweeps : str, Path or a list of them
        Sweep folders.
    out : str or Path
        A folder (existing, or text ending in ``/``): the report is written in it as NAME.md, NAME.pdf and
        NAME_<figure>.png/.svg, NAME being the sweep folder's name (``report`` for several). Any other path is
        ``OUT/NAME``: the files are NAME.md ... in OUT.
    formats : str or list
        Any of md, pdf, png, svg, tex, html (comma text or a list).
    kernels : str or Path, optional
        A checkpoint whose continuous kernels are analysed too.
    reliability : list of str, optional
        The checkpoints of the reliability diagram (needs per-image records).
    device : str
        Where the kernels are analysed.
    quiet : bool
        False: print a line as each step starts.

    Returns
    -------
    list of Path
        The files written.
    """
    from resbench.report import parse_formats, write_report
    from resbench.report.target import report_target

    dirs = [sweeps] if isinstance(sweeps, (str, Path)) else list(sweeps)
    formats = parse_formats(formats if isinstance(formats, str) else ",".join(formats))
    say = None if quiet else print
    target = report_target(out, dirs)
    result = write_report([str(d) for d in dirs], target, formats, kernels=None if kernels is None else str(kernels),
                          kernel_device=device, reliability=None if reliability is None else list(reliability),
                          say=say)
    return [target.parent / name for name in result["written"]]


def _size_value(text):
    """'28' -> 28, '28x20' -> (28, 20); anything else as it is."""
    if not isinstance(text, str):
        return text
    parts = text.split("x")
    if not all(p.isdigit() for p in parts):
        return text
    return int(parts[0]) if len(parts) == 1 else tuple(int(p) for p in parts)


def _channel_values(value, name: str) -> tuple[float, ...] | None:
    """None, a number, a list of numbers or comma text -> a tuple of floats (the CLI's --mean/--std)."""
    if value is None:
        return None
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ResbenchError(f"{name}={value!r}: expected a number, a list of numbers or comma text")
    try:
        if any(isinstance(v, bool) for v in items):
            raise ValueError
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ResbenchError(f"{name}={value!r}: expected a number, a list of numbers or comma text") from None


def _is_spec(text: str) -> bool:
    """timm:NAME or package.module:factory, not a path (a path with a colon in it exists)."""
    return text.startswith(TIMM) or (":" in text and not Path(text).exists())


def _sources(models, opts: ModelOptions) -> tuple[list[str], list]:
    """(checkpoint files and folders, sources already made) of the models sweep() was given."""
    paths, sources, external = [], [], False
    for item in models:
        if isinstance(item, Checkpoint):
            sources.append(_with_identity(item))
        elif isinstance(item, ExternalSource):
            sources.append(item)
        elif isinstance(item, nn.Module):
            sources.append(from_module(item, opts))
            external = True
        elif isinstance(item, str) and _is_spec(item):
            sources.append(from_spec(item, opts))
            external = True
        elif isinstance(item, (str, Path)):
            paths.append(str(item))
        else:
            raise ResbenchError(f"model {item!r}: expected a checkpoint path, a Checkpoint, a spec like "
                                f"timm:NAME or package.module:factory, or an nn.Module")
    if opts.given() and not external:
        raise ResbenchError(f"{opts.given()[0].lstrip('-').replace('-', '_')}: applies to specs and nn.Modules "
                            f"only, and models holds none")
    return paths, sources


def _with_identity(ckpt: Checkpoint) -> Checkpoint:
    """A Checkpoint made in memory has no file hash: its identity is its model, config, statistics and weights."""
    if ckpt.sha256:
        return ckpt
    description = {"model": ckpt.model, "config": ckpt.config, "data_stats": ckpt.data_stats}
    return dataclasses.replace(ckpt, sha256=source_sha256(description, ckpt.state_dict))


def _sizes(test_res) -> list | None:
    """None (the default sizes), "7,14,28x20", or a list of sizes: as in a sweep's --test-res, a bare number
    (28, "28") fits image and signal models alike, a tuple names its axes."""
    if test_res is None:
        return None
    if isinstance(test_res, str):
        return parse_size_specs(test_res)
    return [parse_size(s, None) if isinstance(s, (tuple, list)) else parse_size_specs(str(s))[0] for s in test_res]


def _listed(value) -> list[str]:
    """'on,off' or ['on', 'off'] (or numbers, for alphas) -> ['on', 'off']."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items]
