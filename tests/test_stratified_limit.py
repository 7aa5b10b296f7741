"""--limit N: a fixed-seed, class-stratified sample, the same images in every cell and on every machine."""

import json

import pytest
import torch

from conftest import make_checkpoint
from folders import CLASSES, write_folder
from resbench.checkpoints import save_checkpoint
from resbench.data.subset import stratified_indices, subset_text
from resbench.store import KEY_COLUMNS, read_results, row_key


def test_each_class_gets_its_share():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    keep = stratified_indices(labels, 10, seed=0)
    assert torch.bincount(labels[keep]).tolist() == [6, 3, 1]
    assert keep.tolist() == sorted(set(keep.tolist()))  # ascending, no repeats
    # largest remainder: 7 of (60, 30, 10) is 4.2, 2.1, 0.7 -> 4, 2, 1
    assert torch.bincount(labels[stratified_indices(labels, 7, 0)], minlength=3).tolist() == [4, 2, 1]


def test_the_same_seed_draws_the_same_images_whatever_the_global_rng():
    labels = torch.arange(1000) % 7
    torch.manual_seed(1)
    a = stratified_indices(labels, 50, seed=3)
    torch.manual_seed(99)
    torch.rand(10)
    b = stratified_indices(labels, 50, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, stratified_indices(labels, 50, seed=4))


def test_a_limit_at_or_above_the_split_is_the_whole_split():
    labels = torch.tensor([0, 1, 1])
    assert stratified_indices(labels, 3, 0).tolist() == [0, 1, 2]
    assert subset_text("stratified", 3, 3, 0) == "full"
    assert subset_text("stratified", 2, 3, 5) == "stratified 2 of 3, seed 5"
    assert subset_text("first", 2, 3, 5) == "first 2 of 3"


@pytest.fixture(scope="module")
def folder_sweep(tmp_path_factory):
    """A val-only folder of 21 images in 3 classes (12, 6, 3) and an RGB model for it."""
    root = write_folder(tmp_path_factory.mktemp("folder"))
    ckpt = make_checkpoint("conv2d_iso", in_chans=3, num_classes=3, train_res=16)
    ckpt.data_stats = {"mean": [0.5] * 3, "std": [0.25] * 3}
    path = save_checkpoint(ckpt, tmp_path_factory.mktemp("ck") / "rgb.pt")
    return root, path


def sweep(cli, folder_sweep, out, *extra):
    root, path = folder_sweep
    code, _, err = cli("sweep", path, "--dataset", "imagefolder", "--data-dir", root, "--test-res", "12,16",
                       "--policy", "native", "--limit", 7, "--log-samples", "--quiet", "-o", out, *extra)
    assert code == 0, err
    return [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]


def test_limit_on_an_image_folder_takes_every_class(cli, folder_sweep, tmp_path):
    rows = sweep(cli, folder_sweep, tmp_path / "s")
    assert len(rows) == 2
    for row in rows:
        assert row["class_n"] == [4, 1, 2]  # 7 of (12, 3, 6): classes sorted by name, "été" after "zebra"
        assert row["subset"] == "stratified" and row["test_images"] == "stratified 7 of 21, seed 0"
        assert row["class_names"] == sorted(CLASSES)
    df = read_results(tmp_path / "s")
    assert set(df["subset"]) == {"stratified"}
    from resbench.store import read_samples

    index = [read_samples(tmp_path / "s", r)["index"].tolist() for r in df.itertuples()]
    assert index[0] == index[1] and len(index[0]) == 7  # the same images in every cell
    assert max(index[0]) >= 12  # positions in the split: images of the later classes are in it
    record = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert record["config"]["subset"] == "stratified" and record["config"]["seed"] == 0
    assert record["checkpoints"][0]["subset"] == "stratified 7 of 21, seed 0"


def test_first_n_is_an_explicit_choice_and_its_own_cell(cli, folder_sweep, tmp_path):
    out = tmp_path / "s"
    sweep(cli, folder_sweep, out)
    rows = sweep(cli, folder_sweep, out, "--subset", "first")  # not taken for the stratified cells
    first = [r for r in rows if r["subset"] == "first"]
    assert len(rows) == 4 and len(first) == 2
    assert all(r["class_n"] == [7, 0, 0] and r["test_images"] == "first 7 of 21" for r in first)


def test_another_seed_draws_another_sample(cli, folder_sweep, tmp_path):
    a = sweep(cli, folder_sweep, tmp_path / "a")
    b = sweep(cli, folder_sweep, tmp_path / "b", "--seed", 1)
    assert a[0]["class_n"] == b[0]["class_n"] == [4, 1, 2] and a[0]["seed"] == 0 and b[0]["seed"] == 1
    from resbench.store import read_samples

    images = [read_samples(out, rows[0])["index"].tolist() for out, rows in ((tmp_path / "a", a), (tmp_path / "b", b))]
    assert images[0] != images[1]


def test_rows_logged_before_the_rule_keep_their_keys():
    old_full = {"checkpoint_sha256": "x", "test_res": "14", "policy": "native", "bandlimit": "on", "seed": 0,
                "limit": -1, "precision": "fp32"}
    old_subset = old_full | {"limit": 100}
    rule = KEY_COLUMNS.index("subset")
    assert row_key(old_full)[rule] == "" and row_key(old_subset)[rule] == "first"
    assert row_key(old_full) == row_key(old_full | {"subset": ""})  # a full run finds old full cells done
    assert row_key(old_subset) != row_key(old_subset | {"subset": "stratified"})


def test_an_unknown_rule_is_a_user_error(cli, folder_sweep, tmp_path):
    root, path = folder_sweep
    code, _, err = cli("sweep", path, "--dataset", "imagefolder", "--data-dir", root, "--limit", 5,
                       "--subset", "random", "-o", tmp_path / "x")
    assert code == 2 and "--subset 'random'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
