"""A sweep's checks: every user error it can hit, raised before any work (options, files, data, sizes, folder)."""

from __future__ import annotations

import socket
from pathlib import Path

import torch

from resbench import data
from resbench.checkpoints import Checkpoint, find_checkpoints, load_checkpoint
from resbench.data.stream import check_stream_options, folder_split, transform_text
from resbench.data.subset import SUBSET_RULES
from resbench.device import check_precision, resolve_device
from resbench.errors import ResbenchError
from resbench.resolution import KINDS, parse_bandlimit
from resbench.runtime import check_time_limit
from resbench.store import check_out_dir
from resbench.sweep.batches import cell_batch_size
from resbench.sweep.config import EXECUTORS, Cell, SweepConfig
from resbench.sweep.grid import dataset_name, plan_cells, recipe

__all__ = ["validate", "require_ray", "check_address"]


def _check_cells(ckpts: list[Checkpoint], cells: list[Cell], cfg: SweepConfig) -> list[torch.nn.Module]:
    """User errors any cell would hit, raised before any work: a test set the model cannot take, a size no
    batch fits. Returns the checkpoints' models, built once for the check and reused by the sweep."""
    models = []
    for i, ckpt in enumerate(ckpts):
        recipe(ckpt)  # every row names it: a schedule the file holds that resbench cannot read is refused here
        model = ckpt.build_model().to(cfg.device)
        models.append(model)
        info = data.dataset_info(dataset_name(ckpt, cfg), cfg.data_dir)
        takes = (model.config.in_chans, model.config.num_classes)
        if takes != (info.in_chans, info.num_classes):
            raise ResbenchError(f"{ckpt.path}: the model takes {takes[0]} channel(s) and {takes[1]} classes, "
                                f"dataset {info.name!r} has {info.in_chans} and {info.num_classes}; "
                                f"choose a --dataset like the one it was trained on")
        for cell in cells:
            if cell.ckpt_index == i:
                cell_batch_size(model, ckpt, cell, cfg)
    return models


def _check_names(ckpts: list[Checkpoint]) -> None:
    """Rows are grouped by checkpoint name: two different models under one name would mix (or supersede)."""
    seen: dict[str, Checkpoint] = {}
    named: dict[str, Checkpoint] = {}  # sha256 -> the first checkpoint with those bytes
    for ckpt in ckpts:
        other = seen.setdefault(ckpt.name, ckpt)
        if other.sha256 != ckpt.sha256:
            raise ResbenchError(f"{ckpt.path} and {other.path}: two different models named {ckpt.name!r}; "
                                f"rename one (results are grouped by name)")
        twin = named.setdefault(ckpt.sha256, ckpt)
        if twin.name != ckpt.name:  # a cell is keyed by the file's bytes: the two names would share one row
            raise ResbenchError(f"{twin.path} and {ckpt.path}: the same file under two names "
                                f"({twin.name!r}, {ckpt.name!r}); sweep one of them")


def require_ray():
    """The ray module, or a user error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ResbenchError("--executor ray: Ray is not installed; install the extra with "
                            "pip install -e '.[ray]' (or pip install 'ray>=2.9')") from None
    return ray


def check_address(address: str) -> None:
    """--address: auto, or HOST:PORT / ray://HOST:PORT that answers; checked here because Ray itself keeps
    retrying an address where nothing listens for minutes."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ResbenchError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT (a port 1-65535)")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except ValueError as e:  # a host name the resolver cannot encode (a label past 63 characters)
        raise ResbenchError(f"--address {address!r}: not a host name ({e})") from None
    except OSError as e:
        raise ResbenchError(f"--address {address}: no Ray cluster answers there ({e.strerror or e})") from None


def _check_executor(cfg: SweepConfig) -> None:
    """The executor and its options: Ray's only with --executor ray, positive counts, Ray importable."""
    if cfg.executor not in EXECUTORS:
        raise ResbenchError(f"--executor {cfg.executor!r}: expected one of {', '.join(EXECUTORS)}")
    if cfg.ray_tasks is not None and cfg.ray_tasks < 1:
        raise ResbenchError(f"--ray-tasks {cfg.ray_tasks}: expected a positive number of tasks at once")
    if cfg.cpus_per_task < 1:
        raise ResbenchError(f"--cpus-per-task {cfg.cpus_per_task}: expected a positive number of CPUs")
    check_time_limit(cfg.cell_timeout, "--cell-timeout")  # a Ray task keeps it too: tasks run on its main thread
    if cfg.executor == "ray":
        if cfg.address is not None:
            check_address(cfg.address)
        require_ray()
        return
    given = [name for name, value in (("--address", cfg.address), ("--ray-tasks", cfg.ray_tasks))
             if value is not None] + (["--cpus-per-task"] if cfg.cpus_per_task != 1 else [])
    if given:
        raise ResbenchError(f"{given[0]}: only with --executor ray (the local executor runs in this process)")


def validate(cfg: SweepConfig) -> tuple[list[Checkpoint], list[Cell], list[torch.nn.Module]]:
    """Every user error a sweep can hit, raised before any work: options, checkpoint files, datasets, sizes,
    the output folder. Returns the checkpoints, the shard's cells and the checkpoints' models."""
    _check_executor(cfg)
    if cfg.limit is not None and cfg.limit < 1:
        raise ResbenchError(f"--limit {cfg.limit}: expected a positive number of images")
    if cfg.subset not in SUBSET_RULES:
        raise ResbenchError(f"--subset {cfg.subset!r}: expected one of {', '.join(SUBSET_RULES)}")
    check_stream_options(cfg.reader, cfg.loader_workers, cfg.crop_pct, cfg.interpolation)
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise ResbenchError(f"--batch-size {cfg.batch_size}: expected a positive number")
    for policy in cfg.policy:
        if policy not in ("native", "resize-input"):
            raise ResbenchError(f"--policy {policy!r}: expected native or resize-input")
    cfg.bandlimit = [parse_bandlimit(b) for b in cfg.bandlimit]
    if cfg.log_samples:
        try:
            import pyarrow  # noqa: F401  (the per-image records are Parquet files)
        except ImportError:
            raise ResbenchError("--log-samples: needs pyarrow (pip install pyarrow)") from None
    cfg.device, cfg.precision = str(resolve_device(cfg.device)), check_precision(cfg.precision)
    ckpts = [load_checkpoint(p) for p in find_checkpoints(cfg.checkpoints)] + list(cfg.models)  # every file checked
    if cfg.kinds is not None:
        found = ckpts
        ckpts = [c for c in ckpts if c.dims in cfg.kinds]
        if found and not ckpts:
            wanted, given = (",".join(sorted(KINDS[d] for d in axes))
                             for axes in (cfg.kinds, {c.dims for c in found}))
            raise ResbenchError(f"--kind {wanted}: none of the {len(found)} models given takes {wanted} "
                                f"(they take {given})")
    if not ckpts:
        raise ResbenchError("nothing to sweep: give checkpoint files or folders, or --model SPEC "
                            "(timm:NAME or package.module:factory)")
    _check_names(ckpts)
    for name in sorted({dataset_name(c, cfg) for c in ckpts}):
        if transform_text(cfg.reader, name, None, None):
            folder_split(cfg.data_dir)  # a streamed folder: scanned (headers), never decoded whole
            continue
        # dataset_info alone does not look for the files of fixed sets (mnist, ...): read one test image
        data.load_raw(name, "test", cfg.data_dir, limit=1)
    cells = plan_cells(ckpts, cfg)
    models = _check_cells(ckpts, cells, cfg)
    if cfg.dry_run:  # nothing is created: only a file in the folder's place is an error
        if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
            raise ResbenchError(f"{cfg.out}: exists and is not a folder; expected an output folder for the sweep")
    else:
        check_out_dir(Path(cfg.out))
    return ckpts, cells, models
