"""Reliability: every bad input is one stderr line and exit code 2, no foreign code runs, no result is lost.

Covers what the per-module tests do not: hostile checkpoints through every command that reads one,
unwritable outputs, damaged dataset files through the CLI, oversized test grids, SIGKILLed sweeps and
training runs, and bit-for-bit repeatability of a sweep.
"""

import contextlib
import io
import json
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import (CONV_TINY, REPO, S4ND_TINY, RunsCode, assert_user_error, make_checkpoint, quiet_sweep, run_cli,
                      write_idx, write_mnist)
from resbench import resolution, sweep
from resbench.sweep import batches as sizing
from resbench.checkpoints import FORMAT, VERSION, load_checkpoint, save_checkpoint
from resbench.errors import ResbenchError
from resbench.report import FORMATS, parse_formats
from resbench.store import RESULT_COLUMNS, read_results, read_rows
from resbench.sweep import SweepConfig, parse_shard
from resbench.train import parse_schedule

CELL = ["checkpoint", "test_res", "policy", "bandlimit"]
HUGE = "1" * 5000  # more digits than int() converts (4300): it raises ValueError, not a size error


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()  # run_sweep and train set it for the whole process
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_sweep(trained, tmp_path_factory) -> Path:
    """A one-cell sweep folder: what `report` needs before it looks at --kernels."""
    out = tmp_path_factory.mktemp("small_sweep")
    quiet_sweep(SweepConfig(checkpoints=[str(trained["conv"])], out=str(out), test_res=[(14, 14)], policy=["native"],
                            limit=10, threads=1))
    return out


@pytest.fixture(scope="module")
def ckpt10(tmp_path_factory) -> Path:
    """An untrained 1-channel, 10-class conv2d_iso checkpoint: the shape of a Fashion-MNIST model."""
    return save_checkpoint(make_checkpoint(), tmp_path_factory.mktemp("ckpt10") / "conv10.pt")


def set_args(overrides: dict) -> list[str]:
    return [a for key, value in overrides.items() for a in ("--set", f"{key}={value}")]


# ---------------------------------------------------------------------------------------------
# 1. hostile checkpoints, through every command that reads one


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _evil(marker: Path) -> dict:
    return {"format": FORMAT, "version": VERSION, "model": "conv2d_iso", "evil": RunsCode(marker)}


def _half_a_checkpoint() -> bytes:
    blob = _torch_bytes(make_checkpoint().to_dict())
    return blob[:len(blob) // 2]


def _config_mismatch() -> dict:
    raw = make_checkpoint().to_dict()
    raw["config"] = {**raw["config"], "d_model": 16}  # the weights are for d_model 8
    return raw


_HOSTILE_BYTES = {
    "pickle that runs code (torch.save)": lambda marker: _torch_bytes(_evil(marker)),
    "pickle that runs code (plain pickle)": lambda marker: pickle.dumps(_evil(marker)),
    "truncated checkpoint": lambda marker: _half_a_checkpoint(),
    "random bytes": lambda marker: random.Random(0).randbytes(4096),
    "empty file": lambda marker: b"",
    "JSON text": lambda marker: json.dumps({"format": FORMAT, "version": VERSION, "model": "conv2d_iso"}).encode(),
    "torch file of another schema": lambda marker: _torch_bytes({"weights": torch.zeros(3), "epoch": 3}),
    "foreign state dict": lambda marker: _torch_bytes(
        torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.Linear(8, 10)).state_dict()),
    "state dict not matching its config": lambda marker: _torch_bytes(_config_mismatch()),
}
HOSTILE = [*_HOSTILE_BYTES, "directory", "missing file"]
CODE_RUNNING = [k for k in HOSTILE if "runs code" in k]
CKPT_COMMANDS = ["info", "sweep", "report --kernels", "plot-kernels"]


def hostile_checkpoint(kind: str, folder: Path) -> Path:
    """folder/model.pt as `kind`; a payload that runs code would create folder/MARKER."""
    path = folder / "model.pt"
    if kind == "directory":
        path.mkdir()
    elif kind != "missing file":
        path.write_bytes(_HOSTILE_BYTES[kind](folder / "MARKER"))
    return path


def ckpt_command(command: str, ckpt: Path, out: Path, sweep_dir: Path) -> list:
    return {"info": ["info", ckpt],
            "sweep": ["sweep", ckpt, "--test-res", "14", "--limit", "10", "-o", out],
            "report --kernels": ["report", sweep_dir, "--kernels", ckpt, "-o", out / "demo"],
            "plot-kernels": ["plot-kernels", ckpt, "--test-res", "14", "-o", out]}[command]


@pytest.mark.parametrize("kind", CODE_RUNNING)
def test_the_code_running_payloads_are_live(tmp_path, kind):
    """An unguarded loader runs them: the refusals below are not vacuous."""
    path = hostile_checkpoint(kind, tmp_path)
    if "torch.save" in kind:
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("command", CKPT_COMMANDS)
def test_hostile_checkpoint(small_sweep, tmp_path, cli, command, kind):
    ckpt = hostile_checkpoint(kind, tmp_path)
    out = tmp_path / "out"
    figures = plt.get_fignums()
    code, stdout, err = cli(*ckpt_command(command, ckpt, out, small_sweep))
    assert_user_error(code, err, ckpt)
    assert stdout == ""
    assert not (tmp_path / "MARKER").exists()
    assert not out.exists()  # nothing written
    assert plt.get_fignums() == figures  # and no figure left open in this process


@pytest.mark.parametrize("command", CKPT_COMMANDS)
def test_code_running_checkpoint_in_a_real_process(small_sweep, tmp_path, command):
    """`python cli.py`: the error line and nothing else on stderr (no warning, no log line), nothing run."""
    ckpt = hostile_checkpoint("pickle that runs code (torch.save)", tmp_path)
    result = run_cli(*ckpt_command(command, ckpt, tmp_path / "out", small_sweep))
    assert_user_error(result.returncode, result.stderr, ckpt)
    assert result.stdout == ""
    assert not (tmp_path / "MARKER").exists()
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# 2a. outputs that cannot be written


OUTPUT_COMMANDS = ["sweep", "train", "report", "plot-kernels"]


def output_command(command: str, out: Path, trained, sweep_dir: Path) -> list:
    """Each command writing to `out` (no --quiet: a log line before the error would be a second line)."""
    return {"sweep": ["sweep", trained["conv"], "--test-res", "14", "--limit", "10", "-o", out],
            "train": ["train", "s4nd_iso", "--dataset", "synthetic", "--limit", "32", "--train-res", "14",
                      "--epochs", "1", *set_args(S4ND_TINY), "-o", out],
            "report": ["report", sweep_dir, "--format", "md", "-o", out],
            "plot-kernels": ["plot-kernels", trained["s4nd"], "--test-res", "14", "-o", out]}[command]


def folder_permissions_ignored(tmp_path: Path) -> bool:
    """True for root (with CAP_DAC_OVERRIDE): it writes into a folder whose mode forbids it."""
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o500)
    try:
        (probe / "x").touch()
        return True
    except PermissionError:
        return False
    finally:
        probe.chmod(0o700)
        (probe / "x").unlink(missing_ok=True)
        probe.rmdir()


@contextlib.contextmanager
def read_only_folder(folder: Path):
    """`folder` made read-only for this user: mode 0o500, or for root (which ignores modes) a read-only tmpfs
    mounted on it; skips when root cannot mount (a container without CAP_SYS_ADMIN)."""
    folder.mkdir()
    if not folder_permissions_ignored(folder.parent):
        folder.chmod(0o500)
        try:
            yield folder
        finally:
            folder.chmod(0o700)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"root here cannot mount a read-only tmpfs ({mounted.stderr.strip()}), so a read-only "
                    "folder cannot be made; the regular-file case still runs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("blocked", ["under a regular file", "in a read-only folder"])
@pytest.mark.parametrize("command", OUTPUT_COMMANDS)
def test_unwritable_output(trained, small_sweep, tmp_path, cli, command, blocked):
    blocker = tmp_path / "blocker"
    figures = plt.get_fignums()
    if blocked == "under a regular file":
        blocker.write_text("keep me")
        out = blocker / "sub" / "out"  # can never be created: its parent is a file
        code, _, err = cli(*output_command(command, out, trained, small_sweep))
        assert blocker.read_text() == "keep me"
    else:
        with read_only_folder(blocker):
            code, _, err = cli(*output_command(command, blocker / "out", trained, small_sweep))
            assert list(blocker.iterdir()) == []
    assert_user_error(code, err, blocker)
    assert plt.get_fignums() == figures
    assert [p.name for p in tmp_path.iterdir()] == ["blocker"]  # no state file or temporary left anywhere


# ---------------------------------------------------------------------------------------------
# 2b. argument parsers on any text: a ResbenchError naming the text, or a valid value; nothing else


def parsed_or_refused(parse, text):
    """parse(text), or None when it raises a one-line ResbenchError naming the text (any other exception fails)."""
    try:
        return parse(text)
    except ResbenchError as e:
        assert repr(text) in str(e) and "\n" not in str(e)
        return None


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10 ** 9).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
       st.sampled_from(["", " ", "\t"]))
def test_parse_shard_accepts_every_valid_shard(kn, pad):
    k, n = kn
    assert parse_shard(f"{pad}{k}/{n}{pad}") == (k, n)


@settings(max_examples=200, deadline=None)
@given(st.tuples(st.integers(-10 ** 6, 10 ** 6), st.integers(-10 ** 6, 10 ** 6)).filter(
    lambda kn: not 1 <= kn[0] <= kn[1]))
def test_parse_shard_refuses_every_k_n_out_of_range(kn):
    assert parsed_or_refused(parse_shard, f"{kn[0]}/{kn[1]}") is None


@settings(max_examples=300, deadline=None)
@given(st.text() | st.text(alphabet="0123456789/ +-_x", max_size=12))
@example(f"1/{HUGE}")
@example("1//2")
@example("½/1")
def test_parse_shard_on_any_text(text):
    shard = parsed_or_refused(parse_shard, text)
    if shard is not None:
        k, n = shard
        assert text.count("/") == 1 and 1 <= k <= n
        assert [int(part) for part in text.split("/")] == [k, n]


@settings(max_examples=300, deadline=None)
@given(st.text() | st.text(alphabet="0123456789xX ,\t-", max_size=20))
@example(HUGE)
@example(f"7x{HUGE}")
@example(f"14,{'0' * 4400}7")
def test_parse_sizes_on_any_text(text):
    sizes = parsed_or_refused(resolution.parse_sizes, text)
    if sizes is not None:
        assert len(sizes) == text.count(",") + 1
        for h, w in sizes:
            assert type(h) is int and type(w) is int
            assert 1 <= h <= resolution.MAX_SIZE and 1 <= w <= resolution.MAX_SIZE


@settings(max_examples=300, deadline=None)
@given(st.text() | st.lists(st.sampled_from([*FORMATS, "MD", " Pdf ", "html", "", "png "]), max_size=5).map(",".join))
def test_parse_formats_on_any_text(text):
    formats = parsed_or_refused(parse_formats, text)
    if formats is not None:
        assert len(formats) == text.count(",") + 1 and set(formats) <= set(FORMATS)


@settings(max_examples=300, deadline=None)
@given(st.text() | st.text(alphabet="0123456789:, ", max_size=20))
@example(f"{HUGE}:1")
@example(f"7:{HUGE}")
def test_parse_schedule_on_any_text(text):
    schedule = parsed_or_refused(parse_schedule, text)
    if schedule is not None:
        assert len(schedule) == text.count(",") + 1
        assert all(4 <= size <= 1024 and 1 <= epochs <= 10000 for size, epochs in schedule)


@pytest.mark.parametrize("command", ["sweep --test-res", "plot-kernels --test-res", "train --schedule"])
def test_a_number_too_long_for_int_through_the_cli(trained, tmp_path, cli, command):
    out = tmp_path / "out"
    args = {"sweep --test-res": ["sweep", trained["s4nd"], "--test-res", HUGE, "-o", out],
            "plot-kernels --test-res": ["plot-kernels", trained["s4nd"], "--test-res", HUGE, "-o", out],
            "train --schedule": ["train", "s4nd_iso", "--schedule", f"{HUGE}:1", "-o", out]}[command]
    code, _, err = cli(*args)
    assert_user_error(code, err, HUGE)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# 3. damaged dataset files, through the CLI


def _cut(path: Path, n: int) -> Path:
    path.write_bytes(path.read_bytes()[:-n])
    return path


def _replace(path: Path, blob: bytes) -> Path:
    path.write_bytes(blob)
    return path


def _remove(path: Path) -> Path:
    path.unlink()
    return path


TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
# name -> (gzipped layout, damage(root) -> the file the message must name)
IDX_DAMAGE = {
    "truncated images": (False, lambda root: _cut(root / TEST_IMAGES, 10)),
    "images with trailing bytes": (False, lambda root: _replace(root / TEST_IMAGES,
                                                                (root / TEST_IMAGES).read_bytes() + b"xx")),
    "empty images file": (False, lambda root: _replace(root / TEST_IMAGES, b"")),
    "header cut short": (False, lambda root: _replace(root / TEST_IMAGES, (root / TEST_IMAGES).read_bytes()[:9])),
    "random bytes as labels": (False, lambda root: _replace(root / TEST_LABELS, random.Random(1).randbytes(100))),
    "float32 IDX type": (False, lambda root: _replace(root / TEST_IMAGES,
                                                      b"\x00\x00\x0d\x03" + (root / TEST_IMAGES).read_bytes()[4:])),
    "images not 28x28": (False, lambda root: write_idx(root / TEST_IMAGES, np.zeros((5, 20, 20), np.uint8), False)),
    "fewer labels than images": (False, lambda root: write_idx(root / TEST_LABELS, np.zeros(4, np.uint8), False)),
    "label out of range": (False, lambda root: write_idx(root / TEST_LABELS, np.full(5, 12, np.uint8), False)),
    "labels file missing": (False, lambda root: _remove(root / TEST_LABELS)),
    "truncated gzip": (True, lambda root: _cut(root / f"{TEST_IMAGES}.gz", 12)),
    "gzip magic, junk body": (True, lambda root: _replace(root / f"{TEST_LABELS}.gz",
                                                          b"\x1f\x8b" + random.Random(2).randbytes(200))),
}


def fmnist_sweep(ckpt, root, out) -> list:
    return ["sweep", ckpt, "--dataset", "fashion-mnist", "--data-dir", root, "--test-res", "14", "-o", out]


def test_good_idx_files_sweep_fine(ckpt10, tmp_path, cli):
    """The control for the damaged files below: the same layout, undamaged, is swept."""
    (tmp_path / "fmnist").mkdir()
    write_mnist(tmp_path / "fmnist", gz=False)
    code, _, err = cli(*fmnist_sweep(ckpt10, tmp_path / "fmnist", tmp_path / "out"), "--quiet")
    assert code == 0, err
    assert list(read_results(tmp_path / "out")["n"]) == [5]  # native at 14, the training size (resize-input is it)


@pytest.mark.parametrize("damage", IDX_DAMAGE)
def test_damaged_idx_files_through_the_cli(ckpt10, tmp_path, cli, damage):
    root = tmp_path / "fmnist"
    root.mkdir()
    gz, damage_fn = IDX_DAMAGE[damage]
    write_mnist(root, gz=gz)
    named = damage_fn(root)
    out = tmp_path / "out"
    code, _, err = cli(*fmnist_sweep(ckpt10, root, out))
    assert_user_error(code, err, named)
    assert not out.exists()


@pytest.mark.parametrize("damage", ["truncated train images", "train labels out of range"])
def test_damaged_train_files_through_train(tmp_path, cli, damage):
    root = tmp_path / "fmnist"
    root.mkdir()
    write_mnist(root, gz=False)
    named = (_cut(root / "train-images-idx3-ubyte", 100) if damage == "truncated train images" else
             write_idx(root / "train-labels-idx1-ubyte", np.full(12, 10, np.uint8), False))
    out = tmp_path / "model.pt"
    code, _, err = cli("train", "conv2d_iso", "--dataset", "fashion-mnist", "--data-dir", root, "--epochs", "1",
                       *set_args(CONV_TINY), "-o", out)
    assert_user_error(code, err, named)
    assert not out.exists() and not out.with_name("model.pt.state").exists()


def _png(path: Path, mode="L"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (6, 6), 128 if mode == "L" else (1, 2, 3)).save(path)


# name -> build(root): an image folder that holds nothing usable for the split a command needs
EMPTY_IMAGEFOLDERS = {
    "missing folder": lambda root: None,
    "empty folder": lambda root: root.mkdir(),
    "class folders without images": lambda root: ((root / "train" / "cat").mkdir(parents=True),
                                                  (root / "test" / "cat").mkdir(parents=True)),
    "only non-image files": lambda root: ((root / "train" / "cat").mkdir(parents=True),
                                          (root / "train" / "cat" / "notes.txt").write_text("x")),
    "train images, no test split": lambda root: _png(root / "train" / "cat" / "0.png"),
    "test class unknown to train": lambda root: (_png(root / "train" / "cat" / "0.png"),
                                                 _png(root / "test" / "dog" / "0.png")),
}


@pytest.mark.parametrize("command", ["sweep", "train"])
@pytest.mark.parametrize("folder", EMPTY_IMAGEFOLDERS)
def test_empty_imagefolder_through_the_cli(ckpt10, tmp_path, cli, folder, command):
    root = tmp_path / "images"
    EMPTY_IMAGEFOLDERS[folder](root)
    out = tmp_path / "out"
    args = {"sweep": ["sweep", ckpt10, "--test-res", "14", "-o", out],
            "train": ["train", "conv2d_iso", "--epochs", "1", *set_args(CONV_TINY), "-o", out]}[command]
    code, _, err = cli(*args, "--dataset", "imagefolder", "--data-dir", root)
    assert_user_error(code, err, root)  # no epoch log line either: refused before training starts
    assert not out.exists()


@pytest.mark.parametrize("mismatch", ["classes", "channels"])
def test_checkpoint_that_does_not_fit_the_dataset(trained, ckpt10, tmp_path, cli, mismatch):
    """A model that cannot take the test set is refused up front, not crashed into (or failed cell by cell)."""
    root = tmp_path / "data"
    if mismatch == "classes":  # a 4-class synthetic model on 10-class Fashion-MNIST
        root.mkdir()
        write_mnist(root, gz=False)
        ckpt, dataset = trained["conv"], "fashion-mnist"
    else:  # a 1-channel 10-class model on an RGB image folder with 10 classes
        for c in range(10):
            for split in ("train", "test"):
                _png(root / split / f"class{c}" / "0.png", mode="RGB")
        ckpt, dataset = ckpt10, "imagefolder"
    out = tmp_path / "out"
    code, _, err = cli("sweep", ckpt, "--dataset", dataset, "--data-dir", root, "--test-res", "14", "-o", out)
    assert_user_error(code, err, ckpt, repr(dataset), *{"classes": ["4 classes", "has 1 and 10"],
                                                         "channels": ["1 channel", "has 3 and 10"]}[mismatch])
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# 4. test grids too large for memory


@pytest.fixture(scope="module")
def s4nd_model(trained):
    return load_checkpoint(trained["s4nd"]).build_model()


def test_batch_shrinks_as_the_test_size_grows(s4nd_model):
    batches = [sizing.batch_size_for(s4nd_model, (s, s), 256) for s in (14, 64, 256, 512, 1024)]
    assert batches[0] == 256  # small grids keep the requested batch
    assert 1 <= batches[-1] < 256  # a big grid gets a smaller one
    assert batches == sorted(batches, reverse=True)


def test_batch_fills_the_budget_and_no_more(s4nd_model, monkeypatch):
    """With room for five images of a size, the batch is five (six at most, from rounding the estimate)."""
    monkeypatch.setattr(sizing, "MEMORY_BUDGET", 2 ** 40)
    per_image_upper = 2 ** 40 // sizing.batch_size_for(s4nd_model, (64, 64), 2 ** 40)  # >= one image's bytes
    monkeypatch.setattr(sizing, "MEMORY_BUDGET", 5 * per_image_upper)
    assert 5 <= sizing.batch_size_for(s4nd_model, (64, 64), 256) <= 6


@pytest.mark.parametrize("budget", ["real", "1 MiB"])
def test_a_size_whose_single_image_exceeds_the_budget_is_refused(s4nd_model, monkeypatch, budget):
    size = (4096, 4096) if budget == "real" else (64, 64)
    if budget != "real":
        monkeypatch.setattr(sizing, "MEMORY_BUDGET", 2 ** 20)
    with pytest.raises(ResbenchError) as info:
        sizing.batch_size_for(s4nd_model, size, 256)
    message = str(info.value)
    assert resolution.format_size(size) in message and "GiB" in message and "\n" not in message


def test_sweep_at_4096_is_refused_before_any_work(trained, tmp_path, cli):
    """4096 px would need ~12 GiB per image on the tiny S4ND: one line, exit 2, no folder, no cell run first."""
    out = tmp_path / "out"
    code, _, err = cli("sweep", trained["s4nd"], "--test-res", "7,4096", "--limit", "10", "-o", out)
    assert_user_error(code, err, "4096", "GiB")
    assert not out.exists()


def test_resize_input_at_a_huge_size_is_refused_for_its_input_images(trained, tmp_path, cli, monkeypatch):
    """resize-input runs the model at the training size, but the test images exist at the test size."""
    monkeypatch.setattr(sizing, "MEMORY_BUDGET", 64 * 1024 ** 2)
    out = tmp_path / "out"
    code, _, err = cli("sweep", trained["s4nd"], "--test-res", "7,4000", "--policy", "resize-input",
                       "--limit", "10", "-o", out)
    assert_user_error(code, err, "4000", "GiB")
    assert not out.exists()


def test_input_images_bound_the_batch(trained, s4nd_model, monkeypatch):
    from resbench.checkpoints import load_checkpoint

    ckpt = load_checkpoint(trained["s4nd"])
    cfg = sweep.SweepConfig(checkpoints=[], out="", batch_size=10 ** 9)
    cell = sweep.Cell(0, (1000, 1000), "resize-input", "on")
    monkeypatch.setattr(sizing, "MEMORY_BUDGET", 120 * 10 ** 6)  # ~10 input images of 12 MB each
    assert 1 <= sizing.cell_batch_size(s4nd_model, ckpt, cell, cfg) <= 10


def set_budget_for_batch(monkeypatch, model, size, most: int) -> int:
    """Halve MEMORY_BUDGET until `size` gets a batch of `most` or fewer (then between most / 2 and most)."""
    budget = 2 ** 40
    while True:
        monkeypatch.setattr(sizing, "MEMORY_BUDGET", budget)
        if sizing.batch_size_for(model, size, 10 ** 12) <= most:
            return budget
        budget //= 2


def test_a_small_budget_gives_small_batches_and_the_same_numbers(trained, s4nd_model, tmp_path, cli, monkeypatch):
    args = ["sweep", trained["s4nd"], "--test-res", "14,28", "--policy", "native", "--limit", "50", "--quiet"]
    code, _, err = cli(*args, "-o", tmp_path / "big")
    assert code == 0, err
    budget = set_budget_for_batch(monkeypatch, s4nd_model, (28, 28), 4)
    assert 2 <= sizing.batch_size_for(s4nd_model, (28, 28), 256) <= 4  # 50 images in 13 to 25 batches
    code, _, err = cli(*args, "-o", tmp_path / "small")
    assert code == 0, err
    big, small = cell_values(tmp_path / "big"), cell_values(tmp_path / "small")
    assert {k: v[:2] for k, v in big.items()} == {k: v[:2] for k, v in small.items()}  # n, correct
    assert all(abs(big[k][2] - small[k][2]) < 1e-5 for k in big)  # loss, up to float summation order
    assert all(v[0] == 50 for v in small.values())

    # 2 to 4 images of 28 px fit the budget; a sixth of it holds no 28 px image but one of 14 px (a quarter)
    monkeypatch.setattr(sizing, "MEMORY_BUDGET", budget // 6)
    code, _, err = cli(*args[:-1], "-o", tmp_path / "refused")  # no --quiet: a cell's log line would show
    assert_user_error(code, err, "test size 28", "GiB")
    assert not (tmp_path / "refused").exists()


# ---------------------------------------------------------------------------------------------
# 5. faults: SIGKILL at random moments, then resume


FAULT_SIZES = "7,14,21,28,35,42"
FAULT_LIMIT = 300
# sizes x policies x (on, off for S4ND; none for Conv2D), and S4ND's capped cell natively below 14 (at 7),
# less resize-input at 14 (the training size: the native cell)
FAULT_BANDLIMITS = "on,off,capped"
N_FAULT_CELLS = 6 * 2 * (2 + 1) + 1 - (2 + 1)


def fault_sweep(ckpt_dir, out, *extra) -> list[str]:
    return [str(a) for a in ("sweep", ckpt_dir, "--test-res", FAULT_SIZES, "--limit", FAULT_LIMIT,
                             "--bandlimit", FAULT_BANDLIMITS, "--quiet",
                             "-o", out, *extra)]


def cell_values(out) -> dict:
    """{cell: (n, correct, loss, error)} from the logs, after checking that no cell was logged twice."""
    rows = [json.loads(line) for log in sorted(Path(out).glob("cells*.jsonl"))
            for line in log.read_bytes().split(b"\n") if line.strip()]
    keys = [tuple(r[c] for c in CELL) for r in rows]
    assert len(keys) == len(set(keys)), "a cell was logged twice"
    return {k: (r["n"], r["correct"], r["loss"], r["error"]) for k, r in zip(keys, rows)}


@pytest.fixture(scope="module")
def reference(trained, tmp_path_factory) -> Path:
    """The fault grid swept without interruption, as the CLI does it (two threads)."""
    out = tmp_path_factory.mktemp("reference")
    quiet_sweep(SweepConfig(checkpoints=[str(trained["s4nd"].parent)], out=str(out),
                            test_res=resolution.parse_sizes(FAULT_SIZES), limit=FAULT_LIMIT,
                            bandlimit=FAULT_BANDLIMITS.split(",")))
    values = cell_values(out)
    assert len(values) == N_FAULT_CELLS and all(v[0] == FAULT_LIMIT and v[3] == "" for v in values.values())
    return out


def complete_log_lines(out: Path) -> int:
    log = out / "cells.jsonl"
    return log.read_bytes().count(b"\n") if log.exists() else 0


def check_results_csv(out: Path) -> None:
    """results.csv, whenever it exists, is whole: the full header, rows that parse, only logged cells, once each."""
    csv = out / "results.csv"
    if not csv.exists():
        return
    text = csv.read_text()
    lines = text.splitlines()
    assert lines[0] == ",".join(RESULT_COLUMNS) and text.endswith("\n")
    assert all(line.count(",") >= len(RESULT_COLUMNS) - 1 for line in lines)  # no row cut short
    df = pd.read_csv(io.StringIO(text), dtype={"test_res": str, "train_res": str}, keep_default_na=False)
    assert list(df.columns) == RESULT_COLUMNS
    assert df["n"].dtype == "int64" and df["correct"].dtype == "int64"
    assert not df.duplicated(CELL).any()
    assert len(df) <= complete_log_lines(out)  # the log only grows: read after the table, it holds every row
    assert set(map(tuple, df[CELL].values.tolist())) <= {tuple(r[c] for c in CELL) for r in read_rows(out)}


def kill_cli_when(args, ready, within: float, then_wait: float = 0.0) -> int:
    """Run `python cli.py ARGS`; SIGKILL it `then_wait` s after ready() is true, or after `within` s. Its exit code."""
    proc = subprocess.Popen([sys.executable, "cli.py", *map(str, args)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        start = time.monotonic()
        while proc.poll() is None and time.monotonic() - start < within:
            if ready():
                time.sleep(then_wait)
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)  # a no-op once it has exited: the code below then says so
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return proc.returncode


@pytest.mark.slow
def test_sweep_killed_five_times_resumes_to_the_uninterrupted_table(trained, reference, tmp_path, cli):
    rng = random.Random(15)
    out = tmp_path / "killed"
    args = fault_sweep(trained["s4nd"].parent, out)
    progressed = 0
    for kill in range(5):
        # kills on events, not after fixed delays (a slow machine would land them elsewhere): the first as soon
        # as the process runs (start-up), the others after 1 to 4 more rows are logged
        grow, jitter = (0 if kill == 0 else rng.randint(1, 4)), rng.uniform(0.0, 0.3)
        before = complete_log_lines(out)

        def grown():
            check_results_csv(out)  # observed while the sweep writes
            return complete_log_lines(out) >= before + grow

        # after `grow` more cells, `jitter` lands the kill somewhere in evaluating, logging or rewriting tables
        code = kill_cli_when(args, grown, within=300, then_wait=jitter)
        assert code == -signal.SIGKILL, "the sweep finished before it was killed"
        check_results_csv(out)  # and after each kill
        progressed += complete_log_lines(out) > before
    assert progressed >= 4, "fewer than four kills landed after new rows were logged"
    assert complete_log_lines(out) < N_FAULT_CELLS

    code, _, err = cli(*args)
    assert code == 0, err
    check_results_csv(out)
    resumed, straight = cell_values(out), cell_values(reference)
    assert resumed.keys() == straight.keys()  # no cell missing, none extra, none twice (cell_values)
    for key, (n, correct, loss, error) in straight.items():
        assert resumed[key][:2] == (n, correct) and resumed[key][3] == error == "", key
        assert abs(resumed[key][2] - loss) < 1e-5, key
    table = pd.read_csv(out / "results.csv", dtype={"test_res": str}, keep_default_na=False)
    assert len(table) == N_FAULT_CELLS and not table.duplicated(CELL).any()


TRAIN_ARGS = ["train", "s4nd_iso", "--dataset", "synthetic", "--limit", "256", "--train-res", "14", "--epochs", "3",
              "--batch-size", "32", "--seed", "0", *set_args(S4ND_TINY)]  # conftest's tiny_config, via --set


@pytest.mark.slow
def test_training_killed_after_an_epoch_resumes_to_the_same_weights(tmp_path, cli):
    out = tmp_path / "killed.pt"
    state = tmp_path / "killed.pt.state"
    code = kill_cli_when([*TRAIN_ARGS, "--quiet", "-o", out], state.exists, within=120)
    assert code == -signal.SIGKILL, "training finished before it was killed"
    assert not out.exists()
    saved_epoch = torch.load(state, map_location="cpu", weights_only=True)["epoch"]
    assert 1 <= saved_epoch < 3

    resumed = run_cli(*TRAIN_ARGS, "--resume", "-o", out)
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {saved_epoch}/3" in resumed.stderr  # it continued, it did not start over
    assert not state.exists()
    code, _, err = cli(*TRAIN_ARGS, "--quiet", "-o", tmp_path / "straight.pt")
    assert code == 0, err

    a, b = load_checkpoint(out), load_checkpoint(tmp_path / "straight.pt")
    assert {k: a.config[k] for k in S4ND_TINY} == S4ND_TINY  # --set took conftest's tiny config
    assert a.config == b.config
    assert a.state_dict.keys() == b.state_dict.keys()
    for key in a.state_dict:
        assert torch.equal(a.state_dict[key], b.state_dict[key]), key
    assert [h["loss"] for h in a.provenance["history"]] == [h["loss"] for h in b.provenance["history"]]


# ---------------------------------------------------------------------------------------------
# 6. determinism: the same inputs give the same numbers, bit for bit


def test_same_options_same_numbers(trained, reference, tmp_path, cli):
    code, _, err = cli(*fault_sweep(trained["s4nd"].parent, tmp_path))
    assert code == 0, err
    assert cell_values(tmp_path) == cell_values(reference)


def test_three_shards_into_one_folder_same_numbers(trained, reference, tmp_path, cli):
    for k in (1, 2, 3):
        code, _, err = cli(*fault_sweep(trained["s4nd"].parent, tmp_path, "--shard", f"{k}/3"))
        assert code == 0, err
        assert (tmp_path / f"cells-{k}of3.jsonl").exists()
    assert cell_values(tmp_path) == cell_values(reference)
