"""--reader stream: an image folder decoded batch by batch by DataLoader workers, each image through timm's
eval transform at the test size; the transform in every row and in the cell's identity."""

import json

import pytest
import torch
from PIL import Image

from conftest import make_checkpoint
from folders import write_folder
from resbench.checkpoints import save_checkpoint
from resbench.data.stream import folder_batches, folder_split
from resbench.data.transforms import eval_transform

STATS = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("f"), {"a b": 5, "ü": 4})  # val only, JPEG and PNG, mixed sizes


@pytest.fixture(scope="module")
def rgb_ckpt(tmp_path_factory):
    ckpt = make_checkpoint("conv2d_iso", in_chans=3, num_classes=2, train_res=16)
    ckpt.data_stats = {"mean": list(STATS[0]), "std": list(STATS[1])}
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("ck") / "rgb2.pt")


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_are_timms_transform_of_each_file(folder, workers):
    split = folder_split(folder)
    assert len(split.paths) == 9 and split.labels.tolist() == [0] * 5 + [1] * 4 and not split.gray
    keep = torch.tensor([1, 4, 6, 8])
    got = list(folder_batches(split, keep, (20, 28), 3, workers, STATS, 0.875, "bicubic"))
    assert [len(y) for _, y in got] == [3, 1]
    x, y = torch.cat([b[0] for b in got]), torch.cat([b[1] for b in got])
    t = eval_transform((20, 28), 0.875, "bicubic", *STATS)
    want = torch.stack([t(Image.open(split.paths[i]).convert("RGB")) for i in keep.tolist()])
    assert x.shape == (4, 3, 20, 28) and torch.equal(x, want) and y.tolist() == [0, 0, 1, 1]


def sweep(cli, path, folder, out, *extra):
    code, _, err = cli("sweep", path, "--dataset", "imagefolder", "--data-dir", folder, "--test-res", "12,16",
                       "--policy", "native", "--quiet", "-o", out, *extra)
    assert code == 0, err
    return [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]


def test_a_streamed_sweep_records_its_transform_and_is_its_own_cell(cli, rgb_ckpt, folder, tmp_path):
    out = tmp_path / "s"
    memory = sweep(cli, rgb_ckpt, folder, out)
    streamed = sweep(cli, rgb_ckpt, folder, out, "--reader", "stream", "--loader-workers", 0, "--crop-pct", 0.9,
                     "--interpolation", "bicubic", "--limit", 6)
    assert [r["transform"] for r in memory] == ["", ""]
    new = streamed[2:]
    assert len(streamed) == 4 and {r["transform"] for r in new} == {"timm eval crop_pct=0.9 bicubic"}
    assert all(r["n"] == 6 and r["class_n"] == [3, 3] for r in new)  # stratified: 6 of (5, 4)
    again = sweep(cli, rgb_ckpt, folder, out, "--reader", "stream", "--loader-workers", 2, "--crop-pct", 0.9,
                  "--interpolation", "bicubic", "--limit", 6)
    assert len(again) == 4  # the same cells, found done


def test_two_workers_score_what_one_process_scores(cli, rgb_ckpt, folder, tmp_path):
    a = sweep(cli, rgb_ckpt, folder, tmp_path / "a", "--reader", "stream", "--loader-workers", 0)
    b = sweep(cli, rgb_ckpt, folder, tmp_path / "b", "--reader", "stream", "--loader-workers", 2)
    assert [(r["correct"], round(r["loss"], 5)) for r in a] == [(r["correct"], round(r["loss"], 5)) for r in b]


@pytest.mark.parametrize("args,name", [(("--loader-workers", "2"), "--loader-workers"),
                                       (("--reader", "stream", "--crop-pct", "0"), "--crop-pct"),
                                       (("--reader", "stream", "--interpolation", "cubic"), "--interpolation"),
                                       (("--reader", "disk"), "--reader")])
def test_stream_options_are_checked(cli, rgb_ckpt, folder, tmp_path, args, name):
    code, _, err = cli("sweep", rgb_ckpt, "--dataset", "imagefolder", "--data-dir", folder, *args,
                       "-o", tmp_path / "x")
    assert code == 2 and name in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
