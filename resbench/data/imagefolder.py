"""Image folders: ROOT/train/CLASS/*.png and ROOT/test (or val)/CLASS/*.png, any format PIL reads."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resbench.data.common import CACHE_SLOTS, SPLITS, DatasetInfo, Reader, data_root, file_key, first_images
from resbench.errors import ResbenchError
from resbench.resolution import resize_images

__all__ = ["IMAGEFOLDER"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
_GRAY_MODES = {"1", "L", "LA"}


@dataclass(frozen=True, eq=False)  # hashed by identity: the caches hand out one object per tree state
class _Tree:
    root: str
    classes: tuple[str, ...]
    native_size: tuple[int, int]
    gray: bool
    files: dict  # split -> tuple of (file key, label)


def _split_dir(root: Path, split: str) -> Path | None:
    names = ("train",) if split == "train" else ("test", "val")
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def _list_images(split_dir: Path) -> dict[str, list[Path]]:
    out = {}
    for d in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in d.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
        out[d.name] = files
    return out


def _scan_tree(root: Path) -> _Tree:
    if not root.is_dir():
        raise ResbenchError(f"imagefolder data dir {root}: not a directory; pass --data-dir DIR")
    listing = {}
    for split in SPLITS:
        d = _split_dir(root, split)
        listing[split] = _list_images(d) if d is not None else {}
    # the signature (paths, mtimes, sizes) makes an edited tree scan again
    sig = tuple((split, cls, tuple(file_key(p) for p in files))
                for split in SPLITS for cls, files in listing[split].items())
    return _tree_cached(str(root.resolve()), sig)


@functools.lru_cache(maxsize=CACHE_SLOTS)
def _tree_cached(root: str, sig: tuple) -> _Tree:
    from PIL import Image, UnidentifiedImageError

    by_split: dict[str, dict[str, tuple]] = {s: {} for s in SPLITS}
    for split, cls, keys in sig:
        if keys:
            by_split[split][cls] = keys
    classes = tuple(sorted(by_split["train"] or by_split["test"]))
    if not classes:
        raise ResbenchError(f"imagefolder {root}: no images found; expected {root}/train/CLASS/*.png "
                            f"(and test/ or val/) with {', '.join(sorted(_IMAGE_SUFFIXES))} files")
    extra = sorted(set(by_split["test"]) - set(classes))
    if extra:
        raise ResbenchError(f"imagefolder {root}: test class folder {extra[0]!r} has no train images; "
                            f"every test class must also be a train class")
    index = {c: i for i, c in enumerate(classes)}
    files = {s: tuple((key, index[c]) for c in sorted(by_split[s]) for key in by_split[s][c]) for s in SPLITS}
    gray, native = True, None
    for split in SPLITS:
        for key, _ in files[split]:
            try:
                with Image.open(key[0]) as im:  # reads the header only
                    if native is None:
                        native = (im.height, im.width)
                    gray = gray and im.mode in _GRAY_MODES
            except (UnidentifiedImageError, OSError) as e:
                raise ResbenchError(f"{key[0]}: not a readable image ({e}); remove it or replace it") from None
    return _Tree(root, classes, native, gray, files)


@functools.lru_cache(maxsize=CACHE_SLOTS)
def _imagefolder_cached(tree: _Tree, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image, UnidentifiedImageError

    entries = tree.files[split]
    c = 1 if tree.gray else 3
    h, w = tree.native_size
    x = torch.empty(len(entries), c, h, w, dtype=torch.uint8)  # (N, C, H, W)
    for i, (key, _) in enumerate(entries):
        try:
            with Image.open(key[0]) as im:
                arr = np.asarray(im.convert("L" if tree.gray else "RGB"))  # (H, W) or (H, W, 3)
        except (UnidentifiedImageError, OSError) as e:
            raise ResbenchError(f"{key[0]}: not a readable image ({e}); remove it or replace it") from None
        img = torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], c).permute(2, 0, 1)  # (C, H, W)
        if img.shape[1:] != (h, w):
            # back to uint8 so the whole set keeps one dtype and one [0, 255] scale
            img = (resize_images(img[None], (h, w))[0] * 255).round_().clamp_(0, 255).to(torch.uint8)
        x[i] = img
    y = torch.tensor([label for _, label in entries], dtype=torch.int64)  # (N,)
    return x, y


def _info(data_dir) -> DatasetInfo:
    tree = _scan_tree(data_root("imagefolder", data_dir))
    return DatasetInfo("imagefolder", 1 if tree.gray else 3, len(tree.classes), tree.native_size, tree.classes)


def _load(split: str, data_dir, seed: int, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    root = data_root("imagefolder", data_dir)
    tree = _scan_tree(root)  # seed: the files are fixed
    if not tree.files[split]:
        where = root / ("train" if split == "train" else "test")
        if split == "train":  # a sweep reads it only for normalisation statistics: a test-only folder names them
            raise ResbenchError(f"imagefolder: no train split under {where} (for training, or for a sweep's "
                                f"normalisation: give --mean/--std, numbers or a preset imagenet/inception)")
        raise ResbenchError(f"imagefolder {split} split empty: no images under {where} or {root / 'val'}; "
                            f"add CLASS/*.png folders")
    return first_images(_imagefolder_cached(tree, split), limit)


def _stats_key(data_dir, seed: int) -> tuple:
    return (_scan_tree(data_root("imagefolder", data_dir)),)


IMAGEFOLDER = Reader(_info, _load, _stats_key, caches=(_tree_cached, _imagefolder_cached))
