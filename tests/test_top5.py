"""Top-5 accuracy with its Wilson interval, for test sets of more than five classes: rows, tables, report."""

import json

import pandas as pd
import torch

from conftest import make_checkpoint
from folders import write_folder
from resbench.checkpoints import save_checkpoint
from resbench.scoring import score, top5_columns, wilson_interval
from resbench.store import RESULT_COLUMNS, read_results, results_frame


class Fixed(torch.nn.Module):
    """Returns the logits it is given as its input (x is (b, classes)): a model whose answers we choose."""

    def forward_policy(self, x, policy):
        return x


def test_top5_against_a_hand_count():
    logits = torch.tensor([[9., 8, 7, 6, 5, 4, 3],   # label 0: top-1 and top-5
                           [9., 8, 7, 6, 5, 4, 3],   # label 4: top-5 (fifth), not top-1
                           [9., 8, 7, 6, 5, 4, 3],   # label 5: neither (sixth)
                           [0., 0, 0, 0, 0, 0, 1]])  # label 6: top-1
    labels = torch.tensor([0, 4, 5, 6])
    result = score(Fixed(), [(logits[:2], labels[:2]), (logits[2:], labels[2:])], num_classes=7)
    assert result.correct == 2 and result.correct5 == 3
    cols = top5_columns(result)
    assert cols["top5_correct"] == 3 and cols["top5_accuracy"] == 0.75
    assert (cols["top5_ci_low"], cols["top5_ci_high"]) == wilson_interval(3, 4)


def test_five_classes_or_fewer_have_no_top5():
    logits, labels = torch.eye(5), torch.arange(5)
    result = score(Fixed(), [(logits, labels)], num_classes=5)
    assert result.correct5 is None
    cols = top5_columns(result)
    assert cols["top5_correct"] is None and pd.isna(cols["top5_accuracy"])


def test_old_rows_without_top5_still_load():
    old = {"model": "m", "checkpoint": "c", "checkpoint_sha256": "s", "dataset": "d", "train_res": "14",
           "test_res": "14", "policy": "native", "bandlimit": "on", "alpha": 0.5, "seed": 0, "n": 10, "correct": 5,
           "accuracy": 0.5, "ci_low": 0.2, "ci_high": 0.8, "loss": 1.0, "seconds": 1.0, "images_per_s": 10.0,
           "error": "", "limit": -1}
    df = results_frame([old])
    assert list(df.columns) == RESULT_COLUMNS and pd.isna(df["top5_accuracy"].iloc[0])


def test_an_old_results_csv_without_top5_or_subset_still_loads(tmp_path):
    old = results_frame([{"model": "m", "checkpoint": "c", "checkpoint_sha256": "s", "dataset": "d",
                          "train_res": "14", "test_res": "14", "policy": "native", "bandlimit": "on", "seed": 0,
                          "n": 10, "correct": 5, "accuracy": 0.5, "error": "", "limit": 100}])
    old.drop(columns=["subset", "top5_correct", "top5_accuracy", "top5_ci_low", "top5_ci_high"]).to_csv(
        tmp_path / "results.csv", index=False)
    df = read_results(tmp_path)
    assert set(RESULT_COLUMNS) <= set(df.columns)
    assert df["subset"].tolist() == ["first"] and df["top5_accuracy"].isna().all()


def test_a_sweep_of_seven_classes_has_top5_in_rows_and_report(cli, tmp_path):
    counts = {f"class {k}": 3 for k in range(7)}
    root = write_folder(tmp_path / "f", counts)
    ckpt = make_checkpoint("conv2d_iso", in_chans=3, num_classes=7, train_res=16)
    ckpt.data_stats = {"mean": [0.5] * 3, "std": [0.25] * 3}
    path = save_checkpoint(ckpt, tmp_path / "rgb7.pt")
    out = tmp_path / "s"
    code, _, err = cli("sweep", path, "--dataset", "imagefolder", "--data-dir", root, "--test-res", "16",
                       "--policy", "native", "--log-samples", "--quiet", "-o", out)
    assert code == 0, err
    [row] = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    from resbench.store import read_samples

    records = read_samples(out, read_results(out).iloc[0])
    hand = int(sum((records[[f"top{k}" for k in range(1, 6)]].values == records[["label"]].values).any(axis=1)))
    assert row["top5_correct"] == hand and row["top5_accuracy"] == hand / 21 and row["correct"] <= hand
    csv = pd.read_csv(out / "results.csv")
    assert csv["top5_correct"].iloc[0] == hand
    from resbench.report import TOP5_TITLE, load_sweeps, report_tables

    tables = report_tables(load_sweeps([out])[0])
    assert TOP5_TITLE in tables
    cell = tables[TOP5_TITLE]["16"].iloc[0]
    low, high = wilson_interval(hand, 21)
    assert cell.startswith(f"{100 * hand / 21:.2f} [{100 * low:.1f}, {100 * high:.1f}]")
