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


@pytest.fixture(scope="module")
def timm_weights(tmp_path_factory):
    """Random weights of timm's tiny test ResNet for the 2-class RGB folder."""
    import timm

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "resnet.pt"
    torch.save(timm.create_model("test_resnet", num_classes=2).state_dict(), path)
    return path


def timm_sweep(cli, arch, weights, folder, out, *extra):
    code, _, err = cli("sweep", "--model", f"timm:{arch}", "--weights", weights, "--train-res", 32, "--dataset",
                       "imagefolder", "--data-dir", folder, "--reader", "stream", "--loader-workers", 0, "--test-res", "24",
                       "--policy", "native", "--quiet", "-o", out, *extra)
    return code, err, [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()] if code == 0 else []


def test_a_tagged_timm_model_brings_its_crop_interpolation_and_normalisation(cli, timm_weights, folder, tmp_path):
    """timm:test_resnet.r160_in1k's pretrained config (no download): crop_pct 0.95, bilinear, mean/std 0.5; the
    val-only folder needs no --mean/--std; a given --crop-pct/--interpolation wins over the model's."""
    import timm

    cfg = timm.create_model("test_resnet.r160_in1k", pretrained=False).pretrained_cfg
    code, err, rows = timm_sweep(cli, "test_resnet.r160_in1k", timm_weights, folder, tmp_path / "tag")
    assert code == 0, err
    assert {r["transform"] for r in rows} == {f"timm eval crop_pct={cfg['crop_pct']:g} {cfg['interpolation']}"}
    assert not any(r["warning"] for r in rows)  # the statistics are the model's, not guessed from the data
    code, err, rows = timm_sweep(cli, "test_resnet.r160_in1k", timm_weights, folder, tmp_path / "given",
                                 "--crop-pct", 0.8, "--interpolation", "bicubic")
    assert code == 0, err
    assert {r["transform"] for r in rows} == {"timm eval crop_pct=0.8 bicubic"}


def test_the_model_settings_reach_the_transform_tensor_for_tensor(timm_weights, folder):
    """The streamed batches of a tagged model equal timm's own transform resolved from that model."""
    import timm
    from timm.data import create_transform, resolve_data_config

    from resbench.data.stream import eval_settings

    net = timm.create_model("test_resnet.r160_in1k", pretrained=False)
    config = {"eval_crop_pct": net.pretrained_cfg["crop_pct"], "eval_interpolation": "bicubic"}
    crop, interpolation = eval_settings(None, None, config)
    split = folder_split(folder)
    x, _ = next(folder_batches(split, None, (24, 24), 9, 0, STATS, crop, interpolation))
    want_cfg = resolve_data_config({"input_size": (3, 24, 24), "interpolation": "bicubic", "mean": STATS[0],
                                    "std": STATS[1]}, model=net)
    t = create_transform(**want_cfg, is_training=False)
    want = torch.stack([t(Image.open(p).convert("RGB")) for p in split.paths])
    assert want_cfg["crop_pct"] == net.pretrained_cfg["crop_pct"] != 1.0 and torch.equal(x, want)


def test_an_untagged_timm_name_assumes_nothing(cli, timm_weights, folder, tmp_path):
    """timm:test_resnet: the user's own weights; crop 1.0 bilinear, and a val-only folder needs --mean/--std."""
    code, err, _ = timm_sweep(cli, "test_resnet", timm_weights, folder, tmp_path / "bare")
    assert code == 2 and "--mean/--std" in err and len(err.strip().splitlines()) == 1
    code, err, rows = timm_sweep(cli, "test_resnet", timm_weights, folder, tmp_path / "norm", "--mean", "imagenet")
    assert code == 0, err
    assert {r["transform"] for r in rows} == {"timm eval crop_pct=1 bilinear"}
