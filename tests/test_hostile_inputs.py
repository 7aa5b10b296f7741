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
