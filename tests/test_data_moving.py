"""Tests for resbench.data.moving: moving Fashion-MNIST clips, one scene at every (T, H, W), labels that need time."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resbench.data import moving
from resbench.data.idx import FASHION_MNIST
from resbench.errors import ResbenchError

FMNIST = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(not (FMNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


@pytest.fixture(autouse=True)
def _fresh_caches():
    moving.MOVING_FASHION_MNIST.caches[0].cache_clear()
    yield
    moving.MOVING_FASHION_MNIST.caches[0].cache_clear()


def render(split="test", size=(8, 14, 14), seed=0, limit=6, **kwargs):
    return moving.render_moving(split, size, seed=seed, limit=limit, **kwargs)


def test_same_seed_same_clips_different_seed_different():
    x0, y0 = render(seed=3)
    x1, y1 = render(seed=3)
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    x2, _ = render(seed=4)
    assert not torch.equal(x0, x2)
    xs, ys = render(seed=3, start=2)
    assert torch.equal(xs, x0[2:]) and torch.equal(ys, y0[2:])


@pytest.mark.parametrize("size", [(4, 7, 7), (8, 14, 14), (16, 28, 28), (3, 10, 12), (1, 1, 1), [2, 5, 3]])
def test_shapes_dtypes_and_range(size):
    x, y = render(size=size, limit=3)
    assert x.shape == (3, 1, *size) and x.dtype == torch.float32
    assert y.shape == (3,) and y.dtype == torch.int64
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.05


@pytest.mark.parametrize("size", [14, (14, 14), (8, 14), (0, 14, 14), (8, 14, 14.0), "8x14x14", (True, 14, 14),
                                  (8, 14, 5000), None])
def test_bad_size_is_a_user_error(size):
    with pytest.raises(ResbenchError, match="size"):
        render(size=size)


def test_train_and_test_clips_use_disjoint_source_images():
    seen = {}
    for split in ("train", "test"):
        images, labels = FASHION_MNIST.load(split, None, 0, None)
        p = moving.moving_clip_params(split, seed=1, limit=400)
        assert p["sources"].max() < len(labels)
        # the recorded sources are the clip's classes, read from that split's own file
        assert (labels[p["sources"][:, 0]].numpy() == p["label"]).all()
        assert (labels[p["sources"][:, 1]].numpy() == p["other"]).all()
        seen[split] = {hashlib.sha1(images[i].numpy().tobytes()).hexdigest() for i in p["sources"].ravel()}
    assert seen["train"] and seen["test"] and not seen["train"] & seen["test"]


def test_label_needs_time():
    p = moving.moving_clip_params("test", seed=2, limit=200)
    assert (p["label"] != p["other"]).all()
    assert (p["v"][:, 0] > 0).all() and (p["v"][:, 1] < 0).all()
    # played backwards, every clip shows the same frames in reverse order and the other class is the label
    x, y = render(size=(6, 12, 12), limit=8, seed=2)
    xr, yr = render(size=(6, 12, 12), limit=8, seed=2, reverse=True)
    assert torch.allclose(xr.flip(2), x, atol=1e-6)
    assert torch.equal(yr, torch.from_numpy(p["other"][:8])) and not torch.equal(yr, y)
    # no position cue in a frame: the right-mover is in either lane about as often
    top = (p["y"][:, 0] < 0.5).mean()
    assert 0.35 < top < 0.65


def test_labels_balanced_in_every_block_of_ten():
    p = moving.moving_clip_params("train", seed=0, limit=50)
    for k in (1, 2, 5):
        assert np.bincount(p["label"][:10 * k], minlength=10).tolist() == [k] * 10


def test_one_scene_at_every_size():
    fine, y = render(size=(16, 28, 28), limit=12)
    coarse, yc = render(size=(8, 14, 14), limit=12)
    assert torch.equal(y, yc)
    # each pixel is the scene's mean over its box, so area-averaging a fine render gives the coarse one
    assert (F.avg_pool3d(fine, 2) - coarse).abs().mean() < 1e-5
    assert torch.allclose(F.avg_pool3d(fine, 2), coarse, atol=1e-5)
    assert torch.allclose(F.avg_pool3d(fine, (1, 4, 4)), render(size=(16, 7, 7), limit=12)[0], atol=1e-5)
    assert torch.allclose(F.avg_pool3d(fine, (4, 1, 1)), render(size=(4, 28, 28), limit=12)[0], atol=1e-5)
    whole = render(size=(1, 1, 1), limit=12)[0]  # the wrapped field's total, whatever crosses the edge
    assert torch.allclose(whole.flatten(), fine.mean(dim=(1, 2, 3, 4)), atol=1e-6)
    # and nothing is lost between frames: a frame's motion blur is the mean of its sub-frames
    sub = render(size=(32, 14, 14), limit=12)[0]
    assert torch.allclose(F.avg_pool3d(sub, (4, 1, 1)), coarse, atol=1e-5)


def test_reader_info_and_load():
    info = moving.MOVING_FASHION_MNIST.info(None)
    assert info.native_size == moving.NATIVE_SIZE == (16, 28, 28)
    assert (info.in_chans, info.num_classes, len(info.classes)) == (1, 10, 10)
    x, y = moving.MOVING_FASHION_MNIST.load("test", None, 0, 5)
    xr, yr = render(size=moving.NATIVE_SIZE, limit=5)
    assert torch.equal(x, xr) and torch.equal(y, yr)
    x.zero_()  # the caller's copy: the cache must not see it
    assert torch.equal(moving.MOVING_FASHION_MNIST.load("test", None, 0, 5)[0], xr)


@pytest.mark.parametrize("split, seed, limit", [("test", 0, 7), ("test", 3, 12), ("train", 1, 5)])
def test_labels_alone_are_the_rendered_clips_labels(split, seed, limit):
    from resbench import data

    labels = data.load_labels("moving-fashion-mnist", split, limit=limit, seed=seed)
    assert labels.dtype == torch.int64
    assert torch.equal(labels, data.load_raw("moving-fashion-mnist", split, limit=limit, seed=seed)[1])
    assert moving.MOVING_FASHION_MNIST.caches[0].cache_info().currsize == 1  # only load_raw rendered a set
