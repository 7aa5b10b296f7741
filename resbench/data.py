"""Datasets read from local files (IDX, CIFAR pickles, image folders) or rendered, at any resolution."""

from __future__ import annotations

import functools
import gzip
import math
import pickle
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from resbench.errors import ResbenchError

__all__ = [
    "DATASETS",
    "DEFAULT_DIRS",
    "SPLITS",
    "MAX_SIZE",
    "SYNTHETIC_SIZES",
    "DatasetInfo",
    "dataset_info",
    "load_raw",
    "load",
    "dataset_stats",
    "render_synthetic",
    "resize_images",
    "channel_stats",
    "parse_size",
    "parse_sizes",
    "format_size",
    "read_idx",
    "clear_caches",
]

DATASETS = ("fashion-mnist", "mnist", "cifar10", "imagefolder", "synthetic")
SPLITS = ("train", "test")
MAX_SIZE = 4096  # largest side accepted by parse_size

# Where each dataset is looked for when no data_dir is given. Nothing is ever downloaded.
# - fashion-mnist: Debian's `dataset-fashion-mnist` package installs the four gzipped IDX files here.
# - mnist: the same layout (train-images-idx3-ubyte.gz, ...); copy the IDX files there yourself.
# - cifar10: torchvision's `cifar-10-batches-py` folder (data_batch_1..5, test_batch), copied by hand.
# - imagefolder: no default, it always needs data_dir; synthetic needs no files.
DEFAULT_DIRS: dict[str, Path] = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "mnist": Path("/usr/share/datasets/mnist"),
    "cifar10": Path("~/.cache/resbench/cifar-10-batches-py").expanduser(),
}

_INSTALL_HINTS = {
    "fashion-mnist": "install it with 'apt-get install dataset-fashion-mnist' or pass --data-dir DIR",
    "mnist": "copy the four MNIST IDX files there or pass --data-dir DIR",
    "cifar10": "copy torchvision's cifar-10-batches-py folder there or pass --data-dir DIR",
}

_FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_MNIST_CLASSES = tuple(str(d) for d in range(10))
_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                    "dog", "frog", "horse", "ship", "truck")

# Synthetic set: each image is a sum of plane waves cos(2*pi*(fx*x + fy*y) + phase) on the unit
# square. The class is the orientation of its main waves (0, 45, 90, 135 degrees, +-11.25 degrees
# jitter); one weaker wave of random orientation is a distractor. Every frequency is below
# _SYN_MAX_FREQ < 3 cycles per image on each axis and radially, so the field is band-limited below
# the Nyquist limit (3.5 cycles) of a 7x7 grid and every grid from 7x7 up samples it without aliasing.
SYNTHETIC_SIZES = {"train": 2000, "test": 1000}
_SYN_CLASSES = ("0deg", "45deg", "90deg", "135deg")
_SYN_WAVES = 3  # class waves per image, plus one distractor
_SYN_MIN_FREQ, _SYN_MAX_FREQ = 1.0, 2.9  # cycles per image (radial)
_SYN_JITTER = math.pi / 16
_SYN_NATIVE = (28, 28)

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
_GRAY_MODES = {"1", "L", "LA"}
_CHUNK = 4096  # images per interpolate call: bounds the temporary memory of resize_images
_CACHE_SLOTS = 16
_SIZE_RE = re.compile(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", re.ASCII)


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset before seeing any image."""

    name: str
    in_chans: int
    num_classes: int
    native_size: tuple[int, int]  # (h, w) of the stored images
    classes: tuple[str, ...]


# ----------------------------------------------------------------------------------------------
# sizes


def parse_size(s) -> tuple[int, int]:
    """An image size from 28, (28, 20), "28" or "28x20" (h x w) -> (h, w)."""
    if isinstance(s, bool):
        raise ResbenchError(f"size {s!r}: expected a positive integer or HxW like 28 or 28x20")
    if isinstance(s, (int, np.integer)):
        h = w = int(s)
    elif isinstance(s, (tuple, list)):
        if len(s) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in s):
            raise ResbenchError(f"size {s!r}: expected a pair of integers (h, w) like (28, 20)")
        h, w = int(s[0]), int(s[1])
    elif isinstance(s, str):
        m = _SIZE_RE.fullmatch(s)
        if m is None:
            raise ResbenchError(f"size {s!r}: expected a positive integer or HxW like 28 or 28x20")
        try:
            h, w = int(m.group(1)), int(m.group(2) or m.group(1))
        except ValueError:  # more digits than int() converts (4300): far above MAX_SIZE, refused below
            h = w = MAX_SIZE + 1
    else:
        raise ResbenchError(f"size {s!r}: expected a positive integer or HxW like 28 or 28x20")
    if not (1 <= h <= MAX_SIZE and 1 <= w <= MAX_SIZE):
        raise ResbenchError(f"size {s!r}: each side must be between 1 and {MAX_SIZE} pixels")
    return h, w


def parse_sizes(text) -> list[tuple[int, int]]:
    """A comma list of sizes like "7,14,28x20" -> [(7, 7), (14, 14), (28, 20)]."""
    if not isinstance(text, str):
        raise ResbenchError(f"sizes {text!r}: expected a comma-separated list like 7,14,28x20")
    items = text.split(",")
    if not text.strip() or any(not item.strip() for item in items):
        raise ResbenchError(f"sizes {text!r}: expected a comma-separated list like 7,14,28x20 with no empty items")
    sizes = []
    for item in items:
        try:
            sizes.append(parse_size(item))
        except ResbenchError as e:
            raise ResbenchError(f"sizes {text!r}: {e}") from None
    return sizes


def format_size(size) -> str:
    """(28, 28) -> "28", (28, 20) -> "28x20"; the inverse of parse_size."""
    h, w = parse_size(size)
    return str(h) if h == w else f"{h}x{w}"


# ----------------------------------------------------------------------------------------------
# names, splits, limits


def _check_name(name) -> str:
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise ResbenchError(f"dataset {name!r}: unknown; expected one of {', '.join(DATASETS)}")
    return key


def _check_split(split) -> str:
    if split not in SPLITS:
        raise ResbenchError(f"split {split!r}: expected 'train' or 'test'")
    return split


def _check_limit(limit) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ResbenchError(f"limit {limit!r}: expected a positive number of images (or none for all)")
    return int(limit)


def _data_root(name: str, data_dir) -> Path:
    if data_dir is None:
        if name not in DEFAULT_DIRS:
            raise ResbenchError(f"{name}: needs a data dir; pass --data-dir DIR pointing at a tree "
                                f"with train/ and test/")
        return Path(DEFAULT_DIRS[name])
    return Path(data_dir).expanduser()  # the finders name it in their message when it is missing


def _file_key(path: Path) -> tuple[str, int, int]:
    """(resolved path, mtime, size): the cache key of a file, so an edited file is read again."""
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def clear_caches() -> None:
    """Forget every parsed file and computed statistic held in memory."""
    for fn in (_idx_pair_cached, _cifar_batch_cached, _cifar_split_cached, _imagefolder_cached,
               _tree_cached, _stats_cached, _synthetic_params):
        fn.cache_clear()


# ----------------------------------------------------------------------------------------------
# dataset info


def dataset_info(name, data_dir=None) -> DatasetInfo:
    """Channels, classes and native size of a dataset (an image folder is scanned, nothing else is read)."""
    name = _check_name(name)
    if name == "fashion-mnist":
        return DatasetInfo(name, 1, 10, (28, 28), _FASHION_CLASSES)
    if name == "mnist":
        return DatasetInfo(name, 1, 10, (28, 28), _MNIST_CLASSES)
    if name == "cifar10":
        return DatasetInfo(name, 3, 10, (32, 32), _CIFAR10_CLASSES)
    if name == "synthetic":
        return DatasetInfo(name, 1, len(_SYN_CLASSES), _SYN_NATIVE, _SYN_CLASSES)
    tree = _scan_tree(_data_root(name, data_dir))
    return DatasetInfo(name, 1 if tree.gray else 3, len(tree.classes), tree.native_size, tree.classes)


# ----------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its suffix)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ResbenchError(f"{path}: cannot read ({e.strerror}); check the file's permissions") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ResbenchError(f"{path}: gzip data is truncated or corrupt ({e}); "
                                f"replace it with a good copy") from None
    return raw


def read_idx(path) -> np.ndarray:
    """An unsigned-byte IDX file (gzipped or not) as a read-only uint8 array with the file's dims."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ResbenchError(f"{path}: {len(raw)} bytes, too short for an IDX header; replace it with a good copy")
    magic = int.from_bytes(raw[:4], "big")
    ndim = raw[3]
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= ndim <= 4:
        raise ResbenchError(f"{path}: bad IDX magic number 0x{magic:08x}, expected 0x000008NN "
                            f"(unsigned bytes, NN dims); is this an MNIST-style IDX file?")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ResbenchError(f"{path}: truncated IDX header ({len(raw)} bytes); replace it with a good copy")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(dims)
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ResbenchError(f"{path}: {what}: {len(raw)} bytes but dims {dims} need {expected}; "
                            f"replace it with a good copy")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)  # dims, e.g. (N, 28, 28)


@functools.lru_cache(maxsize=_CACHE_SLOTS)
def _idx_pair_cached(images_key: tuple, labels_key: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    images_path, labels_path = Path(images_key[0]), Path(labels_key[0])
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ResbenchError(f"{images_path}: image dims {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1:
        raise ResbenchError(f"{labels_path}: label dims {labels.shape}, expected (N,)")
    if len(images) != len(labels):
        raise ResbenchError(f"{labels_path}: {len(labels)} labels for {len(images)} images in "
                            f"{images_path}; the two files must come from the same split")
    if len(labels) and labels.max() >= 10:
        raise ResbenchError(f"{labels_path}: label {int(labels.max())} out of range, expected 0..9")
    # copy: np.frombuffer views are read-only and torch wants writable memory it owns
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28) uint8
    # int64: the label dtype cross_entropy expects
    y = torch.from_numpy(labels.astype(np.int64))  # (N,)
    return x, y


def _find_idx(name: str, root: Path, split: str) -> tuple[Path, Path]:
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    sub = "FashionMNIST" if name == "fashion-mnist" else "MNIST"
    for d in (root, root / "raw", root / sub / "raw"):  # also torchvision's download layout
        found = []
        for stem in stems:
            plain, gz = d / stem, d / f"{stem}.gz"
            found.append(plain if plain.is_file() else gz if gz.is_file() else None)
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
        if found[0] is not None:
            raise ResbenchError(f"{name} labels not found: looked for {d / stems[1]}(.gz) next to "
                                f"{found[0]}; put the labels file there")
    raise ResbenchError(f"{name} not found: looked for {root / stems[0]}(.gz); {_INSTALL_HINTS[name]}")


# ----------------------------------------------------------------------------------------------
# CIFAR-10 pickles, read without running foreign code


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


@functools.lru_cache(maxsize=_CACHE_SLOTS)
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


@functools.lru_cache(maxsize=_CACHE_SLOTS)
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
                        f"{root / 'cifar-10-batches-py' / names[0]}; {_INSTALL_HINTS['cifar10']}")


# ----------------------------------------------------------------------------------------------
# image folders


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
    sig = tuple((split, cls, tuple(_file_key(p) for p in files))
                for split in SPLITS for cls, files in listing[split].items())
    return _tree_cached(str(root.resolve()), sig)


@functools.lru_cache(maxsize=_CACHE_SLOTS)
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


@functools.lru_cache(maxsize=_CACHE_SLOTS)
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


# ----------------------------------------------------------------------------------------------
# synthetic band-limited fields


@functools.lru_cache(maxsize=_CACHE_SLOTS)
def _synthetic_params(split: str, seed: int) -> tuple[np.ndarray, ...]:
    """Labels and per-wave (fx, fy, phase, amplitude) of every image in a split, from the seed alone."""
    n = SYNTHETIC_SIZES[split]
    rng = np.random.default_rng([seed & 0xFFFFFFFF, SPLITS.index(split), 0x5EED])
    k = len(_SYN_CLASSES)
    labels = rng.permutation(np.arange(n) % k)  # (n,) balanced classes in random order
    theta = labels[:, None] * (math.pi / k) + rng.uniform(-_SYN_JITTER, _SYN_JITTER, (n, _SYN_WAVES))  # (n, K)
    radius = rng.uniform(_SYN_MIN_FREQ, _SYN_MAX_FREQ, (n, _SYN_WAVES))  # (n, K)
    amp = rng.uniform(0.5, 1.0, (n, _SYN_WAVES))  # (n, K)
    # one distractor wave per image: any orientation, weaker, anywhere in the band
    theta = np.concatenate([theta, rng.uniform(0, math.pi, (n, 1))], axis=1)  # (n, K+1)
    radius = np.concatenate([radius, rng.uniform(0.5, _SYN_MAX_FREQ, (n, 1))], axis=1)  # (n, K+1)
    amp = np.concatenate([amp, rng.uniform(0.0, 0.5, (n, 1))], axis=1)  # (n, K+1)
    phase = rng.uniform(0, 2 * math.pi, theta.shape)  # (n, K+1)
    fx, fy = radius * np.cos(theta), radius * np.sin(theta)  # (n, K+1) cycles per image along w, h
    amp = amp / amp.sum(axis=1, keepdims=True)  # each field stays in [-1, 1]
    return labels.astype(np.int64), fx, fy, phase, amp


def render_synthetic(split, size, seed=0, limit=None, start=0) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthetic split sampled at pixel centres of an (h, w) grid: (x float32 (N, 1, h, w) in [0, 1], y).

    Images `start` to `limit` (exclusive) of the split, so large sizes can be rendered batch by batch.
    """
    split = _check_split(split)
    h, w = parse_size(size)
    limit = _check_limit(limit)
    labels, fx, fy, phase, amp = _synthetic_params(split, int(seed))
    n = len(labels) if limit is None else min(limit, len(labels))
    start = min(max(0, int(start)), n)
    ys = (np.arange(h) + 0.5) / h  # (h,) row centres on [0, 1]
    xs = (np.arange(w) + 0.5) / w  # (w,) column centres on [0, 1]
    out = np.empty((n - start, 1, h, w), dtype=np.float32)  # (N, 1, h, w)
    step = max(1, 2 ** 22 // (h * w * fx.shape[1]))  # images per chunk: bounds the complex temporaries
    for s in range(start, n, step):
        e = min(n, s + step)
        # separable: cos(2pi(fx x + fy y) + phase) = Re(exp(2pi i fx x) * exp(i(2pi fy y + phase)))
        ey = amp[s:e, :, None] * np.exp(1j * (2 * np.pi * fy[s:e, :, None] * ys + phase[s:e, :, None]))  # (n, K+1, h)
        ex = np.exp(2j * np.pi * fx[s:e, :, None] * xs)  # (n, K+1, w)
        field = np.einsum("nkh,nkw->nhw", ey, ex).real  # (n, h, w) in [-1, 1]
        # float32: the dtype models take; the float64 sums above keep sizes consistent to ~1e-7
        out[s - start:e - start, 0] = (0.5 + 0.5 * field).astype(np.float32)
    return torch.from_numpy(out), torch.from_numpy(labels[start:n].copy())  # (N, 1, h, w), (N,)


# ----------------------------------------------------------------------------------------------
# loading


def load_raw(name, split, data_dir=None, limit=None, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images at native size (uint8, float in [0, 1] for synthetic) (N, C, H, W) and int64 labels (N,).

    The first `limit` images are kept. `seed` only matters for "synthetic". Parsed files are kept in
    memory (keyed by resolved path, mtime and size), so a second call is a copy; the tensors returned
    are the caller's to modify.
    """
    name = _check_name(name)
    split = _check_split(split)
    limit = _check_limit(limit)
    if name == "synthetic":
        return render_synthetic(split, _SYN_NATIVE, seed=seed, limit=limit)
    root = _data_root(name, data_dir)
    if name in ("fashion-mnist", "mnist"):
        images_path, labels_path = _find_idx(name, root, split)
        x, y = _idx_pair_cached(_file_key(images_path), _file_key(labels_path))
    elif name == "cifar10":
        x, y = _cifar_split_cached(tuple(_file_key(p) for p in _find_cifar(root, split)))
    else:
        tree = _scan_tree(root)
        if not tree.files[split]:
            where = root / ("train" if split == "train" else "test")
            raise ResbenchError(f"imagefolder {split} split empty: no images under {where}"
                                f"{'' if split == 'train' else ' or ' + str(root / 'val')}; add CLASS/*.png folders")
        x, y = _imagefolder_cached(tree, split)
    n = len(y) if limit is None else min(limit, len(y))
    return x[:n].clone(), y[:n].clone()  # clones: the cache must never see the caller's edits


def resize_images(x: torch.Tensor, size) -> torch.Tensor:
    """(N, C, H, W) images -> float32 (N, C, h, w), bilinear with antialias; uint8 is scaled to [0, 1].

    At the same size the only work is the float conversion (a float32 input is returned as is).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"resize_images: expected a (N, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
    h, w = parse_size(size)
    scale = 255.0 if x.dtype == torch.uint8 else None

    def to_float(t: torch.Tensor) -> torch.Tensor:
        # float32: interpolate needs floats; uint8 pixels become [0, 1] intensities
        t = t.to(torch.float32)
        return t.div_(scale) if scale is not None else t

    n, c, H, W = x.shape
    if (H, W) == (h, w):
        return to_float(x)
    out = torch.empty(n, c, h, w, dtype=torch.float32)  # (N, C, h, w)
    step = max(1, min(_CHUNK, 2 ** 24 // max(1, c * max(H * W, h * w))))  # bounded temporaries
    for s in range(0, n, step):
        out[s:s + step] = F.interpolate(to_float(x[s:s + step]), size=(h, w), mode="bilinear",
                                        align_corners=False, antialias=True)
    return out


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of (N, C, H, W) images in [0, 1] (uint8 is scaled)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.numel() == 0:
        raise ValueError(f"channel_stats: expected a non-empty (N, C, H, W) tensor, got "
                         f"{getattr(images, 'shape', type(images))}")
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)  # (C,)
    total_sq = torch.zeros(c, dtype=torch.float64)  # (C,)
    step = max(1, 2 ** 22 // max(1, images[0].numel()))
    for s in range(0, len(images), step):
        # float64: sums over millions of pixels lose digits in float32
        chunk = images[s:s + step].to(torch.float64)
        if images.dtype == torch.uint8:
            chunk /= 255.0
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    count = images.numel() // c
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in var.sqrt())


def _stats_key(name: str, data_dir, seed: int) -> tuple:
    if name == "synthetic":
        return (name, int(seed))
    root = _data_root(name, data_dir)
    if name in ("fashion-mnist", "mnist"):
        return (name,) + tuple(_file_key(p) for p in _find_idx(name, root, "train"))
    if name == "cifar10":
        return (name,) + tuple(_file_key(p) for p in _find_cifar(root, "train"))
    return (name, _scan_tree(root))


@functools.lru_cache(maxsize=_CACHE_SLOTS)
def _stats_cached(key: tuple, data_dir, seed: int):
    mean, std = channel_stats(load_raw(key[0], "train", data_dir=data_dir, seed=seed)[0])
    # a constant channel has std 0: divide by 1 instead, so it is only centred
    return mean, tuple(v if v > 0 else 1.0 for v in std)


def dataset_stats(name, data_dir=None, seed=0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel of the train split at native size; what `load` uses when stats is None.

    A constant channel gets std 1.0 so that normalising never divides by zero.
    """
    name = _check_name(name)
    data_dir = None if data_dir is None else str(Path(data_dir).expanduser())
    return _stats_cached(_stats_key(name, data_dir, seed), data_dir, int(seed))


def _check_stats(stats, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        mean, std = stats
        mean = torch.as_tensor([float(v) for v in mean], dtype=torch.float32)  # (C,)
        std = torch.as_tensor([float(v) for v in std], dtype=torch.float32)  # (C,)
    except (TypeError, ValueError):
        raise ResbenchError(f"stats {stats!r}: expected (mean, std), each a list of {c} numbers") from None
    if len(mean) != c or len(std) != c:
        raise ResbenchError(f"stats {stats!r}: expected {c} means and {c} stds, one per channel")
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
        raise ResbenchError(f"stats {stats!r}: expected finite means and positive stds")
    return mean, std


def load(name, split, size, data_dir=None, stats=None, limit=None, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised float32 images (N, C, h, w) at `size` and int64 labels (N,).

    Stored images are resized with bilinear antialiasing (as in the S4ND paper); "synthetic" is
    rendered at the size instead. Normalisation uses `stats=(mean, std)` (e.g. from a checkpoint),
    else the train split's statistics at native size. `limit` keeps the first N images, the same
    ones at every size.
    """
    name = _check_name(name)
    split = _check_split(split)
    hw = parse_size(size)
    info = dataset_info(name, data_dir)
    if stats is None:
        stats = dataset_stats(name, data_dir, seed)
    mean, std = _check_stats(stats, info.in_chans)
    if name == "synthetic":
        x, y = render_synthetic(split, hw, seed=seed, limit=limit)
    else:
        raw, y = load_raw(name, split, data_dir=data_dir, limit=limit, seed=seed)
        x = resize_images(raw, hw)
    # in place is safe: x is either new or load_raw's fresh clone
    x.sub_(mean[:, None, None]).div_(std[:, None, None])
    return x, y
