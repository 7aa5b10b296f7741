"""CIFAR-10: torchvision's cifar-10-batches-py pickles, read by an unpickler that runs no foreign code."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import torch

from resbench.data.common import CACHE_SLOTS, DatasetInfo, Reader, data_root, file_key, first_images
from resbench.errors import ResbenchError

__all__ = ["CIFAR10"]

_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_INSTALL_HINT = "copy torchvision's cifar-10-batches-py folder there or pass --data-dir DIR"


def _numpy_core():
    return getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core to numpy._core


def _latin1_encode(text, encoding="latin1"):
    """What protocol-0..2 pickles of bytes call (_codecs.encode); only the latin-1 round trip."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not allowed")
    return text.encode("latin-1")


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR batch may name: numpy's array rebuilders (the rest are opcodes)."""
    core = _numpy_core()
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): _latin1_encode}
    for mod in ("numpy.core", "numpy._core"):  # old pickles name numpy.core, numpy 2 writes numpy._core
        allowed[(f"{mod}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        frombuffer = getattr(core.numeric, "_frombuffer", None)  # protocol 5 arrays
        if frombuffer is not None:
            allowed[(f"{mod}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """Builds dicts, lists, numbers, strings and numpy arrays; refuses every other global."""

    def find_class(self, module, name):
        obj = _allowed_globals().get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR batch")
        return obj


@functools.lru_cache(maxsize=CACHE_SLOTS)
def _cifar_batch_cached(key: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    path = Path(key[0])
    try:
        with open(path, "rb") as f:
            # latin1: the official batches were pickled by Python 2, whose str holds raw bytes
            batch = _CifarUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise ResbenchError(f"{path}: refused or unreadable CIFAR batch ({e}); expected torchvision's "
                            f"cifar-10-batches-py files") from None
    except Exception as e:  # anything else an odd byte stream raises: the allowed globals run no foreign code
        raise ResbenchError(f"{path}: truncated or corrupt CIFAR batch ({type(e).__name__}: {e}); "
                            f"replace it with a good copy") from None
    if not isinstance(batch, dict):
        raise ResbenchError(f"{path}: holds a {type(batch).__name__}, expected a dict with data and labels")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise ResbenchError(f"{path}: 'data' is {type(data).__name__} {shape}, expected a uint8 array (N, 3072)")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise ResbenchError(f"{path}: 'labels' is not a list of integers") from None
    if labels.shape != (len(data),):
        raise ResbenchError(f"{path}: {labels.size} labels for {len(data)} images, expected one label per image")
    if len(labels) and (labels.min() < 0 or labels.max() >= 10):
        raise ResbenchError(f"{path}: labels outside 0..9")
    x = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())  # (N, 3, 32, 32) uint8
    return x, torch.from_numpy(labels)  # (N,) int64


@functools.lru_cache(maxsize=CACHE_SLOTS)
def _cifar_split_cached(keys: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [_cifar_batch_cached(k) for k in keys]
    if len(parts) == 1:
        return parts[0]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])  # (N, 3, 32, 32), (N,)


def _find_cifar(root: Path, split: str) -> list[Path]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    for d in (root / "cifar-10-batches-py", root):
        if (d / names[0]).is_file():
            missing = [n for n in names if not (d / n).is_file()]
            if missing:
                raise ResbenchError(f"cifar10 {split} split incomplete: {d / missing[0]} missing; "
                                    f"copy the whole cifar-10-batches-py folder")
            return [d / n for n in names]
    raise ResbenchError(f"cifar10 not found: looked for {root / names[0]} and "
                        f"{root / 'cifar-10-batches-py' / names[0]}; {_INSTALL_HINT}")


def _split_keys(data_dir, split: str) -> tuple:
    return tuple(file_key(p) for p in _find_cifar(data_root("cifar10", data_dir), split))


def _info(data_dir) -> DatasetInfo:
    return DatasetInfo("cifar10", 3, 10, (32, 32), _CLASSES)


def _load(split: str, data_dir, seed: int, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    return first_images(_cifar_split_cached(_split_keys(data_dir, split)), limit)  # seed: the files are fixed


def _stats_key(data_dir, seed: int) -> tuple:
    return _split_keys(data_dir, "train")


CIFAR10 = Reader(_info, _load, _stats_key, caches=(_cifar_batch_cached, _cifar_split_cached))
