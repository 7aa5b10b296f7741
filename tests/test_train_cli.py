"""Tests for `resbench train` options as a user meets them: --epochs, --train-res, --test-limit, the last line."""

import re

import pytest
import torch

from conftest import S4ND_TINY, assert_user_error
from resbench.checkpoints import load_checkpoint

TINY = [arg for key, value in S4ND_TINY.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture
def train_cli(cli):
    """`resbench train ARGS` in this process, restoring torch's thread count (train sets it for the process)."""

    def invoke(*args):
        threads = torch.get_num_threads()
        try:
            return cli("train", *args)
        finally:
            torch.set_num_threads(threads)

    return invoke


@pytest.mark.parametrize("option", ["--epochs", "--train-res", "--test-limit"])
@pytest.mark.parametrize("value", [0, -1])
def test_a_count_below_one_is_refused(tmp_path, train_cli, option, value):
    out = tmp_path / "model.pt"
    code, _, err = train_cli("s4nd_iso", "--dataset", "synthetic", option, value, "-o", out)
    assert_user_error(code, err, f"{option} {value}", "expected")
    assert list(tmp_path.iterdir()) == []  # refused before any training


def test_a_train_res_above_the_largest_size_is_refused(tmp_path, train_cli):
    code, _, err = train_cli("s4nd_iso", "--dataset", "synthetic", "--train-res", 5000, "-o", tmp_path / "m.pt")
    assert_user_error(code, err, "--train-res 5000", "1024")


def test_test_limit_tests_on_that_many_images(tmp_path, train_cli):
    out = tmp_path / "model.pt"
    code, stdout, err = train_cli("s4nd_iso", "--dataset", "synthetic", "--train-res", 14, "--epochs", 1,
                                  "--limit", 32, "--test-limit", 50, *TINY, "--quiet", "-o", out)
    assert code == 0, err
    prov = load_checkpoint(out).provenance
    assert prov["native_test_n"] == 50
    assert prov["train_config"]["test_limit"] == 50
    last = stdout.splitlines()[-1]
    assert re.search(r"after 1 epoch \(training \d+ s, final test \d+ s, \d+ s in all\)$", last), last
