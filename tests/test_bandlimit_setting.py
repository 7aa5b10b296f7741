"""A bandlimit setting is a finite alpha in (0, 1] or a named setting, wherever it enters (CLI, config, API)."""

import math

import pytest

from conftest import assert_user_error
from resbench.errors import ResbenchError
from resbench.resolution import bandlimit_alpha, check_alpha, parse_bandlimit

BAD_TEXT = ["inf", "-inf", "nan", "NaN", "-0.5", "0", "1.5", "1e9", "half", ""]


@pytest.mark.parametrize("text", BAD_TEXT)
def test_sweep_refuses_a_bandlimit_that_is_not_an_alpha(cli, ckpt_dir, tmp_path, text):
    code, _, err = cli("sweep", ckpt_dir, "--dataset", "synthetic", "--test-res", "14", "--bandlimit", f"on,{text}",
                       "--limit", 8, "--quiet", "-o", tmp_path / "sw")
    assert_user_error(code, err, "--bandlimit")
    assert not (tmp_path / "sw").exists()  # refused before any work


@pytest.mark.parametrize("text", ["inf", "nan", "0", "2"])
def test_train_refuses_a_bandlimit_that_is_not_an_alpha(cli, tmp_path, text):
    code, _, err = cli("train", "s4nd_iso", "--dataset", "synthetic", "--bandlimit", text, "-o", tmp_path / "m.pt")
    assert_user_error(code, err, "--bandlimit", text)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 0.0, -0.5, 1.0001, True])
def test_models_and_layers_refuse_the_same_values(value):
    from resbench.models import create_model, set_bandlimit

    with pytest.raises(ResbenchError, match="bandlimit"):
        create_model("s4nd_iso", d_model=8, n_layers=1, d_state=4, bandlimit=value)
    model = create_model("s4nd_iso", d_model=8, n_layers=1, d_state=4)
    with pytest.raises(ResbenchError, match="bandlimit"):
        set_bandlimit(model, value)


def test_good_settings_parse_to_one_canonical_text():
    assert [parse_bandlimit(t) for t in ("on", " OFF ", "0.30", ".3", "1", "5e-1")] == \
        ["on", "off", "0.3", "0.3", "1.0", "0.5"]
    assert check_alpha(None) is None and check_alpha(1) == 1.0
    assert bandlimit_alpha("on", 0.5) == 0.5 and bandlimit_alpha("off", 0.5) is None
    assert bandlimit_alpha("none", None) is None and bandlimit_alpha("0.3", 0.5) == 0.3
