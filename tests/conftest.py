"""Shared fixtures: tiny models trained on the synthetic set, and ways to run the CLI and compare sweeps."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# tiny models: a training epoch or a sweep cell takes a fraction of a second on a busy CPU
S4ND_TINY = {"d_model": 8, "n_layers": 1, "d_state": 4}
CONV_TINY = {"d_model": 8, "n_layers": 1}


def tiny_config(model="s4nd_iso", schedule=((14, 1),), seed=0, limit=64, **overrides):
    """A TrainConfig for a tiny model on a few synthetic images (one thread: the CPU is shared)."""
    from resbench.train import TrainConfig

    model_overrides = dict(S4ND_TINY if model == "s4nd_iso" else CONV_TINY)
    model_overrides.update(overrides)
    return TrainConfig(model=model, dataset="synthetic", schedule=list(schedule), batch_size=32, seed=seed,
                       limit=limit, test_limit=64, threads=1, model_overrides=model_overrides)


def tiny_train(cfg, out, **kwargs):
    """resbench.train.train, quiet, restoring torch's thread count (train sets it for the whole process)."""
    from resbench.train import train

    threads = torch.get_num_threads()
    try:
        return train(cfg, out, quiet=True, **kwargs)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Two tiny checkpoints trained at 14 px: {"s4nd": s4nd_iso with bandlimit 0.5, "conv": conv2d_iso}."""
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {"s4nd": folder / "s4nd_iso_14.pt", "conv": folder / "conv2d_iso_14.pt"}
    tiny_train(tiny_config("s4nd_iso", schedule=[(14, 2)], bandlimit=0.5), paths["s4nd"])
    tiny_train(tiny_config("conv2d_iso", schedule=[(14, 2)]), paths["conv"])
    return paths


@pytest.fixture
def ckpt_dir(trained):
    """The folder holding both tiny checkpoints (a sweep over a folder takes every *.pt in it)."""
    return trained["s4nd"].parent


def run_cli(*args, timeout=120, env=None):
    """`python cli.py ARGS` from the repo root, as a user runs it: CompletedProcess with text output."""
    return subprocess.run([sys.executable, "cli.py", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def cli(capsys):
    """Run `resbench ARGS` in this process (no interpreter start-up): returns (exit code, stdout, stderr)."""
    from resbench.cli import main

    def invoke(*args):
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def assert_user_error(code, err, *names):
    """Exit code 2 and exactly one stderr line `resbench: error: ...` that names each of `names`."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("resbench: error: "), err
    for name in names:
        assert str(name) in lines[0], (name, err)
