"""--batch-size: honoured on every device, or lowered for memory with one line and a note in the run record."""

import json

import pytest

from resbench import sweep
from resbench.sweep import batches as sizing
from resbench.checkpoints import load_checkpoint


@pytest.fixture(scope="module")
def conv(trained):
    ckpt = load_checkpoint(trained["conv"])
    return ckpt, ckpt.build_model()


def batch(conv, size, batch_size, device="cpu"):
    ckpt, model = conv
    cfg = sweep.SweepConfig(checkpoints=[], out="", batch_size=batch_size, device=device)
    return sizing.cell_batch_size(model, ckpt, sweep.Cell(0, (size, size), "native", "none"), cfg)


def test_the_cpu_cache_cap_applies_only_to_the_default(conv):
    assert batch(conv, 56, None) == sweep.CACHE_PIXELS // (56 * 56)  # 8: the default, cut to the cache
    assert batch(conv, 56, 64) == 64  # a given batch is honoured
    assert batch(conv, 14, None) == sweep.CACHE_PIXELS // (14 * 14)


def test_a_batch_memory_cannot_take_is_lowered_with_a_line_and_a_record(trained, cli, tmp_path, monkeypatch, conv):
    ckpt, model = conv
    # a budget with room for about 20 images at 28 px (and many more at 14)
    one = 2 ** 40 // sizing.batch_size_for(model, (28, 28), 2 ** 40, 2 ** 40)  # bytes of one image, or a little more
    monkeypatch.setattr(sizing, "MEMORY_BUDGET", 20 * one)
    out = tmp_path / "out"
    code, _, err = cli("sweep", trained["conv"], "--test-res", "28", "--policy", "native", "--limit", 30,
                       "--batch-size", 1000, "-o", out)
    assert code == 0, err
    lines = [line for line in err.splitlines() if "lowered for memory" in line]
    assert len(lines) == 1 and "--batch-size 1000" in lines[0] and "conv2d_iso_14 @ 28" in lines[0]
    record = json.loads((out / "meta.json").read_text())
    [entry] = record["batch_lowered"]
    assert entry["requested"] == 1000 and 19 <= entry["used"] <= 21 and entry["test_res"] == "28"


def test_no_line_when_the_batch_fits(trained, cli, tmp_path):
    code, _, err = cli("sweep", trained["conv"], "--test-res", "14", "--policy", "native", "--limit", 10,
                       "--batch-size", 16, "-o", tmp_path / "o")
    assert code == 0, err
    assert "lowered" not in err
