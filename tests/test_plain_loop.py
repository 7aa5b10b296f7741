"""The sweep's numbers against a plain evaluation loop written here: load a shipped checkpoint, resize the test
images (bilinear, antialiased), normalise them with the checkpoint's own statistics, take the argmax."""

import json

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO
from resbench import data
from resbench.checkpoints import load_checkpoint

LIMIT, BATCH = 200, 100


def plain_correct(path, size: int, limit: int = LIMIT) -> int:
    """Test images classified right by the checkpoint at `size` x `size`, by nothing but torch."""
    ckpt = load_checkpoint(path)
    model = ckpt.build_model().eval()
    images, labels = data.load_raw("fashion-mnist", "test", limit=limit)  # (N, 1, 28, 28) uint8, (N,)
    mean = torch.tensor(ckpt.data_stats["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(ckpt.data_stats["std"]).view(1, -1, 1, 1)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), BATCH):
            x = images[i:i + BATCH].float() / 255.0  # (b, 1, 28, 28) in [0, 1]
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            x = (x - mean) / std
            correct += int((model(x).argmax(1) == labels[i:i + BATCH]).sum())
    return correct


@pytest.fixture(scope="module")
def fashion():
    try:
        data.load_raw("fashion-mnist", "test", limit=1)
    except Exception as e:  # noqa: BLE001 (the dataset package is not installed here)
        pytest.skip(f"Fashion-MNIST is not available: {e}")


@pytest.mark.parametrize("name, bandlimit", [("conv2d_iso_7", "none"), ("s4nd_iso_7", "on")])
def test_sweep_correct_equals_a_plain_loop_at_the_training_size_and_another(fashion, tmp_path, cli, keep_torch_threads,
                                                                              name, bandlimit):
    path = REPO / "checkpoints" / f"{name}.pt"
    code, _, err = cli("sweep", path, "--dataset", "fashion-mnist", "--test-res", "7,14", "--policy", "native",
                       "--bandlimit", "on" if bandlimit == "on" else "off", "--limit", LIMIT, "--subset", "first",
                       "--batch-size", BATCH,
                       "--quiet", "-o", tmp_path / "out")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "out" / "cells.jsonl").read_text().splitlines()]
    swept = {r["test_res"]: r["correct"] for r in rows if r["bandlimit"] == bandlimit and r["policy"] == "native"}
    assert set(swept) == {"7", "14"}
    for size in (7, 14):
        assert swept[str(size)] == plain_correct(path, size), size
    assert swept["7"] > LIMIT // 2  # trained at 7: far above chance, so the two agreeing is not two failures
