"""Signals (1-d) and clips (3-d): the model families, the per-axis rate rule and resize-input along every axis."""

import pytest
import torch

from resbench.errors import ResbenchError
from conftest import assert_user_error
from resbench.layers.rate_s4nd import RateS4ND
from resbench.report.metric_order import ORDER_TITLE
from resbench.models import create_model, list_models, model_class
from resbench.resolution import kernel_rates


def s4nd_layers(model):
    return [m for m in model.modules() if isinstance(m, RateS4ND)]


@pytest.mark.parametrize("name,train,tests", [
    ("s4nd_iso", [32], [(16,), (32,), (45,), (64,)]),
    ("conv1d_iso", [32], [(16,), (64,)]),
    ("ckconv", [32], [(16,), (45,), (64,)]),
    ("s4nd_iso", [4, 8, 8], [(2, 8, 8), (8, 8, 8), (4, 4, 4), (4, 16, 12), (8, 16, 16)]),
    ("conv3d_iso", [4, 8, 8], [(2, 8, 8), (8, 16, 16)]),
])
def test_models_take_signals_and_clips_at_any_size(name, train, tests):
    torch.manual_seed(0)
    model = create_model(name, train_res=train, d_model=8, n_layers=2).eval()
    assert model.dims == len(train)
    with torch.no_grad():
        for size in tests:
            out = model(torch.randn(3, 1, *size))
            assert out.shape == (3, 10) and torch.isfinite(out).all(), size
            for layer in s4nd_layers(model):  # every S4ND layer got the model's one rate, per axis
                assert layer.input_rate == kernel_rates(tuple(train), size)


def test_a_clip_where_only_time_changes_rescales_only_the_time_kernels():
    torch.manual_seed(0)
    model = create_model("s4nd_iso", train_res=[4, 6, 6], d_model=4, n_layers=1).eval()
    layer = s4nd_layers(model)[0].s4nd
    with torch.no_grad():
        model(torch.randn(1, 1, 8, 6, 6))  # twice the frame rate, the same frames
        assert s4nd_layers(model)[0].input_rate == (0.5, 1.0, 1.0)
        at_train = layer.kernels((4, 6, 6), (1.0, 1.0, 1.0))
        doubled = layer.kernels((8, 6, 6), (0.5, 1.0, 1.0))
    assert doubled[0].shape[-1] == 2 * at_train[0].shape[-1]  # the time kernel spans the same duration
    for axis in (1, 2):  # height and width kernels are the very same taps
        assert torch.equal(doubled[axis], at_train[axis])


def test_resize_input_resamples_every_axis():
    torch.manual_seed(0)
    model = create_model("conv3d_iso", train_res=[4, 8, 8], d_model=4, n_layers=1).eval()
    clip = torch.rand(2, 1, 8, 16, 16)
    with torch.no_grad():
        from resbench.resolution import resize_images

        direct = model(resize_images(clip, (4, 8, 8)))
        assert torch.equal(model.forward_policy(clip, "resize-input"), direct)


def test_families_refuse_inputs_they_are_not_built_for():
    with pytest.raises(ResbenchError, match="1-d"):
        create_model("conv2d_iso", train_res=[32])
    with pytest.raises(ResbenchError, match="3-d"):
        create_model("conv1d_iso", train_res=[4, 8, 8])
    with pytest.raises(ResbenchError, match="3-d"):
        create_model("vit", train_res=[4, 8, 8])
    with pytest.raises(ResbenchError, match="3-d"):
        create_model("ckconv", train_res=[4, 8, 8])
    model = create_model("s4nd_iso", train_res=[32], d_model=4, n_layers=1)
    with pytest.raises(ResbenchError, match=r"\(B, 1, L\)"):
        model(torch.randn(2, 1, 8, 8))  # an image for a signal model
    with pytest.raises(ResbenchError, match="odd"):
        create_model("conv1d_iso", train_res=[32], kernel_size=4)


def test_every_family_says_which_inputs_it_takes():
    kinds = {name: model_class(name).DIMS for name in list_models()}
    assert kinds["s4nd_iso"] == (1, 2, 3) and kinds["conv1d_iso"] == (1,) and kinds["conv3d_iso"] == (3,)
    assert kinds["ckconv"] == (1, 2)
    assert kinds["s4nd_official_convnext3d"] == (3,)  # the official video ConvNeXt: clips only
    assert all(2 in d for n, d in kinds.items() if n not in ("conv1d_iso", "conv3d_iso", "s4nd_official_convnext3d"))


def test_image_models_compute_as_before_the_norm_change():
    """The blocks' channel norm replaced timm's LayerNorm2d: same keys, same eps, same numbers."""
    from timm.layers import LayerNorm2d

    from resbench.layers.blocks import ChannelNorm

    torch.manual_seed(0)
    new, old = ChannelNorm(6), LayerNorm2d(6)
    with torch.no_grad():
        new.weight.normal_(), new.bias.normal_()
    old.load_state_dict(new.state_dict())
    x = torch.randn(2, 6, 5, 7)
    assert torch.allclose(new(x), old(x), atol=1e-6)
    assert new.state_dict().keys() == old.state_dict().keys()


# ---------------------------------------------------------------------------------------------
# sweep and report of signals and clips beside images

def untrained(path, model, dataset, train_res, **config):
    """A tiny untrained checkpoint of `model` for `dataset` (no training: sweeps only need the file)."""
    from resbench.checkpoints import Checkpoint, save_checkpoint

    torch.manual_seed(0)
    net = create_model(model, train_res=train_res, d_model=4, n_layers=1, **config)
    save_checkpoint(Checkpoint(model=model, config=net.config_dict(),
                               provenance={"dataset": dataset, "train_res": train_res, "schedule": [[train_res, 1]],
                                           "epochs": 1, "seed": 0, "native_accuracy": 0.1},
                               data_stats={"mean": [0.0], "std": [1.0]}, state_dict=net.state_dict()), path)
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Checkpoints of a signal model, a clip model and an image model, in one folder."""
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make setup installs it): the spoken digits need it")
    root = tmp_path_factory.mktemp("mixed")
    ckpts = root / "ckpts"
    ckpts.mkdir()
    untrained(ckpts / "sig.pt", "s4nd_iso", "spoken-digits", [400])
    untrained(ckpts / "clip.pt", "conv3d_iso", "moving-fashion-mnist", [4, 8, 8])
    untrained(ckpts / "img.pt", "conv2d_iso", "synthetic", 14, num_classes=4)
    return root


def test_one_sweep_holds_signals_clips_and_images(mixed, cli, tmp_path):
    from resbench.store import read_results

    out = tmp_path / "sweep"
    code, _, err = cli("sweep", mixed / "ckpts", "--test-res", "200,400,800,14,4x8x8,8x8x8,4x16x16", "--limit", "12",
                       "--policy", "native", "--bandlimit", "on", "-o", out)
    assert code == 0, err
    df = read_results(out)
    sizes = {name: sorted(g["test_res"]) for name, g in df.groupby("checkpoint")}
    assert sizes["sig"] == sorted(["200", "400", "800", "14"])  # bare sizes fit signals and images alike
    assert sizes["img"] == sizes["sig"]  # as image sides (a square of 200 px, ...)
    assert sizes["clip"] == sorted(["4x8x8", "8x8x8", "4x16x16"])  # only TxHxW sizes fit a clip model
    assert dict(zip(df["checkpoint"], df["dims"])) == {"sig": 1, "clip": 3, "img": 2}
    assert (df["n"] == 12).all() and (df["error"] == "").all()
    seen = df[df["checkpoint"] == "clip"].set_index("test_res")["seen_in_training"]
    assert bool(seen["4x8x8"]) and not bool(seen["8x8x8"])  # frame rate changed alone: zero-shot


def test_the_plan_names_lengths_for_signals_and_frame_sizes_for_clips(mixed, cli, tmp_path):
    """--dry-run: a signal model's sizes are lengths counted in signals, a clip model's frames x h x w in clips."""
    code, _, err = cli("sweep", mixed / "ckpts" / "sig.pt", mixed / "ckpts" / "clip.pt", "--limit", "4",
                       "--dry-run", "-o", tmp_path / "plan")
    assert code == 0, err
    sig = next(line for line in err.splitlines() if line.strip().startswith("sig "))
    clip = next(line for line in err.splitlines() if line.strip().startswith("clip "))
    assert " 5 lengths 200,300,400,600,800 x " in sig and sig.endswith("4 test signals each")
    assert " sizes (frames x h x w) " in clip and clip.endswith("4 test clips each")
    assert not (tmp_path / "plan").exists()

def test_default_sizes_follow_each_models_axes(mixed, cli, tmp_path):
    from resbench.store import read_results

    out = tmp_path / "sweep"
    code, _, err = cli("sweep", mixed / "ckpts" / "sig.pt", mixed / "ckpts" / "clip.pt", "--limit", "4",
                       "--policy", "native", "--bandlimit", "on", "-o", out)
    assert code == 0, err
    df = read_results(out)
    assert set(df[df["checkpoint"] == "sig"]["test_res"]) == {"200", "300", "400", "600", "800"}
    clip = set(df[df["checkpoint"] == "clip"]["test_res"])
    assert len(clip) == 9 and {"8x8x8", "4x16x16", "2x4x4", "8x16x16"} <= clip


def test_a_size_that_fits_no_model_is_a_user_error(mixed, cli, tmp_path):
    code, _, err = cli("sweep", mixed / "ckpts" / "clip.pt", "--test-res", "14,28", "-o", tmp_path / "s")
    assert_user_error(code, err, "--test-res", "clip", "TxHxW")
    assert not (tmp_path / "s").exists()


def test_kind_sweeps_each_kind_with_its_own_sizes_into_one_folder(mixed, cli, tmp_path):
    from resbench.store import read_results

    out = tmp_path / "sweep"
    common = ["--limit", "4", "--policy", "native", "--bandlimit", "on", "-o", out]
    code, _, err = cli("sweep", mixed / "ckpts", "--kind", "images", "--test-res", "7,14", *common)
    assert code == 0, err
    assert set(read_results(out)["checkpoint"]) == {"img"}  # the signal model did not take 7 and 14 as lengths
    code, printed, err = cli("sweep", mixed / "ckpts", "--kind", "signals,clips", *common)
    assert code == 0, err
    assert "by test size, signals" in printed + err and "by test size, images" not in printed + err  # this run's
    df = read_results(out)
    sizes = {name: set(g["test_res"]) for name, g in df.groupby("checkpoint")}
    assert sizes["img"] == {"7", "14"} and sizes["sig"] == {"200", "300", "400", "600", "800"}
    assert len(sizes["clip"]) == 9  # each kind at its own default sizes


def test_api_sweep_takes_kind(mixed, tmp_path, keep_torch_threads):
    import resbench.api

    df = resbench.api.sweep(mixed / "ckpts", tmp_path / "api", kind="signals", test_res="200", limit=4,
                            policy="native", bandlimit="on", quiet=True)
    assert list(df["checkpoint"]) == ["sig"] and list(df["test_res"]) == [200]


def test_progress_subset_and_report_lines_name_each_kinds_inputs(mixed, cli, tmp_path):
    out = tmp_path / "sweep"
    code, printed, err = cli("sweep", mixed / "ckpts", "--test-res", "400,14,8x8x8", "--limit", "4", "--policy",
                             "native", "--bandlimit", "on", "-o", out)
    assert code == 0, err
    titles = [line for line in (printed + err).splitlines() if "by test size, " in line]
    assert len(titles) == 3, titles  # each kind's summary table names the part of its own test set it used
    for title in titles:
        kind = title.split("by test size, ")[1].split()[0]
        assert f"test {kind} per cell" in title and title.count("SUBSET") == 1, title
    first = next(line for line in err.splitlines() if "cells in this shard" in line)
    for kind in ("signals", "clips", "images"):
        assert f"of 1000 test {kind} per cell" in first or f"of 2000 test {kind} per cell" in first, first
    units = {name: {unit for unit in ("img/s", "signals/s", "clips/s")
                    if any(line.startswith("cell ") and f" {name} @ " in line and unit in line
                           for line in err.splitlines())} for name in ("sig", "clip", "img")}
    assert units == {"sig": {"signals/s"}, "clip": {"clips/s"}, "img": {"img/s"}}, err
    code, _, err = cli("report", out, "-o", tmp_path / "rep" / "r", "--format", "md")
    assert code == 0, err
    md = (tmp_path / "rep" / "r.md").read_text()
    note = next(line for line in md.splitlines() if "SUBSET: cells use" in line)
    assert "test signals" in note and "test clips" in note and "test images" in note, note
    for heading in (line for line in md.splitlines() if line.startswith("## ")):
        kind = "signals" if "[signals]" in heading else "clips" if "[clips]" in heading else "images"
        if heading in ("## Scope", "## Appendix: provenance"):  # what was swept, not results: no mark
            continue
        if heading.startswith(("## Summary", f"## {ORDER_TITLE}")):  # every kind's cells together: "inputs"
            assert heading.endswith("[§SUBSET: 4 inputs per cell]"), heading
        else:
            assert heading.endswith(f"[§SUBSET: 4 {kind} per cell]"), heading


def test_a_report_of_signals_alone_has_no_image_sections(mixed, cli, tmp_path):
    out = tmp_path / "sweep"
    code, _, err = cli("sweep", mixed / "ckpts" / "sig.pt", "--test-res", "200,400", "--limit", "4", "--policy",
                       "native", "-o", out)
    assert code == 0, err
    code, _, err = cli("report", out, "-o", tmp_path / "rep" / "r", "--format", "md,png")
    assert code == 0, err
    headings = [line for line in (tmp_path / "rep" / "r.md").read_text().splitlines() if line.startswith("## ")]
    results = [h for h in headings if h not in ("## Scope", "## Appendix: provenance")]  # what was swept: no kind
    assert results and all("[signals]" in h or h.startswith(("## Summary", f"## {ORDER_TITLE}")) for h in results), results
    assert not (tmp_path / "rep" / "r_accuracy.png").exists()  # the image figures are not drawn empty


@pytest.mark.parametrize("kind, words", [("video", ["--kind", "video", "images"]),
                                         ("clips", ["--kind clips", "none of the 1 models", "take signals"])])
def test_kind_errors_name_what_was_wrong(mixed, cli, tmp_path, kind, words):
    code, _, err = cli("sweep", mixed / "ckpts" / "sig.pt", "--kind", kind, "-o", tmp_path / "s")
    assert_user_error(code, err, *words)
    assert not (tmp_path / "s").exists()


def test_report_draws_signals_and_clips_apart(mixed, cli, tmp_path):
    out = tmp_path / "sweep"
    code, _, err = cli("sweep", mixed / "ckpts", "--test-res", "200,400,14,28,2x8x8,4x8x8,8x8x8,4x4x4,4x16x16",
                       "--limit", "8", "--policy", "native", "-o", out)
    assert code == 0, err
    code, _, err = cli("report", out, "-o", tmp_path / "rep" / "r", "--format", "md,png")
    assert code == 0, err
    md = (tmp_path / "rep" / "r.md").read_text()
    for title in ("Accuracy vs test length [signals]", "Accuracy vs frame rate and vs frame size [clips]",
                  "Frames x frame size accuracy [clips]", "Native accuracy (test size = train size, native policy) "
                  "[clips]", "Change from native accuracy (points, negative = a loss; native policy) [signals]"):
        assert f"## {title}" in md, title
    for name in ("r_signals.png", "r_clips.png", "r_clips_heatmap.png", "r_accuracy.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    images_change = md.split("## Change from native accuracy (points, negative = a loss; native policy) [§")[1].split("\n## ")[0]
    assert "img" in images_change and "28" in images_change
    assert "4x8x8" not in images_change and "clip" not in images_change  # the image tables hold no clip sizes


def test_train_reads_sizes_in_the_datasets_axes(cli, tmp_path):
    code, _, err = cli("train", "s4nd_iso", "--dataset", "moving-fashion-mnist", "--train-res", "14", "-o",
                       tmp_path / "m.pt")
    assert_user_error(code, err, "--train-res 14", "TxHxW")
    code, _, err = cli("train", "conv1d_iso", "--dataset", "moving-fashion-mnist", "--train-res", "4x8x8", "-o",
                       tmp_path / "m.pt")
    assert_user_error(code, err, "conv1d_iso", "3-d")
    code, _, err = cli("train", "s4nd_iso", "--dataset", "moving-fashion-mnist", "-o", tmp_path / "m.pt")
    assert_user_error(code, err, "--train-res", "TxHxW")
    assert list(tmp_path.iterdir()) == []


def test_train_a_clip_model_and_record_its_size(tmp_path, keep_torch_threads):
    from resbench.train import train, train_config

    cfg = train_config("s4nd_iso", train_res="4x8x8", epochs=1, dataset="moving-fashion-mnist", limit=32,
                       test_limit=16, batch_size=16, model_overrides={"d_model": 4, "n_layers": 1}, device="cpu")
    ckpt = train(cfg, tmp_path / "c.pt", quiet=True)
    assert ckpt.train_res == (4, 8, 8) and ckpt.dims == 3
    assert ckpt.provenance["train_res"] == [4, 8, 8] and ckpt.provenance["history"][0]["size"] == [4, 8, 8]


def _goal_rows(name, model, bandlimit, train, dims, accuracies):
    return [{"checkpoint": name, "model": model, "dataset": "d", "train_res": train, "test_res": t, "dims": dims,
             "policy": "native", "bandlimit": bandlimit, "error": "", "accuracy": a} for t, a in accuracies.items()]


def test_goal_table_checks_half_and_twice_each_rate_against_the_twin():
    import pandas as pd

    from resbench.report import goal_table

    df = pd.DataFrame(_goal_rows("s", "s4nd_iso", "on", "4000", 1, {"2000": 0.80, "4000": 0.81, "8000": 0.805})
                      + _goal_rows("c", "conv1d_iso", "none", "4000", 1, {"2000": 0.40, "4000": 0.82, "8000": 0.80}))
    table = goal_table(df).set_index("change")
    assert list(table.index) == ["sampling rate x1/2", "sampling rate x2"]
    assert table.loc["sampling rate x1/2", "S4ND drop"] == pytest.approx(1.0)
    assert table.loc["sampling rate x1/2", "twin drop"] == pytest.approx(42.0)
    # without per-image records nothing is claimed (the paired tests: tests/test_goals.py)
    assert set(table["S4ND within 2"]) == set(table["twin falls further"]) == {"untested (no per-image records)"}

    clips = {"8x14x14": 0.6, "4x14x14": 0.59, "16x14x14": 0.55, "8x7x7": 0.3, "8x28x28": 0.6, "4x7x7": 0.3}
    twin = {k: (0.6 if k == "8x14x14" else 0.2) for k in clips}
    df = pd.DataFrame(_goal_rows("s", "s4nd_iso", "on", "8x14x14", 3, clips)
                      + _goal_rows("c", "conv3d_iso", "none", "8x14x14", 3, twin))
    table = goal_table(df).set_index("change")
    assert list(table.index) == ["frame rate x1/2", "frame rate x2", "frame size x1/2", "frame size x2",
                                 "both x1/2"]  # 16x28x28 was not swept: no row
    assert table.loc["frame rate x1/2", "test_res"] == "4x14x14"
    assert table.loc["frame rate x2", "S4ND drop"] == pytest.approx(5.0)
    assert goal_table(df[df["checkpoint"] == "s"]).empty  # no twin, no table


def test_report_says_each_step_unless_quiet(mixed, cli, tmp_path):
    import re

    out = tmp_path / "sweep"
    code, _, err = cli("sweep", mixed / "ckpts" / "sig.pt", "--test-res", "200,400", "--limit", "4", "--policy",
                       "native", "--quiet", "-o", out)
    assert code == 0, err
    code, _, err = cli("report", out, "-o", tmp_path / "rep" / "r", "--format", "md,pdf")
    assert code == 0, err
    steps = [line for line in err.splitlines() if re.match(r"\[\d\d:\d\d:\d\d\] report: ", line)]
    assert steps[0].endswith(f"report: 4 cells from {out}; tables"), steps  # on, off at 2 sizes
    assert any(line.endswith("rank correlation: sig (1/1)") for line in steps), steps  # the slow step, per file
    assert steps[-1].endswith("report: pdf"), steps
    code, _, err = cli("report", out, "-o", tmp_path / "rep" / "q", "--format", "md", "--quiet")
    assert code == 0 and " report: " not in err, err
