"""The Python entry to a sweep, for notebooks: checkpoints and any other models -> the tidy results frame."""

from __future__ import annotations

import dataclasses
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

__all__ = ["sweep"]

# SweepConfig fields that sweep() takes as keyword options (the others have parameters of their own)
OPTIONS = ("data_dir", "subset", "reader", "workers", "crop_pct", "interpolation", "seed", "batch_size", "shard",
           "threads", "device", "precision", "log_samples", "executor", "address", "num_workers", "cpus_per_task",
           "kind")


def sweep(models, out: str | Path | None = None, *, test_res=None, bandlimit=("on", "off"),
          policy=("native", "resize-input"), dataset: str | None = None, limit: int | None = None,
          weights: str | None = None, train_res=None, in_chans: int | None = None, num_classes: int | None = None,
          mean=None, std=None, quiet: bool = False, **options) -> pd.DataFrame:
    """Sweep `models` over test sizes, policies and bandlimit settings; return the folder's tidy results frame.

    models: one or a list of checkpoint files or folders (str or Path), Checkpoint objects, specs
    ("timm:NAME", "package.module:factory") and nn.Module objects (their training size given as
    train_res= or declared: see resbench.external). weights, train_res, in_chans, num_classes, mean and
    std apply to every spec and module, as the CLI's options do. out: the sweep folder, written as the CLI
    writes it (a temporary folder when None; df.attrs["out"] names it); a rerun skips the cells there.
    test_res: "7,14,28" or a list of sizes; bandlimit, policy: comma text or lists. options: data_dir,
    subset ("stratified" or "first": how limit chooses), reader ("stream": an image folder through timm's eval
    transform, with workers, crop_pct, interpolation), seed, batch_size, shard ("K/N"), threads, device
    (default "auto"), precision, log_samples, kind ("images", "signals", "clips" or a comma list: only those
    models), and the Ray executor's executor ("ray"), address, num_workers, cpus_per_task.

    Example:
        df = resbench.api.sweep(["checkpoints/", "timm:resnet18"], weights="ft.pth", train_res=28,
                                dataset="fashion-mnist", test_res="14,28,56", limit=1000)
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
    opts = ModelOptions(dataset=dataset, data_dir=options.get("data_dir"), seed=options.get("seed", 0),
                        weights=None if weights is None else str(weights), train_res=train_res, in_chans=in_chans,
                        num_classes=num_classes, mean=None if mean is None else tuple(mean),
                        std=None if std is None else tuple(std))
    paths, sources = _sources(models if isinstance(models, (list, tuple)) else [models], opts)
    temporary = out is None
    out = Path(tempfile.mkdtemp(prefix="resbench-sweep-") if temporary else out)
    cfg = SweepConfig(checkpoints=paths, out=str(out), models=sources, test_res=_sizes(test_res),
                      bandlimit=_listed(bandlimit), policy=_listed(policy), dataset=dataset, limit=limit, **options)
    threads = torch.get_num_threads()
    try:
        df = run_sweep(cfg, quiet=quiet)
    except BaseException:
        if temporary:  # nothing the caller could read back: leave no empty folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads)  # run_sweep sets it for the whole process; a notebook keeps its own
    df.attrs["out"] = str(out)
    return df


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
