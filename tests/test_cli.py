"""Tests for the `resbench` command line: help texts, models, info, and train's user errors."""

import json
import random
import re

import pytest

from conftest import assert_user_error, run_cli
from resbench.checkpoints import file_sha256, load_checkpoint
from resbench.models import list_models

COMMANDS = ["models", "info", "train", "sweep", "merge"]


def test_top_level_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_shows_an_example(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout
    assert f"resbench {command}" in result.stdout


def test_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and "0.1.0" in out


def test_unknown_command(cli):
    code, _, err = cli("frobnicate")
    assert_user_error(code, err, "frobnicate")


def test_models_lists_all_fourteen(cli):
    code, out, err = cli("models")
    assert code == 0, err
    # six image families, the official S4ND-ConvNeXt arrangement and classifier, the Conv1d/Conv3d twins, the
    # blur-pooled CNN and its strided control, the imported official S4ND-ConvNeXt (2-d and 3-d)
    assert len(list_models()) == 14
    assert "L HxW TxHxW" in out  # s4nd_iso takes signals, images and clips
    for name in list_models():
        assert name in out, name


# ---------------------------------------------------------------------------------------------
# info


def test_info_table_shows_model_and_whole_sha256(trained, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # what rich uses when the output is a pipe
    code, out, err = cli("info", trained["s4nd"])
    assert code == 0, err
    assert "s4nd_iso" in out
    # a long value may fold onto a second table line, but no character of the hash may be dropped
    assert file_sha256(trained["s4nd"]) in re.sub(r"[^0-9a-f]", "", out)


def test_info_json(trained, cli):
    code, out, err = cli("info", "--json", trained["conv"])
    assert code == 0, err
    info = json.loads(out)
    assert {"model", "sha256", "config", "provenance"} <= set(info)
    assert info["model"] == "conv2d_iso"
    assert info["sha256"] == file_sha256(trained["conv"])
    assert info["config"] == load_checkpoint(trained["conv"]).config
    assert info["provenance"]["dataset"] == "synthetic"


def test_info_random_bytes_in_a_real_process(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(random.Random(1).randbytes(3000))
    result = run_cli("info", junk)
    assert_user_error(result.returncode, result.stderr, junk)
    assert result.stdout == ""


def test_info_missing_file(tmp_path, cli):
    code, _, err = cli("info", tmp_path / "nope.pt")
    assert_user_error(code, err, tmp_path / "nope.pt")


# ---------------------------------------------------------------------------------------------
# train


def test_train_tiny_model(tmp_path, cli):
    out = tmp_path / "conv.pt"
    code, stdout, err = cli("train", "conv2d_iso", "--dataset", "synthetic", "--train-res", 14, "--epochs", 1,
                            "--limit", 32, "--set", "d_model=8", "--set", "n_layers=1", "--quiet", "-o", out)
    assert code == 0, err
    assert f"wrote {out}" in stdout
    ckpt = load_checkpoint(out)
    assert ckpt.config["d_model"] == 8 and ckpt.config["n_layers"] == 1  # --set values parsed as numbers
    assert ckpt.provenance["schedule"] == [[14, 1]]


@pytest.mark.parametrize("args, named", [
    (["nosuchmodel"], "nosuchmodel"),
    (["s4nd_iso", "--schedule", "7:0"], "7:0"),
    (["s4nd_iso", "--schedule", "abc"], "abc"),
    (["s4nd_iso", "--schedule", "7:1", "--epochs", "2"], "--schedule"),
    (["s4nd_iso", "--set", "wings=2"], "wings"),
    (["s4nd_iso", "--set", "d_model"], "d_model"),
    (["s4nd_iso", "--bandlimit", "-0.5"], "-0.5"),
    (["conv2d_iso", "--bandlimit", "0.5"], "conv2d_iso"),
    (["s4nd_iso", "--batch-size", "0"], "--batch-size"),
    (["s4nd_iso", "--dataset", "nosuchset"], "nosuchset"),
])
def test_train_user_errors(tmp_path, cli, args, named):
    out = tmp_path / "model.pt"
    code, _, err = cli("train", *args, "-o", out)
    assert_user_error(code, err, named)
    assert list(tmp_path.iterdir()) == []  # nothing written, no state left behind


def test_train_user_error_in_a_real_process(tmp_path):
    result = run_cli("train", "s4nd_iso", "--set", "wings=2", "-o", tmp_path / "model.pt")
    assert_user_error(result.returncode, result.stderr, "wings")


def test_the_cli_flushes_subnormals_only_while_it_runs(monkeypatch, tmp_path):
    import pandas as pd
    import torch

    import resbench.sweep
    from resbench import cli as cli_module
    from resbench.runtime import flushed_denormals

    tiny = torch.tensor(1e-40)  # a float32 subnormal
    seen = []

    def fake_sweep(cfg, quiet=False):
        seen.append(float(tiny * 1.0))
        return pd.DataFrame()

    monkeypatch.setattr(resbench.sweep, "run_sweep", fake_sweep)
    assert cli_module.main(["sweep", "x.pt", "--quiet", "-o", str(tmp_path / "out")]) == 0
    assert seen == [0.0]  # flushed while the command ran
    assert float(tiny * 1.0) > 0  # and IEEE arithmetic again after it
    monkeypatch.setenv("RESBENCH_DENORMALS", "keep")
    with flushed_denormals() as flushed:
        assert not flushed and float(tiny * 1.0) > 0


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom resbench import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stdout + done.stderr


def test_every_option_has_help_and_models_fits_80_columns():
    import os
    import subprocess
    import sys

    import click

    from conftest import REPO
    from resbench.cli import cli

    commands = {"resbench": cli, **cli.commands}  # the group's own options (--debug, --version) too
    options = [(name, p) for name, cmd in commands.items()
               for p in cmd.get_params(click.Context(cmd)) if isinstance(p, click.Option)]  # --help, hidden ones
    assert len(options) > 60 and {p.opts[0] for _, p in options} >= {"--seed", "--quiet", "--debug", "--help"}
    lacking = [(name, p.opts[0]) for name, p in options if not (p.help or "").strip()]
    assert lacking == []
    out = subprocess.run([sys.executable, "cli.py", "models"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "80"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert max(map(len, out.stdout.splitlines())) <= 80
    assert "s4nd_iso" in out.stdout and "resize-input (" in out.stdout


def test_missing_required_arguments_and_options_are_named_together():
    import subprocess
    import sys

    from conftest import REPO

    out = subprocess.run([sys.executable, "cli.py", "report"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith("missing SWEEPS, --out")
