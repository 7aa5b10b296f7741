"""A checkpoint's test images for a sweep: read once, resized (or rendered) per cell and batch, normalised."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from resbench import data
from resbench.checkpoints import Checkpoint
from resbench.data.stream import default_workers, eval_settings, folder_batches, folder_split, transform_text
from resbench.data.subset import stratified_indices
from resbench.resolution import resize_images
from resbench.sweep.batches import memory_budget
from resbench.sweep.config import SweepConfig
from resbench.sweep.grid import dataset_name, subset_rule

__all__ = ["SplitFacts", "split_facts", "SplitImages"]


def _row_warning(ckpt: Checkpoint, tested: str) -> str:
    """What every row of this checkpoint on the dataset `tested` (its canonical name) should say about its
    normalisation: the source's own notes, and a test set other than the one its statistics come from."""
    notes = list(ckpt.provenance.get("warnings") or [])
    trained = ckpt.provenance.get("dataset")
    if trained and str(trained).strip().lower().replace("_", "-") != tested:
        notes.append(f"normalisation: statistics made for {trained}, tested on {tested}")
    return "; ".join(notes)


@dataclass(frozen=True)


class SplitFacts:
    """What every row of a checkpoint says about its test split."""
    dataset: str        # as the user named it (--dataset, else the checkpoint's own)
    classes: list[str]  # class names, by label
    warning: str        # _row_warning


def split_facts(ckpt: Checkpoint, cfg: SweepConfig) -> SplitFacts:
    name = dataset_name(ckpt, cfg)
    info = data.dataset_info(name, cfg.data_dir)  # once per checkpoint: an image folder is scanned
    return SplitFacts(name, list(info.classes), _row_warning(ckpt, info.name))


class SplitImages:
    """A checkpoint's test split, kept raw in memory and resized batch by batch (memory stays bounded)."""

    def __init__(self, ckpt: Checkpoint, cfg: SweepConfig):
        self.about = split_facts(ckpt, cfg)
        self._render_cache: tuple | None = None  # (size, {(size, start, stop): batch}) of a rendered set's last size
        self.cfg = cfg
        self.indices = None  # (N,) positions in the test split of a stratified sample; None: the first N
        self.stats = (ckpt.data_stats["mean"], ckpt.data_stats["std"])
        self.eval = eval_settings(cfg.crop_pct, cfg.interpolation, ckpt.config)  # an image folder's crop, interpolation
        name = self.about.dataset
        self.files = None  # stream.FolderSplit when the folder is read batch by batch
        if transform_text(cfg.reader, name, None, None):
            self.files, self.raw = folder_split(cfg.data_dir), None
            self.labels = self.files.labels
            if cfg.limit is not None and cfg.limit < len(self.labels):
                self.indices = (stratified_indices(self.labels, cfg.limit, cfg.seed) if cfg.subset == "stratified"
                                else torch.arange(cfg.limit))  # (limit,)
                self.labels = self.labels[self.indices]
        elif data.is_rendered(name):  # sampled anew at each size: only its labels are needed here
            self.raw, self.labels = None, data.load_labels(name, "test", cfg.data_dir, cfg.limit, cfg.seed)
        elif subset_rule(cfg, name) == "first":
            self.raw, self.labels = data.load_raw(name, "test", cfg.data_dir, cfg.limit, cfg.seed)
        else:  # the same images on every machine: the sample depends on the labels and the seed alone
            self.raw, self.labels = data.load_raw(name, "test", cfg.data_dir, None, cfg.seed)
            if cfg.limit is not None and cfg.limit < len(self.labels):
                keep = stratified_indices(self.labels, cfg.limit, cfg.seed)  # (limit,)
                self.raw, self.labels, self.indices = self.raw[keep], self.labels[keep], keep
        device = torch.device(cfg.device)
        if device.type == "cuda":  # once per checkpoint, not per batch; a stored split too large stays on the host
            self.labels = self.labels.to(device)
            if self.raw is not None and self.raw.nbytes <= memory_budget(cfg) // 8:
                self.raw = self.raw.to(device)

    def batches(self, size: tuple[int, ...], batch: int):
        """(samples, labels) batches at `size` on the sweep's device: stored images are resized there."""
        device = torch.device(self.cfg.device)
        per_channel = (slice(None),) + (None,) * len(size)  # (C, 1, ..., 1)
        mean = torch.tensor(self.stats[0], device=device)[per_channel]
        std = torch.tensor(self.stats[1], device=device)[per_channel]
        if self.files is not None:  # decoded per batch, through timm's eval transform at the size
            workers = default_workers() if self.cfg.loader_workers is None else self.cfg.loader_workers
            for x, y in folder_batches(self.files, self.indices, size, batch, workers, self.stats, *self.eval):
                yield x.to(device), y.to(device)  # (b, C, *size) normalised, (b,)
            return
        for i in range(0, len(self.labels), batch):
            if self.raw is None:  # a rendered set: sampled at the size itself, the point of such sets
                x = self._rendered(size, i, min(i + batch, len(self.labels)), device)
            else:
                x = resize_images(self.raw[i:i + batch].to(device), size)
            yield (x - mean) / std, self.labels[i:i + batch].to(device)  # (b, C, *size), (b,)

    def _rendered(self, size: tuple[int, ...], start: int, stop: int, device: torch.device) -> torch.Tensor:
        """Samples start..stop of a rendered set at `size`; the last size's batches are kept, since a checkpoint's
        cells at one size (policies, bandlimit settings) follow each other and rendering is the slow part."""
        key = (size, start, stop)
        cache = self._render_cache
        if cache is None or cache[0] != size:
            cache = self._render_cache = (size, {})
        if key not in cache[1]:
            cache[1][key] = data.render(self.about.dataset, "test", size, self.cfg.seed, start=start, stop=stop,
                                        data_dir=self.cfg.data_dir).to(device)
        return cache[1][key]
