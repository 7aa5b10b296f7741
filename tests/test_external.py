"""Tests for models from outside resbench in a sweep: timm by name with a weights file, nn.Module factories
(tests/factory_models.py), the hook protocol, the Python API, the warning column and every user error."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

import factory_models
from conftest import RunsCode, assert_user_error, make_checkpoint, write_mnist
from resbench.errors import ResbenchError
from resbench.external import DATASET_STATS_WARNING
from resbench.store import RESULT_COLUMNS, read_results

SIZES = "16,32,48"
TRAIN = 32
LIMIT = 24


pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random weights of timm's tiny test models for the synthetic set (1 channel, 4 classes):
    {"resnet": plain state dict, "vit": under 'state_dict', "resnet10": a 10-class head}."""
    import timm

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    resnet = timm.create_model("test_resnet", in_chans=1, num_classes=4)
    vit = timm.create_model("test_vit", in_chans=1, num_classes=4, img_size=TRAIN, dynamic_img_size=True)
    paths = {"resnet": folder / "resnet.pt", "vit": folder / "vit.pt", "resnet10": folder / "resnet10.pt"}
    torch.save(resnet.state_dict(), paths["resnet"])
    torch.save({"state_dict": vit.state_dict(), "epoch": 3}, paths["vit"])
    torch.save(timm.create_model("test_resnet", in_chans=1, num_classes=10).state_dict(), paths["resnet10"])
    return paths


def timm_args(arch, weights_file, out, *extra):
    return ["sweep", "--model", f"timm:{arch}", "--weights", weights_file, "--train-res", TRAIN, "--dataset",
            "synthetic", "--test-res", SIZES, "--limit", LIMIT, "--device", "cpu", "--quiet", "-o", out, *extra]


def factory_args(spec, out, *extra, sizes="8,16,24"):
    return ["sweep", "--model", spec, "--dataset", "synthetic", "--test-res", sizes, "--limit", 16,
            "--device", "cpu", "--quiet", "-o", out, *extra]


def cell(df, **where) -> pd.Series:
    rows = df
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, where
    return rows.iloc[0]


@pytest.fixture(scope="module")
def timm_sweep(weights, tmp_path_factory):
    """One folder swept with the timm ResNet and ViT through the CLI (in this process)."""
    from resbench.cli import main

    out = tmp_path_factory.mktemp("timm") / "out"
    for arch, key in (("test_resnet", "resnet"), ("test_vit", "vit")):
        try:
            code = main([str(a) for a in timm_args(arch, weights[key], out)])
        except SystemExit as e:  # main() exits only on an error
            code = e.code
        assert code == 0
    return out


# ----------------------------------------------------------------------------------------------
# timm


def test_timm_models_sweep_every_size_and_policy(timm_sweep):
    df = read_results(timm_sweep)
    assert list(df.columns) == RESULT_COLUMNS
    assert len(df) == 2 * (3 * 2 - 1)  # resize-input at the training size is the native cell, run once
    assert (df["error"] == "").all() and (df["n"] == LIMIT).all()
    assert set(df["model"]) == {"timm:test_resnet", "timm:test_vit"}
    assert set(df["checkpoint"]) == {"timm:test_resnet@resnet", "timm:test_vit@vit"}
    assert set(df["train_res"]) == {str(TRAIN)} and set(df["bandlimit"]) == {"none"}
    for model in ("timm:test_resnet", "timm:test_vit"):
        rows = df[df["model"] == model]
        assert set(zip(rows["test_res"], rows["policy"])) == {(s, p) for s in SIZES.split(",")
                                                               for p in ("native", "resize-input")
                                                               if (s, p) != (str(TRAIN), "resize-input")}


def test_vit_native_at_train_size_is_resize_input(timm_sweep, weights):
    """At the training size both policies run the same computation (so the sweep runs that cell once);
    elsewhere native resamples the position embeddings and resize-input resizes the image, so the two differ."""
    from resbench.external import ModelOptions, load_models

    vit = read_results(timm_sweep).query("model == 'timm:test_vit'")
    at = {(r.test_res, r.policy): r for r in vit.itertuples()}
    assert (str(TRAIN), "resize-input") not in at
    options = ModelOptions(dataset="synthetic", weights=str(weights["vit"]), train_res=str(TRAIN))
    model = load_models(["timm:test_vit"], options)[0].build_model().eval()
    x = torch.randn(2, 1, TRAIN, TRAIN)  # (b, C, H, W)
    with torch.inference_mode():
        assert torch.equal(model.forward_policy(x, "native"), model.forward_policy(x, "resize-input"))
    for size in ("16", "48"):
        assert at[(size, "native")].loss != at[(size, "resize-input")].loss


def test_rerun_runs_no_cell(timm_sweep, weights, cli):
    log = timm_sweep / "cells.jsonl"
    lines = log.read_text().splitlines()
    code, _, err = cli(*timm_args("test_resnet", weights["resnet"], timm_sweep)[:-3], "-o", timm_sweep)  # not quiet
    assert code == 0, err
    assert "5 already done, 0 to run" in err
    assert log.read_text().splitlines() == lines


def test_warning_without_mean_and_std(timm_sweep, weights, cli, tmp_path):
    assert (read_results(timm_sweep)["warning"] == DATASET_STATS_WARNING).all()
    out = tmp_path / "given"
    code, _, err = cli(*timm_args("test_resnet", weights["resnet"], out, "--mean", "0.5", "--std", "0.25"))
    assert code == 0, err
    df = read_results(out)
    assert len(df) == 5 and (df["warning"] == "").all()
    # other statistics: another model for the store (another identity)
    assert set(df["checkpoint_sha256"]).isdisjoint(read_results(timm_sweep)["checkpoint_sha256"])


def test_report_of_timm_models(timm_sweep, tmp_path):
    from resbench.report import write_report

    result = write_report([str(timm_sweep)], str(tmp_path / "r"), ["md"])
    assert "timm:test_vit@vit" in (tmp_path / "r.md").read_text()
    assert not result["missing"]


# ----------------------------------------------------------------------------------------------
# factories and the protocol


def test_factory_through_cli(cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli(*factory_args("factory_models:tiny_cnn", out))
    assert code == 0, err
    df = read_results(out)
    assert len(df) == 3 * 2 - 1 and (df["error"] == "").all() and (df["n"] == 16).all()
    assert set(df["model"]) == {"factory_models:tiny_cnn"} and set(df["train_res"]) == {"16"}
    assert set(df["policy"]) == {"native", "resize-input"} and set(df["bandlimit"]) == {"none"}
    assert (df["warning"] == DATASET_STATS_WARNING).all()


def test_factory_with_weights_file(cli, tmp_path):
    """--weights loads into the factory's module: a head that always says class 2 scores the same everywhere."""
    net = factory_models.tiny_cnn()
    torch.nn.init.zeros_(net.head.weight)
    with torch.no_grad():
        net.head.bias.copy_(torch.tensor([0.0, 0.0, 10.0, 0.0]))
    torch.save({"model": net.state_dict()}, tmp_path / "always2.pt")
    code, _, err = cli(*factory_args("factory_models:tiny_cnn", tmp_path / "out", "--weights", tmp_path / "always2.pt"))
    assert code == 0, err
    df = read_results(tmp_path / "out")
    assert set(df["checkpoint"]) == {"factory_models:tiny_cnn@always2"}
    assert df["correct"].nunique() == 1 and df["loss"].nunique() == 1


def test_factory_through_api_is_the_cli_model(cli, tmp_path):
    from resbench.api import sweep

    code, _, err = cli(*factory_args("factory_models:tiny_cnn", tmp_path / "cli"))
    assert code == 0, err
    df = sweep(["factory_models:tiny_cnn"], tmp_path / "api", dataset="synthetic", test_res=[8, 16, 24], limit=16,
               device="cpu", threads=1, quiet=True)
    assert list(df.columns) == RESULT_COLUMNS
    from resbench.api import load_results

    pd.testing.assert_frame_equal(df, load_results(tmp_path / "api"))
    by_cli = read_results(tmp_path / "cli")
    assert set(df["checkpoint_sha256"]) == set(by_cli["checkpoint_sha256"])  # the same model, the same identity
    assert df["correct"].tolist() == by_cli["correct"].tolist()


def test_api_takes_modules_checkpoints_and_a_temporary_folder():
    import resbench
    from resbench.api import sweep

    assert resbench.sweep_models is sweep
    ckpt = make_checkpoint(num_classes=4)  # in memory: no file, no sha256
    df = sweep([factory_models.undeclared(), ckpt], dataset="synthetic", train_res=16, test_res="8,16", limit=8,
               policy="native", device="cpu", threads=1, quiet=True)
    assert df.attrs["out"] is None  # kept in memory only
    assert set(df["model"]) == {"module:TinyCNN", "conv2d_iso"}
    assert len(df) == 4 and (df["error"] == "").all()
    assert df["checkpoint_sha256"].str.fullmatch("[0-9a-f]{64}").all()
    assert set(df.loc[df["model"] == "conv2d_iso", "warning"]) == {""}


def test_api_refuses_unknown_options_and_things():
    from resbench.api import sweep

    with pytest.raises(ResbenchError, match="unknown option 'treads'"):
        sweep(["factory_models:tiny_cnn"], dataset="synthetic", treads=1)
    with pytest.raises(ResbenchError, match="expected a checkpoint path"):
        sweep([42], dataset="synthetic")
    with pytest.raises(ResbenchError, match="two different models named 'module:TinyCNN'"):
        other = factory_models.undeclared()
        torch.nn.init.zeros_(other.head.weight)
        sweep([factory_models.undeclared(), other], dataset="synthetic", train_res=16, device="cpu", quiet=True)


def test_size_hook_is_told_each_size_before_it_sees_it(cli, tmp_path):
    factory_models.TOLD_SIZES.clear()
    factory_models.SEEN_SIZES.clear()
    code, _, err = cli(*factory_args("factory_models:size_aware", tmp_path / "out"))
    assert code == 0, err
    assert set(factory_models.TOLD_SIZES) == {(8, 8), (16, 16), (24, 24)}  # under resize-input: the training size
    assert factory_models.SEEN_SIZES and all(seen == told for seen, told in factory_models.SEEN_SIZES)
    assert {seen for seen, _ in factory_models.SEEN_SIZES} == {(8, 8), (16, 16), (24, 24)}


def test_bandlimit_hook_gets_on_and_off_cells(tmp_path):
    from resbench.api import sweep

    factory_models.BANDLIMITS.clear()
    df = sweep(["factory_models:bandlimited"], tmp_path / "out", dataset="synthetic", test_res="8,16", limit=16,
               policy="native", device="cpu", threads=1, quiet=True)
    assert sorted(zip(df["test_res"], df["bandlimit"])) == [(8, "off"), (8, "on"), (16, "off"), (16, "on")]
    on, off = df[df["bandlimit"] == "on"], df[df["bandlimit"] == "off"]
    assert set(on["alpha"]) == {0.5} and off["alpha"].isna().all()
    assert all(a != b for a, b in zip(on["loss"], off["loss"]))
    assert set(factory_models.BANDLIMITS) == {0.5, None}
    assert factory_models.BANDLIMITS[-1] == 0.5  # the trained value is set again after each cell


def test_declared_sizes_channels_and_statistics(tmp_path, cli):
    """three_channels declares everything: no warning, and the dataset check names what it takes."""
    from resbench.external import ModelOptions, from_spec

    source = from_spec("factory_models:three_channels", ModelOptions(dataset="synthetic"))
    assert source.train_res == (16, 12) and source.config["in_chans"] == 3 and source.config["num_classes"] == 10
    assert source.provenance["warnings"] == [] and source.data_stats["std"] == [0.25] * 3
    code, _, err = cli(*factory_args("factory_models:three_channels", tmp_path / "out"))
    assert_user_error(code, err, "factory_models:three_channels", "3 channel(s)", "10 classes")


def test_checkpoint_on_another_dataset_is_warned(tmp_path, cli):
    from resbench.checkpoints import save_checkpoint

    (tmp_path / "mnist").mkdir()
    write_mnist(tmp_path / "mnist", n_test=5)
    other = make_checkpoint()  # trained on synthetic, as its provenance says
    own = make_checkpoint(seed=1)
    own.provenance["dataset"] = "mnist"
    save_checkpoint(other, tmp_path / "ckpts" / "other.pt")
    save_checkpoint(own, tmp_path / "ckpts" / "own.pt")
    code, _, err = cli("sweep", tmp_path / "ckpts", "--dataset", "mnist", "--data-dir", tmp_path / "mnist",
                       "--test-res", "14", "--policy", "native", "--device", "cpu", "--quiet", "-o", tmp_path / "out")
    assert code == 0, err
    df = read_results(tmp_path / "out")
    warning = dict(zip(df["checkpoint"], df["warning"]))
    assert warning["own"] == ""
    assert "synthetic" in warning["other"] and "mnist" in warning["other"]


def test_rows_logged_before_the_warning_column_read_as_empty(tmp_path):
    from resbench.store import write_tables

    row = {c: 0 for c in RESULT_COLUMNS if c != "warning"}
    row.update(model="m", checkpoint="c", checkpoint_sha256="s", dataset="synthetic", train_res="14", test_res="14",
               policy="native", bandlimit="none", alpha=None, precision="fp32", device="cpu", error="", limit=-1,
               dims=2)
    (tmp_path / "cells.jsonl").write_text(json.dumps(row) + "\n")
    assert write_tables(tmp_path)["warning"].tolist() == [""]
    assert read_results(tmp_path)["warning"].tolist() == [""]


# ----------------------------------------------------------------------------------------------
# user errors: one line, exit code 2, nothing written


def _corrupt(folder: Path) -> Path:
    path = folder / "corrupt.pt"
    path.write_bytes(b"PK\x03\x04 this is not a torch file" * 10)
    return path


def _runs_code(folder: Path) -> Path:
    path = folder / "evil.pt"
    torch.save({"state_dict": RunsCode(folder / "marker")}, path)
    return path


@pytest.mark.parametrize("arch, make, names", [
    ("test_resnet", lambda w, d: d / "nope.pt", ["nope.pt", "not found"]),
    ("test_resnet", lambda w, d: _corrupt(d), ["corrupt.pt", "corrupt"]),
    ("test_resnet", lambda w, d: _runs_code(d), ["evil.pt", "refused"]),
    ("test_resnet", lambda w, d: w["vit"], ["vit.pt", "does not match", "missing"]),
    ("test_resnet", lambda w, d: w["resnet10"], ["resnet10.pt", "'fc.weight'", "(10, "]),
    ("test_resnett", lambda w, d: w["resnet"], ["test_resnett", "unknown timm model", "test_resnet"]),
])
def test_broken_weights_and_names(arch, make, names, weights, cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli(*timm_args(arch, make(weights, tmp_path), out))
    assert_user_error(code, err, *names)
    assert not out.exists() and not (tmp_path / "marker").exists()


@pytest.mark.parametrize("args, names", [
    (["--model", "no_such_module:build"], ["no_such_module", "cannot import"]),
    (["--model", "factory_models:nope"], ["factory_models", "'nope'"]),
    (["--model", "factory_models:NOT_CALLABLE"], ["NOT_CALLABLE", "not callable"]),
    (["--model", "factory_models:raises"], ["factory_models:raises", "RuntimeError", "no GPU found"]),
    (["--model", "factory_models:not_a_module"], ["not_a_module", "str", "nn.Module"]),
    (["--model", "factory_models:undeclared"], ["undeclared", "training size unknown", "--train-res"]),
    (["--model", "factory_models:tiny_cnn", "--train-res", "20"], ["--train-res is 20", "resbench_train_res=16"]),
    (["--model", "factory_models:wrong_classes"], ["wrong_classes", "10 classes"]),
    (["--model", "factory_models:tiny_cnn", "--in-chans", "3"], ["tiny_cnn", "(1, 3, 16, 16)", "--in-chans"]),
    (["--model", "factory_models:tiny_cnn", "--mean", "0.5"], ["--mean and --std"]),
    (["--model", "factory_models:tiny_cnn", "--mean", "0.5,0.5", "--std", "1,1"], ["2 mean(s)", "expected 1"]),
    (["--model", "pkg_without_colon"], ["pkg_without_colon", "timm:NAME"]),
    (["--model", "timm:test_resnet"], ["timm:test_resnet", "--weights"]),
    (["--weights", "w.pt"], ["--weights", "--model"]),
    ([], ["nothing to sweep", "--model"]),
])
def test_broken_factories_and_options(args, names, cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = cli("sweep", *args, "--dataset", "synthetic", "--device", "cpu", "-o", out)
    assert_user_error(code, err, *names)
    assert not out.exists()


def test_timm_needs_a_train_size_and_a_dataset(weights, cli, tmp_path):
    args = ["sweep", "--model", "timm:test_resnet", "--weights", weights["resnet"], "-o", tmp_path / "out"]
    code, _, err = cli(*args, "--dataset", "synthetic")
    assert_user_error(code, err, "timm:test_resnet", "--train-res")
    code, _, err = cli(*args, "--train-res", "32")
    assert_user_error(code, err, "timm:test_resnet", "--dataset")
