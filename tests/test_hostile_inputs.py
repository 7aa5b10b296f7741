"""Hostile and careless inputs, round three: names that look like markup, configs and logs of the wrong type,
factories that are not the user's, and files that are not what they claim; each is one line and exit code 2,
or a result that keeps the user's data whole."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import assert_user_error, make_checkpoint
from resbench.checkpoints import save_checkpoint


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()  # run_sweep sets it for the whole process
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# names that rich would read as markup

MARKUP_NAME = "[bold]x[ul]y[\\red]z[red]q"


@pytest.mark.parametrize("name", ["[/]x", MARKUP_NAME])
def test_info_shows_a_markup_name_as_text(tmp_path, cli, name):
    folder = tmp_path / "["
    folder.mkdir()
    path = save_checkpoint(make_checkpoint(), folder / f"{name}.pt")
    code, out, err = cli("info", path)
    assert code == 0, err
    assert f"{name}.pt" in out.replace("\n", "")


def test_info_shows_markup_in_the_provenance_as_text(tmp_path, cli):
    ckpt = make_checkpoint()
    ckpt.provenance["dataset"] = "[/]" + MARKUP_NAME
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    code, out, err = cli("info", path)
    assert code == 0, err
    assert "[/]" + MARKUP_NAME in out


def test_sweep_progress_and_summary_show_a_markup_name_as_text(trained, tmp_path, cli):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    shutil.copy(trained["conv"], folder / f"{MARKUP_NAME}.pt")
    code, out, err = cli("sweep", folder, "--test-res", "14", "--limit", "10", "-o", tmp_path / "out")
    assert code == 0, err
    assert MARKUP_NAME in err  # the per-cell progress line
    assert MARKUP_NAME in out  # the summary table


# ---------------------------------------------------------------------------------------------
# checkpoint configs and data stats the weights cannot back


def _raw_checkpoint(tmp_path, model="s4nd_iso", config=None, provenance=None, data_stats=None) -> Path:
    raw = make_checkpoint(model, d_state=4).to_dict() if model == "s4nd_iso" else make_checkpoint(model).to_dict()
    raw["config"].update(config or {})
    raw["provenance"].update(provenance or {})
    raw["data_stats"].update(data_stats or {})
    path = tmp_path / "bad.pt"
    torch.save(raw, path)
    return path


@pytest.mark.parametrize("config, named", [
    ({"d_state": 10 ** 12}, "d_state"), ({"d_state": 10 ** 9}, "d_state"), ({"d_model": 10 ** 9}, "d_model"),
    ({"n_layers": 200000}, "n_layers"), ({"d_model": "abc"}, "config"), ({"dt_min": float("nan")}, "dt_min"),
    ({"train_res": 10 ** 6}, "train_res"), ({"train_res": "x"}, "train_res"), ({"d_state": [1]}, "config"),
])
def test_a_config_its_weights_cannot_back_is_one_line(tmp_path, cli, config, named):
    code, _, err = cli("info", _raw_checkpoint(tmp_path, config=config))
    assert_user_error(code, err, "bad.pt", named)


@pytest.mark.parametrize("stats", [{"std": [0]}, {"mean": [float("nan")]}, {"std": [-1.0]}, {"mean": [0.5, 0.5]},
                                   {"std": ["x"]}])
def test_checkpoint_data_stats_are_checked_like_mean_and_std(tmp_path, cli, stats):
    code, _, err = cli("info", _raw_checkpoint(tmp_path, "conv2d_iso", data_stats=stats))
    assert_user_error(code, err, "bad.pt", "data_stats")


def test_provenance_train_res_must_be_the_configs(tmp_path, cli):
    path = _raw_checkpoint(tmp_path, "conv2d_iso", config={"train_res": 1000}, provenance={"train_res": 8})
    code, _, err = cli("info", path)
    assert_user_error(code, err, "bad.pt", "train_res")


# ---------------------------------------------------------------------------------------------
# official configs of the wrong type or size

OFFICIAL = Path(__file__).parent / "fixtures/official_s4/iso2d_dplr.pt"


def _official_with(tmp_path, path, value) -> Path:
    raw = torch.load(OFFICIAL, weights_only=True)
    raw = {k: v for k, v in raw.items() if k != "cases"}
    node = raw["hyper_parameters"]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    out = tmp_path / "edited.pt"
    torch.save(raw, out)
    return out


@pytest.mark.parametrize("path, value, named", [
    (("loader",), [1, 2], "loader"), (("dataset",), "cifar", "dataset"), (("train",), 3, "train"),
    (("model", "d_model"), "abc", "model.d_model"), (("model", "d_model"), 10 ** 9, "model.d_model"),
    (("model", "n_layers"), 200000, "model.n_layers"), (("model", "n_layers"), 1.5, "model.n_layers"),
    (("model", "prenorm"), "no", "model.prenorm"),
    (("loader", "train_resolution"), "x", "loader.train_resolution"),
    (("loader", "train_resolution"), float("nan"), "loader.train_resolution"),
    (("loader", "train_resolution"), -2, "loader.train_resolution"),
    (("loader", "img_size"), 10 ** 12, "loader.img_size"), (("loader", "img_size"), 100000, "train_res"),
    (("model", "layer", "d_state"), 10 ** 12, "d_state"), (("model", "layer", "d_state"), "x", "model.layer"),
])
def test_official_options_of_the_wrong_type_or_size_are_one_line(tmp_path, cli, path, value, named):
    src = _official_with(tmp_path, path, value)
    code, _, err = cli("import-official", src, "-o", tmp_path / "out.pt")
    assert_user_error(code, err, named)
    assert not (tmp_path / "out.pt").exists()
