"""Tests for resbench.data: file parsers on files written here, synthetic fields, the reader table, stats."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import write_idx, write_mnist
from resbench import data
from resbench.errors import ResbenchError

FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _fresh_caches():
    data.clear_caches()
    yield
    data.clear_caches()


# ---------------------------------------------------------------------------------------------
# helpers that write dataset files


def write_cifar(root: Path, n=4, protocol=pickle.DEFAULT_PROTOCOL, seed=0):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {"train": [], "test": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, n)]
        with open(d / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"data": x, b"labels": y, b"filenames": [b"a.png"] * n}, f,
                        protocol=protocol)
        out["test" if name == "test_batch" else "train"].append((x, y))
    return d, out


def write_png(path: Path, size, color, mode="RGB"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


# ---------------------------------------------------------------------------------------------
# names, info


def test_unknown_name_lists_known_names():
    with pytest.raises(ResbenchError, match="imagenet.*fashion-mnist.*synthetic"):
        data.dataset_info("imagenet")


def test_bad_split():
    with pytest.raises(ResbenchError, match="'val'"):
        data.load_raw("synthetic", "val")


def test_dataset_info_fixed_sets():
    assert data.dataset_info("fashion-mnist") == data.DatasetInfo(
        "fashion-mnist", 1, 10, (28, 28), data.dataset_info("fashion-mnist").classes)
    assert data.dataset_info("Fashion_MNIST").name == "fashion-mnist"
    assert data.dataset_info("cifar10").native_size == (32, 32)
    info = data.dataset_info("synthetic")
    assert (info.in_chans, info.native_size, len(info.classes)) == (1, (28, 28), info.num_classes)
    assert set(data.DATASETS) == {"fashion-mnist", "mnist", "cifar10", "imagefolder", "synthetic", "spoken-digits",
                                  "moving-fashion-mnist"}


def test_one_reader_per_dataset():
    # the table is the only dispatch: every name has a reader whose info carries that name
    assert data.DATASETS == tuple(data._READERS)
    for name in ("fashion-mnist", "mnist", "cifar10", "synthetic", "spoken-digits", "moving-fashion-mnist"):
        assert data._READERS[name].info(None).name == name
    rendered = ["synthetic", "spoken-digits", "moving-fashion-mnist"]
    assert [n for n, r in data._READERS.items() if r.render is not None] == rendered
    assert [n for n in data.DATASETS if data.is_rendered(n)] == rendered


def test_imagefolder_needs_data_dir():
    with pytest.raises(ResbenchError, match="data-dir"):
        data.dataset_info("imagefolder")


@pytest.mark.parametrize("bad", [0, -1, True, "3", 2.5])
def test_bad_limit(bad):
    with pytest.raises(ResbenchError, match="limit"):
        data.load_raw("synthetic", "test", limit=bad)


# ---------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    written = write_mnist(tmp_path, gz=gz)
    for split in ("train", "test"):
        x, y = data.load_raw("mnist", split, data_dir=tmp_path)
        wx, wy = written[split]
        assert x.dtype == torch.uint8 and x.shape == (len(wx), 1, 28, 28)
        assert y.dtype == torch.int64
        assert np.array_equal(x[:, 0].numpy(), wx) and np.array_equal(y.numpy(), wy)
    x, y = data.load_raw("fashion-mnist", "train", data_dir=tmp_path, limit=3)
    assert np.array_equal(x[:, 0].numpy(), written["train"][0][:3])


def test_idx_cache_is_keyed_by_mtime_and_returns_copies(tmp_path):
    write_mnist(tmp_path, seed=0)
    x1, _ = data.load_raw("mnist", "test", data_dir=tmp_path)
    x1.zero_()  # the caller owns what it gets
    x2, _ = data.load_raw("mnist", "test", data_dir=tmp_path)
    assert x2.any()
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    new = write_mnist(tmp_path, seed=1)["test"][0]
    st_ = images.stat()
    os.utime(images, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    x3, _ = data.load_raw("mnist", "test", data_dir=tmp_path)
    assert np.array_equal(x3[:, 0].numpy(), new)


def test_idx_truncated_file(tmp_path):
    write_mnist(tmp_path, gz=False)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(ResbenchError, match="train-images-idx3-ubyte.*truncated"):
        data.load_raw("mnist", "train", data_dir=tmp_path)


def test_idx_truncated_gzip(tmp_path):
    write_mnist(tmp_path, gz=True)
    f = tmp_path / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-12])
    with pytest.raises(ResbenchError, match="t10k-labels-idx1-ubyte.gz"):
        data.load_raw("mnist", "test", data_dir=tmp_path)


def test_idx_wrong_magic(tmp_path):
    write_mnist(tmp_path, gz=False)
    f = tmp_path / "t10k-images-idx3-ubyte"
    blob = bytearray(f.read_bytes())
    blob[2] = 0x0D  # float32 type code instead of unsigned byte
    f.write_bytes(bytes(blob))
    with pytest.raises(ResbenchError, match="t10k-images-idx3-ubyte.*magic"):
        data.load_raw("mnist", "test", data_dir=tmp_path)


def test_idx_count_mismatch(tmp_path):
    write_mnist(tmp_path, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8), gz=False)
    with pytest.raises(ResbenchError, match="t10k-labels-idx1-ubyte.*4 labels for 5 images"):
        data.load_raw("mnist", "test", data_dir=tmp_path)


def test_missing_dataset_names_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ResbenchError, match=f"fashion-mnist not found: looked for {missing}/train-images"):
        data.load_raw("fashion-mnist", "train", data_dir=missing)
    with pytest.raises(ResbenchError, match="apt-get install dataset-fashion-mnist"):
        data.load_raw("fashion-mnist", "train", data_dir=missing)


def test_missing_default_dir(monkeypatch, tmp_path):
    monkeypatch.setitem(data.DEFAULT_DIRS, "mnist", tmp_path / "mnist")
    with pytest.raises(ResbenchError, match=f"{tmp_path}/mnist/t10k-images-idx3-ubyte"):
        data.load("mnist", "test", 14, stats=((0.5,), (0.5,)))


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Fashion-MNIST not installed")
def test_real_fashion_mnist():
    x, y = data.load("fashion-mnist", "test", 14, limit=100)
    assert x.shape == (100, 1, 14, 14) and x.dtype == torch.float32
    assert y.shape == (100,) and y.dtype == torch.int64 and 0 <= y.min() and y.max() <= 9
    assert len(set(y.tolist())) > 5
    raw, y28 = data.load_raw("fashion-mnist", "test", limit=100)
    assert torch.equal(y, y28) and raw.shape == (100, 1, 28, 28)


# ---------------------------------------------------------------------------------------------
# CIFAR-10


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_loads(tmp_path, protocol):
    d, written = write_cifar(tmp_path, protocol=protocol)
    x, y = data.load_raw("cifar10", "train", data_dir=tmp_path)
    wx = np.concatenate([b[0] for b in written["train"]])
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.uint8
    assert np.array_equal(x.reshape(20, -1).numpy(), wx)
    assert y.tolist() == sum((b[1] for b in written["train"]), [])
    # data_dir may also be the batches folder itself
    xt, yt = data.load_raw("cifar10", "test", data_dir=d)
    assert np.array_equal(xt.reshape(4, -1).numpy(), written["test"][0][0]) and yt.tolist() == written["test"][0][1]


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.target}",))


def test_cifar_refuses_code(tmp_path):
    d, _ = write_cifar(tmp_path)
    target = tmp_path / "pwned"
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evil(target), b"labels": [0]}, f)
    with pytest.raises(ResbenchError, match="test_batch.*not allowed"):
        data.load_raw("cifar10", "test", data_dir=tmp_path)
    assert not target.exists()
    # a plain pickled call to another harmless-looking global is refused too
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": Path("a")}, f)
    with pytest.raises(ResbenchError, match="not allowed"):
        data.load_raw("cifar10", "test", data_dir=tmp_path)


def test_cifar_bad_contents(tmp_path):
    d, _ = write_cifar(tmp_path)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, f)
    with pytest.raises(ResbenchError, match="test_batch.*1 labels for 2 images"):
        data.load_raw("cifar10", "test", data_dir=tmp_path)
    (d / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ResbenchError, match="test_batch"):
        data.load_raw("cifar10", "test", data_dir=tmp_path)
    (d / "data_batch_3").unlink()
    with pytest.raises(ResbenchError, match="data_batch_3"):
        data.load_raw("cifar10", "train", data_dir=tmp_path)


def test_cifar_missing(tmp_path):
    with pytest.raises(ResbenchError, match=f"cifar10 not found: looked for {tmp_path}/data_batch_1"):
        data.load_raw("cifar10", "train", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# image folders


def test_imagefolder(tmp_path):
    colors = {"cat": (255, 0, 0), "dog": (0, 0, 255)}
    for split, n in (("train", 3), ("val", 2)):
        for cls, color in colors.items():
            for i in range(n):
                write_png(tmp_path / split / cls / f"{i}.png", (10, 8), color)  # PIL size is (w, h)
    write_png(tmp_path / "train" / "dog" / "big.png", (20, 16), (0, 0, 255))  # resized to native
    info = data.dataset_info("imagefolder", tmp_path)
    assert info.classes == ("cat", "dog") and info.num_classes == 2
    assert info.in_chans == 3 and info.native_size == (8, 10)
    x, y = data.load_raw("imagefolder", "train", data_dir=tmp_path)
    assert x.shape == (7, 3, 8, 10) and x.dtype == torch.uint8
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert (x[y == 0, 0] == 255).all() and (x[y == 0, 2] == 0).all()
    assert (x[y == 1, 2] == 255).all() and (x[y == 1, 0] == 0).all()
    xt, yt = data.load_raw("imagefolder", "test", data_dir=tmp_path)  # val/ serves as test
    assert xt.shape == (4, 3, 8, 10) and yt.tolist() == [0, 0, 1, 1]
    xs, _ = data.load("imagefolder", "test", 4, data_dir=tmp_path)
    assert xs.shape == (4, 3, 4, 4) and torch.isfinite(xs).all()  # green is constant: std falls back to 1
    assert data.dataset_stats("imagefolder", tmp_path)[1][1] == 1.0


def test_imagefolder_grayscale(tmp_path):
    for cls, v in (("a", 10), ("b", 200)):
        write_png(tmp_path / "train" / cls / "0.png", (6, 6), v, mode="L")
        write_png(tmp_path / "test" / cls / "0.png", (6, 6), v, mode="L")
    assert data.dataset_info("imagefolder", tmp_path).in_chans == 1
    x, y = data.load_raw("imagefolder", "test", data_dir=tmp_path)
    assert x.shape == (2, 1, 6, 6) and x[:, 0, 0, 0].tolist() == [10, 200]


def test_imagefolder_empty(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "test").mkdir()
    with pytest.raises(ResbenchError, match="no images"):
        data.dataset_info("imagefolder", tmp_path)
    with pytest.raises(ResbenchError, match="not a directory"):
        data.load_raw("imagefolder", "train", data_dir=tmp_path / "missing")


def test_imagefolder_bad_image(tmp_path):
    write_png(tmp_path / "train" / "a" / "0.png", (4, 4), (1, 2, 3))
    (tmp_path / "train" / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(ResbenchError, match="1.png"):
        data.load_raw("imagefolder", "train", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# synthetic


def test_synthetic_deterministic():
    x1, y1 = data.load_raw("synthetic", "train", seed=3, limit=50)
    x2, y2 = data.load_raw("synthetic", "train", seed=3, limit=50)
    x3, y3 = data.load_raw("synthetic", "train", seed=4, limit=50)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.allclose(x1, x3)
    assert x1.shape == (50, 1, 28, 28) and x1.dtype == torch.float32
    assert 0 <= x1.min() and x1.max() <= 1
    xf, yf = data.load_raw("synthetic", "train", seed=3)
    assert len(yf) == data.SYNTHETIC_SIZES["train"] and torch.equal(xf[:50], x1)  # limit = first N
    xt, _ = data.load_raw("synthetic", "test", seed=3, limit=50)
    assert not torch.allclose(xt, x1)


def test_synthetic_is_one_continuous_field():
    x7, y7 = data.render_synthetic("test", 7, limit=200)
    x21, y21 = data.render_synthetic("test", 21, limit=200)
    # pixel centres of the 7-grid are every third centre of the 21-grid: same samples
    assert torch.equal(y7, y21)
    torch.testing.assert_close(x21[..., 1::3, 1::3], x7, atol=1e-5, rtol=0)
    x14, _ = data.render_synthetic("test", 14, limit=200)
    x28, _ = data.render_synthetic("test", 28, limit=200)
    down = F.interpolate(x28, size=(14, 14), mode="bilinear", antialias=True, align_corners=False)

    def rel(a, b):
        return ((a - b).norm() / (b - 0.5).norm()).item()

    assert rel(down, x14) < 0.15  # only the antialias filter's mild attenuation
    other, _ = data.render_synthetic("test", 14, seed=1, limit=200)
    assert rel(other, x14) > 1.0
    xr, _ = data.render_synthetic("test", (14, 21), limit=3)
    assert xr.shape == (3, 1, 14, 21)


def test_synthetic_learnable():
    def spectra(x):
        p = torch.fft.rfft2(x[:, 0] - x.mean(dim=(1, 2, 3))[:, None, None]).abs().square().flatten(1)
        return p / p.sum(1, keepdim=True)

    x, y = data.render_synthetic("train", 28)
    xt, yt = data.render_synthetic("test", 28)
    k = data.dataset_info("synthetic").num_classes
    assert sorted(set(y.tolist())) == list(range(k))
    f, ft = spectra(x), spectra(xt)
    means = torch.stack([f[y == c].mean(0) for c in range(k)])
    acc = (torch.cdist(ft, means).argmin(1) == yt).float().mean().item()
    assert acc > 0.8 > 2 / k


def test_load_synthetic_normalised_at_every_size():
    mean, std = data.dataset_stats("synthetic")
    x, y = data.load("synthetic", "test", 14, limit=30)
    raw, yr = data.render_synthetic("test", 14, limit=30)
    assert torch.equal(y, yr)
    torch.testing.assert_close(x, (raw - mean[0]) / std[0])
    x56, y56 = data.load("synthetic", "test", "56", stats=((0.5,), (0.25,)), limit=30)
    assert x56.shape == (30, 1, 56, 56) and torch.equal(y56, y)
    with pytest.raises(ResbenchError, match="stats"):
        data.load("synthetic", "test", 14, stats=((0.5, 0.5), (0.2, 0.2)))
    with pytest.raises(ResbenchError, match="stats"):
        data.load("synthetic", "test", 14, stats=((0.5,), (0.0,)))


def test_load_uses_train_stats(tmp_path):
    written = write_mnist(tmp_path, gz=True)
    x, _ = data.load("mnist", "test", 28, data_dir=tmp_path)
    train = written["train"][0] / 255.0
    expected = (written["test"][0] / 255.0 - train.mean()) / train.std()
    np.testing.assert_allclose(x[:, 0].numpy(), expected, atol=1e-5)
    x14, _ = data.load("mnist", "test", (14, 7), data_dir=tmp_path, limit=2)
    assert x14.shape == (2, 1, 14, 7)


# ---------------------------------------------------------------------------------------------
# stats


def test_channel_stats():
    x = torch.rand(50, 3, 8, 8)
    x[:, 1] *= 0.5
    mean, std = data.channel_stats(x)
    assert len(mean) == len(std) == 3
    want_mean = x.double().mean(dim=(0, 2, 3))
    want_std = x.double().std(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), want_mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), want_std, atol=1e-6, rtol=0)
    mean_u8, _ = data.channel_stats((x * 255).round().to(torch.uint8))
    assert abs(mean_u8[0] - mean[0]) < 0.01


def test_synthetic_renders_in_parts_equal_the_whole():
    whole_x, whole_y = data.render_synthetic("test", (9, 7), seed=3, limit=50)
    part_x, part_y = data.render_synthetic("test", (9, 7), seed=3, limit=50, start=20)
    assert torch.equal(part_x, whole_x[20:]) and torch.equal(part_y, whole_y[20:])


@pytest.mark.parametrize("split, seed, limit", [("test", 0, None), ("train", 5, 17)])
def test_labels_alone_of_the_synthetic_set(split, seed, limit):
    labels = data.load_labels("synthetic", split, limit=limit, seed=seed)
    assert labels.dtype == torch.int64
    assert torch.equal(labels, data.load_raw("synthetic", split, limit=limit, seed=seed)[1])


def test_labels_alone_of_a_stored_set_are_its_files_labels(tmp_path):
    written = write_mnist(tmp_path)
    labels = data.load_labels("fashion-mnist", "test", data_dir=tmp_path, limit=7)
    assert labels.dtype == torch.int64 and labels.tolist() == written["test"][1][:7].tolist()
