"""Shared fixtures and helpers: tiny models trained on the synthetic set, ways to run the CLI, files to feed it."""

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

# Property tests: random exploration locally; in CI (.ci/run exports HYPOTHESIS_PROFILE=ci) a fixed
# seed, so a run's verdict depends on the code alone, never on the examples drawn that day.
settings.register_profile("ci", derandomize=True, print_blob=True)
# explicit: hypothesis itself derandomizes when it sees CI=true, and a bare profile would inherit that
settings.register_profile("dev", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = Path(__file__).resolve().parents[1]

# S4ND's compiled passes (resbench.layers.compiled_passes) compile per grid rank and dtype: the suite's many tiny
# models would spend minutes in the compiler, so they run the eager passes; test_compiled_passes.py compares
# the two. RESBENCH_COMPILE=1 runs the whole suite compiled.
os.environ.setdefault("RESBENCH_COMPILE", "0")

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


@pytest.fixture
def keep_torch_threads():
    """Restore torch's thread count after a test (run_sweep and train set it for the whole process)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def quiet_sweep(cfg):
    """resbench.sweep.run_sweep, quiet, restoring torch's thread count (run_sweep sets it for the whole process)."""
    from resbench.sweep import run_sweep

    threads = torch.get_num_threads()
    try:
        return run_sweep(cfg, quiet=True)
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


# ---------------------------------------------------------------------------------------------
# files to feed the code: checkpoints and dataset files written here


def make_checkpoint(model="conv2d_iso", seed=0, **config):
    """An untrained tiny model wrapped as a Checkpoint (no training needed to test the file format)."""
    from resbench.checkpoints import Checkpoint
    from resbench.models import create_model

    config = {"d_model": 8, "n_layers": 1, "train_res": 14, **config}
    torch.manual_seed(seed)
    net = create_model(model, **config)
    return Checkpoint(model=model, config=net.config_dict(),
                      provenance={"dataset": "synthetic", "train_res": config["train_res"],
                                  "schedule": [[config["train_res"], 1]], "epochs": 1,
                                  "seed": seed, "bandlimit": None, "native_accuracy": 0.5, "wall_time_s": 1.0,
                                  "versions": {"torch": str(torch.__version__)}, "history": [{"epoch": 1, "loss": 1.0}]},
                      data_stats={"mean": [0.5], "std": [0.25]}, state_dict=net.state_dict())


class RunsCode:
    """Unpickling this runs `touch MARKER`: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    """An unsigned-byte IDX file: magic 0x000008NN, NN big-endian uint32 dims, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    blob = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        blob = gzip.compress(blob)
    path.write_bytes(blob)
    return path


def write_mnist(root: Path, n_train=12, n_test=5, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte", x, gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", y, gz)
        out[split] = (x, y)
    return out
