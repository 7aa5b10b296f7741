"""Which cells a sweep runs: each checkpoint's test sizes, policies and bandlimit settings, and its test images."""

from __future__ import annotations

import math

from resbench import data
from resbench.checkpoints import Checkpoint
from resbench.data.stream import eval_settings, transform_text
from resbench.errors import ResbenchError
from resbench.resolution import bandlimit_alpha, default_test_sizes, fit_sizes, format_size, parse_size
from resbench.sweep.batches import model_size
from resbench.sweep.config import Cell, SweepConfig

__all__ = ["checkpoint_transform", "training_sizes", "recipe", "cell_alpha", "subset_rule", "images_key",
           "test_sizes", "plan_cells", "shard_cells", "dataset_name"]


def _adaptive_kernels(ckpt: Checkpoint) -> bool:
    """Whether the checkpoint's model has continuous kernels that can follow the test grid."""
    from resbench.models.registry import list_models, model_class

    return ckpt.model in list_models() and model_class(ckpt.model).adaptive_kernels


def _bandlimit_values(ckpt: Checkpoint, requested: list[str]) -> list[str]:
    """Settings that apply to this checkpoint: 'none' for models without a bandlimit (and 'adaptive' for
    those with adaptive kernels); 'on' and 'adaptive' only for a checkpoint trained with an alpha; 'capped'
    for resbench's S4ND models, trained with an alpha or without."""
    trained_alpha = ckpt.config.get("bandlimit")
    if "bandlimit" not in ckpt.config:
        return ["none"] + (["adaptive"] if "adaptive" in requested and _adaptive_kernels(ckpt) else [])
    usable = [b for b in requested if not (b in ("on", "adaptive") and trained_alpha is None)]
    usable = [b for b in usable if b != "capped" or _adaptive_kernels(ckpt)]
    return [b for b in usable if b != "adaptive" or _adaptive_kernels(ckpt)] or ["off"]


def _adaptive_differs(ckpt: Checkpoint, size: tuple[int, int], policy: str) -> bool:
    """An adaptive (or capped) cell differs from the 'on' (or 'none') cell only where the model runs below its training
    size on some axis; elsewhere it would repeat that cell, so it is not planned."""
    return policy == "native" and any(s < t for s, t in zip(size, ckpt.train_res))


def _repeats_native(ckpt: Checkpoint, size: tuple[int, ...], policy: str) -> bool:
    """Resize-input at the training size is the native cell (the resize is the identity): not run twice;
    the report reads the native cell as that size's resize-input reference."""
    return policy == "resize-input" and tuple(size) == tuple(ckpt.train_res)


def training_sizes(ckpt: Checkpoint) -> set[tuple[int, ...]]:
    """The sizes a checkpoint was trained at: every stage of its schedule and multi-scale size, else its training size."""
    sizes = {tuple(ckpt.train_res)}
    for stage in [*(ckpt.provenance.get("schedule") or []), *([s] for s in ckpt.provenance.get("multiscale") or [])]:
        try:
            sizes.add(parse_size(stage[0], ckpt.dims))
        except (ResbenchError, TypeError, IndexError):
            continue  # a schedule resbench cannot read names no size
    return sizes


def recipe(ckpt: Checkpoint) -> str:
    """How the checkpoint was trained, as a short text: 'size:epochs,...', any config overrides, any multi-scale sizes.
    A schedule or multi-scale list the file holds that resbench cannot read is an error naming the file."""
    try:
        stages = ",".join(f"{format_size(parse_size(size, ckpt.dims))}:{epochs}" for size, epochs in
                          (ckpt.provenance.get("schedule") or []))
        multiscale = ckpt.provenance.get("multiscale")
        scales = ("multiscale=" + ",".join(format_size(parse_size(s, ckpt.dims)) for s in multiscale)
                  if multiscale else "")
    except (ResbenchError, TypeError, ValueError) as e:
        raise ResbenchError(f"{ckpt.path}: provenance schedule or multiscale not readable "
                            f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from None
    overrides = (ckpt.provenance.get("train_config") or {}).get("model_overrides") or {}
    extra = " ".join(f"{k}={v}" for k, v in sorted(overrides.items()) if k != "bandlimit")
    return " ".join(part for part in (stages, extra, scales) if part)


def cell_alpha(ckpt: Checkpoint, setting: str):
    """The alpha a bandlimit setting means for this checkpoint (None: no mask)."""
    return bandlimit_alpha(setting, ckpt.config.get("bandlimit"))


def subset_rule(cfg: SweepConfig, dataset: str) -> str:
    """How --limit chooses a checkpoint's test images: cfg.subset for a stored set; "first" for a rendered one
    (its samples are drawn independently in turn, so the first N are a random sample, and rendering others
    than the first N would render them all)."""
    return "first" if cfg.subset == "first" or data.is_rendered(dataset) else "stratified"


def images_key(limit: int | None, available: int) -> int:
    """The test images a cell uses, as keyed in the store: -1 for the whole split (a --limit at or
    above its size included), else the limit; so `--limit 99999` on 10k images is the full run."""
    return -1 if limit is None or limit >= available else limit


def test_sizes(ckpts: list[Checkpoint], cfg: SweepConfig) -> list[list[tuple[int, ...]]]:
    """Each checkpoint's test sizes: --test-res fitted to its axes (a clip model takes only TxHxW sizes, an
    image model HxW or bare ones, a signal model bare ones), else the ladder around its own training size
    (resolution.default_test_sizes)."""
    if cfg.test_res is None:
        return [default_test_sizes([c.train_res]) for c in ckpts]
    return [fit_sizes(cfg.test_res, ckpt.dims, ckpt.name) for ckpt in ckpts]


def plan_cells(ckpts: list[Checkpoint], cfg: SweepConfig) -> list[Cell]:
    """All cells of the sweep in a fixed order, or the part of them that --shard K/N deals to shard K."""
    cells = [Cell(i, size, policy, bl) for i, (ckpt, sizes) in enumerate(zip(ckpts, test_sizes(ckpts, cfg)))
             for size in sizes for policy in cfg.policy for bl in _bandlimit_values(ckpt, cfg.bandlimit)
             if (bl not in ("adaptive", "capped") or _adaptive_differs(ckpt, size, policy))
             and not _repeats_native(ckpt, size, policy)]
    return shard_cells(cells, ckpts, cfg.shard)


def shard_cells(cells: list[Cell], ckpts: list[Checkpoint], shard: tuple[int, int]) -> list[Cell]:
    """Shard k of n: the cells ranked by the pixels (samples, voxels) the model runs at, largest first, and dealt
    back and forth over the shards (1..n, n..1, 1..n, ...), so each shard draws a like share of large and small
    cells whatever the grid's period (every n-th cell of a grid of n test sizes would all be one size). Each
    shard keeps the grid's order. Depends on the cells alone: every process of a sweep deals the same."""
    k, n = shard
    pixels = [math.prod(model_size(ckpts[c.ckpt_index], c)) for c in cells]
    ranked = sorted(range(len(cells)), key=lambda i: (-pixels[i], i))
    mine = {i for turn, i in enumerate(ranked) if min(turn % (2 * n), 2 * n - 1 - turn % (2 * n)) == k - 1}
    return [c for i, c in enumerate(cells) if i in mine]


def dataset_name(ckpt: Checkpoint, cfg: SweepConfig) -> str:
    """The dataset a checkpoint is tested on: --dataset, else the one it was trained on."""
    return cfg.dataset or ckpt.provenance.get("dataset") or "fashion-mnist"


def checkpoint_transform(ckpt: Checkpoint, cfg: SweepConfig) -> str:
    """The `transform` of a checkpoint's rows, part of each cell's identity: '' unless an image folder is streamed,
    else timm's eval transform with the sweep's crop and interpolation, the model's own where not given."""
    return transform_text(cfg.reader, dataset_name(ckpt, cfg),
                          *eval_settings(cfg.crop_pct, cfg.interpolation, ckpt.config))
