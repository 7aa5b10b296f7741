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
