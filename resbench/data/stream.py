"""Image folders read batch by batch: DataLoader workers decode the files, each through timm's eval transform at
the test size, so memory does not grow with the split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from resbench.data.transforms import eval_transform
from resbench.errors import ResbenchError

__all__ = ["eval_settings", "FolderSplit", "folder_split", "folder_batches", "default_workers", "READERS",
           "check_stream_options", "transform_text"]


@dataclass(frozen=True)
class FolderSplit:
    """An image folder's test split as files: what a streamed sweep needs, no pixels."""
    paths: tuple[str, ...]
    labels: torch.Tensor  # (N,) int64
    gray: bool            # every image is grayscale: one channel


def folder_split(data_dir) -> FolderSplit:
    """The test (or val) files of an image folder and their labels, from the folder scan resbench.data uses."""
    from resbench.data.common import data_root
    from resbench.data.imagefolder import _scan_tree

    tree = _scan_tree(data_root("imagefolder", data_dir))
    entries = tree.files["test"]
    if not entries:
        raise ResbenchError(f"imagefolder {tree.root}: no test or val images; add val/CLASS/*.JPEG folders")
    labels = torch.tensor([label for _, label in entries], dtype=torch.int64)  # (N,)
    return FolderSplit(tuple(key[0] for key, _ in entries), labels, tree.gray)


def default_workers() -> int:
    """Loader processes when --loader-workers is not given: the cores less one for the model, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class _Files(Dataset):
    def __init__(self, paths, labels: torch.Tensor, transform, gray: bool):
        self.paths, self.labels, self.transform, self.mode = paths, labels, transform, "L" if gray else "RGB"

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.paths[i]) as im:
                img = im.convert(self.mode)
        except (UnidentifiedImageError, OSError) as e:
            raise ResbenchError(f"{self.paths[i]}: not a readable image ({e}); remove it or replace it") from None
        return self.transform(img), self.labels[i]  # (C, h, w), ()


def folder_batches(split: FolderSplit, indices: torch.Tensor | None, size: tuple[int, int], batch: int,
                   workers: int, stats, crop_pct: float | None = None, interpolation: str | None = None,
                   model=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x (b, C, *size) normalised float32, y (b,)) batches of the split's images `indices` (None: all), in order,
    each image through timm's eval transform at `size`."""
    keep = range(len(split.paths)) if indices is None else indices.tolist()
    paths = [split.paths[i] for i in keep]
    transform = eval_transform(tuple(size), crop_pct, interpolation, stats[0], stats[1], model)
    files = _Files(paths, split.labels[list(keep)], transform, split.gray)
    # workers=0 decodes in this process; more: separate processes, the model's threads keep their cores
    yield from DataLoader(files, batch_size=batch, shuffle=False, num_workers=workers)


READERS = ("memory", "stream")  # how a sweep reads an image folder: decoded whole into memory, or per batch


def check_stream_options(reader: str, workers: int | None, crop_pct: float | None, interpolation: str | None) -> None:
    """The streaming reader's options, checked before any work (a user error names the option)."""
    if reader not in READERS:
        raise ResbenchError(f"--reader {reader!r}: expected one of {', '.join(READERS)}")
    if reader != "stream":
        options = (("--loader-workers", workers), ("--crop-pct", crop_pct), ("--interpolation", interpolation))
        given = [n for n, v in options if v is not None]
        if given:
            raise ResbenchError(f"{given[0]}: only with --reader stream (timm's eval transform on an image folder)")
        return
    if workers is not None and workers < 0:
        raise ResbenchError(f"--loader-workers {workers}: expected 0 (decode in this process) or more loader processes")
    eval_transform((8, 8), crop_pct, interpolation, (0.5,), (0.5,))  # raises on a bad crop_pct or interpolation


def eval_settings(crop_pct: float | None, interpolation: str | None, config: dict) -> tuple[float, str]:
    """(crop_pct, interpolation) of a checkpoint's eval transform: the sweep's options where given, else the
    model's own (`config`'s eval_crop_pct / eval_interpolation: a tagged timm model's pretrained config, or a
    checkpoint that records them), else the whole image (1.0) and bilinear."""
    return (float(crop_pct if crop_pct is not None else config.get("eval_crop_pct") or 1.0),
            str(interpolation or config.get("eval_interpolation") or "bilinear"))


def transform_text(reader: str, dataset: str, crop_pct: float | None, interpolation: str | None) -> str:
    """A row's `transform`: '' for the in-memory reader (bilinear antialiased resize of the whole image), else
    timm's eval transform and its settings."""
    if reader != "stream" or dataset != "imagefolder":
        return ""
    crop_pct, interpolation = eval_settings(crop_pct, interpolation, {})
    return f"timm eval crop_pct={crop_pct:g} {interpolation}"
