"""Per-image analysis (resbench.report.persample): the exact McNemar test, Holm's adjustment, ECE and reliability bins,
prediction flips, and how a report uses them (paired policy winners, flips and calibration tables, the
reliability diagram), with a report on a folder without records saying they are left out."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

from resbench.errors import ResbenchError
from resbench.report.persample import (Records, ece, flip_frame, holm, mcnemar_p, paired_policy, reliability_bins)
from resbench.report import FLIP_TITLE, ECE_TITLE, report_tables, write_report
from resbench.sweep import SweepConfig, run_sweep


def binom_two_sided(b, c):
    """The same p by brute force with exact integers (math.comb), for small counts."""
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_matches_the_exact_binomial(b, c):
    assert mcnemar_p(b, c) == pytest.approx(binom_two_sided(b, c), rel=1e-9, abs=1e-300)
    assert mcnemar_p(b, c) == mcnemar_p(c, b)


def test_mcnemar_known_values_and_large_counts():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(0, 5) == pytest.approx(2 / 32)  # 2 x (1/2)^5
    assert mcnemar_p(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_p(4000, 4000) == 1.0
    p = mcnemar_p(480, 600)  # a 10k-image test set's discordant counts: no overflow, and small
    assert 0 < p < 1e-3


def test_holm_adjusts_in_order_and_is_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.2, 0.9]) == pytest.approx([0.4, 0.9])


def records(labels, preds, conf):
    n = len(labels)
    return pd.DataFrame({"index": np.arange(n), "label": labels, "pred": preds, "p_label": conf, "p_pred": conf,
                         **{f"top{k}": preds for k in range(1, 6)}})


def test_ece_of_a_calibrated_and_an_overconfident_model():
    labels = np.zeros(100, dtype=int)
    half = np.array([0] * 50 + [1] * 50)  # right on half the images
    assert ece(records(labels, half, np.full(100, 0.5))) == pytest.approx(0.0, abs=1e-12)
    assert ece(records(labels, half, np.full(100, 0.9))) == pytest.approx(0.4)
    bins = reliability_bins(records(labels, half, np.r_[np.full(50, 0.95), np.full(50, 0.15)]))
    # bins in confidence order: the wrong ones at 0.15 (bin 2 of 15), the right ones at 0.95 (bin 14)
    assert bins.values.tolist() == [[2, 50, 0.0, pytest.approx(0.15)], [14, 50, 1.0, pytest.approx(0.95)]]
    assert ece(records(labels, half, np.r_[np.full(50, 0.95), np.full(50, 0.15)])) == pytest.approx(
        0.5 * 0.05 + 0.5 * 0.15)


class FakeRecords(Records):
    def __init__(self, table):
        super().__init__()
        self.table = table

    def get(self, row):
        return self.table.get(row.samples)


def test_flips_count_changed_predictions_and_their_direction():
    labels = np.array([0, 1, 2, 3])
    table = {"a": records(labels, np.array([0, 1, 2, 0]), np.full(4, 0.9)),  # 3 right
             "b": records(labels, np.array([0, 2, 2, 3]), np.full(4, 0.9))}  # one right->wrong, one wrong->right
    ref = pd.DataFrame({"checkpoint": ["m", "m"], "train_res": ["14", "14"], "test_res": ["14", "28"],
                        "limit": [-1, -1], "seen": [False, False], "samples": ["a", "b"]})
    f = flip_frame(ref, FakeRecords(table))
    assert f[["test_res", "flips", "right_to_wrong", "wrong_to_right"]].values.tolist() == [["28", 50.0, 25.0, 25.0]]
    other = {"a": table["a"], "b": table["b"].iloc[:3]}  # other images: not compared
    assert flip_frame(ref, FakeRecords(other)).empty


def test_paired_policy_counts_the_discordant_images():
    labels = np.arange(10) % 3
    native = records(labels, labels.copy(), np.full(10, 0.8))
    resize_pred = labels.copy()
    resize_pred[:4] = (labels[:4] + 1) % 3
    t = paired_policy(pd.Series({"samples": "n"}), pd.Series({"samples": "r"}),
                      FakeRecords({"n": native, "r": records(labels, resize_pred, np.full(10, 0.8))}))
    assert (t["only_native"], t["only_resize"]) == (4, 0) and t["p"] == pytest.approx(2 / 16)


# ---- through a real sweep and report -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def logged(trained, tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("logged") / "sw"
    run_sweep(SweepConfig(checkpoints=[str(trained["s4nd"]), str(trained["conv"])], out=str(out),
                          test_res=[(7, 7), (14, 14), (28, 28)], bandlimit=["on"], dataset="synthetic",
                          threads=1, log_samples=True), quiet=True)
    torch.set_num_threads(threads)
    return out


def test_a_report_with_records_has_flips_calibration_and_paired_policy_rows(logged, tmp_path):
    result = write_report([logged], tmp_path / "r", formats=["md", "png"])
    tables = result["tables"]
    flips, cal = tables[FLIP_TITLE], tables[ECE_TITLE]
    assert set(flips["checkpoint"]) == {"s4nd_iso_14", "conv2d_iso_14"}
    assert {"7", "28"} <= set(flips.columns) and "14" not in flips.columns  # the training size is the base
    assert {"7", "14", "28"} <= set(cal.columns)
    assert ((cal[["7", "14", "28"]].astype(float) >= 0) & (cal[["7", "14", "28"]].astype(float) <= 100)).all().all()
    policy = tables["Policy comparison: zero-shot (native) vs resize-input, accuracy (%)"]
    below = policy[policy["test_res"] == "7"]
    assert len(below) == 2 and (below["p (Holm)"] != "").all()
    assert below["winner"].str.endswith("(paired test)").all()
    above = policy[policy["test_res"] == "28"]
    assert above["winner"].str.startswith("(reference").all()
    md = (tmp_path / "r.md").read_text()
    # 2 checkpoints x 3 sizes x 2 policies, resize-input at 14 being the native cell: 10 evaluated
    assert "per-image records (sweep --log-samples): 10 of 10" in md and "r_reliability.png" in md
    assert (tmp_path / "r_reliability.png").stat().st_size > 5000


def test_the_paired_winner_follows_the_discordant_counts(logged):
    from resbench.report import load_sweeps

    df, _ = load_sweeps([logged])
    records = Records()
    policy = report_tables(df, records)["Policy comparison: zero-shot (native) vs resize-input, accuracy (%)"]
    rows = policy[policy["test_res"] == "7"]
    assert len(rows) == 2
    for _, row in rows.iterrows():
        a, b = int(row["only native"]), int(row["only resize"])
        assert a + b > 0  # tiny models at a third of their size: the two policies disagree on some images
        if not row["winner"].startswith("tie"):
            assert (a > b) == row["winner"].startswith("native")


def test_a_report_without_records_says_they_are_left_out(trained, tmp_path, keep_torch_threads):
    out = tmp_path / "sw"
    run_sweep(SweepConfig(checkpoints=[str(trained["conv"])], out=str(out), test_res=[(7, 7), (14, 14)],
                          dataset="synthetic", limit=50, threads=1), quiet=True)
    result = write_report([out], tmp_path / "r", formats=["md"])
    assert FLIP_TITLE not in result["tables"] and ECE_TITLE not in result["tables"]
    md = (tmp_path / "r.md").read_text()
    results = md.split("## Appendix: provenance")[0]  # (the provenance's command line may name anything)
    assert "per-image records: none" in md and "--log-samples" in md and "reliability" not in results.lower()
    assert "[\u00a7SUBSET: 50 images per cell]" in md  # a subset alone: every title of a result says so
    headings = [line for line in md.splitlines() if line.startswith("## ") and line != "## Scope"]
    assert headings[-1] == "## Appendix: provenance"
    assert all(h.endswith("[\u00a7SUBSET: 50 images per cell]") for h in headings[:-1]), headings


def test_an_unknown_reliability_name_is_a_user_error(logged, cli, tmp_path):
    code, _, err = cli("report", logged, "-o", tmp_path / "r", "--format", "md", "--reliability", "nosuch,other")
    assert code == 2 and "--reliability 'nosuch'" in err and "s4nd_iso_14" in err
    code, _, err = cli("report", logged, "-o", tmp_path / "r", "--format", "md",
                       "--reliability", "conv2d_iso_14")
    assert code == 0, err
    assert "Reliability diagram: conv2d_iso_14" in (tmp_path / "r.md").read_text()


def test_subset_and_full_lines_stay_apart_in_a_report(trained, tmp_path, keep_torch_threads):
    out = tmp_path / "sw"
    for limit in (40, None):
        run_sweep(SweepConfig(checkpoints=[str(trained["conv"])], out=str(out), test_res=[(14, 14)],
                              policy=["native"], dataset="synthetic", limit=limit, threads=1), quiet=True)
    result = write_report([out], tmp_path / "r", formats=["md"])
    native = result["tables"]["Native accuracy (test size = train size, native policy)"]
    assert sorted(native["checkpoint"]) == ["conv2d_iso_14", "conv2d_iso_14 [\u00a7subset 40]"]
    assert sorted(native["n"]) == [40, 1000]
    assert result["missing"] == []


def test_seed_spread_groups_checkpoints_of_one_recipe(trained, tmp_path, keep_torch_threads):
    import re

    from conftest import tiny_config, tiny_train
    from resbench.report import SEEDS_TITLE, load_sweeps, seed_spread_table

    folder = tmp_path / "ckpts"
    folder.mkdir()
    for name, seed, lr in (("a_seed0", 0, 5e-3), ("a_seed1", 1, 5e-3), ("other_lr", 2, 1e-3)):
        cfg = tiny_config("conv2d_iso", schedule=[(14, 1)], seed=seed)
        cfg.lr = lr
        tiny_train(cfg, folder / f"{name}.pt")
    out = tmp_path / "sw"
    run_sweep(SweepConfig(checkpoints=[str(folder)], out=str(out), test_res=[(7, 7), (14, 14)], policy=["native"],
                          dataset="synthetic", limit=None, threads=1), quiet=True)
    df, runs = load_sweeps([out])
    table = seed_spread_table(df, runs)
    assert table["checkpoints"].tolist() == ["a_seed0, a_seed1"] and table["seeds"].tolist() == ["0,1"]
    for size in ("7", "14"):
        acc = 100 * df[df["checkpoint"].isin(["a_seed0", "a_seed1"]) & (df["test_res"] == size)]["accuracy"]
        mean, sd, half = map(float, re.fullmatch(r"(\S+) \u00b1 (\S+) \[\u00b1(\S+)\]", table[size].iloc[0]).groups())
        assert mean == pytest.approx(acc.mean(), abs=0.006) and sd == pytest.approx(acc.std(ddof=1), abs=0.006)
        assert 0 < half < 10
    result = write_report([out], tmp_path / "r", formats=["md"])
    assert SEEDS_TITLE in result["tables"]


class _KnownRecords:
    """Per-image records made up so each checkpoint's two cells disagree on a chosen number of images."""

    def __init__(self, counts: dict[str, tuple[int, int, int]]):
        self.counts = counts  # checkpoint -> (only native right, only resize right, both right)

    def get(self, row):
        import numpy as np

        only_native, only_resize, both = self.counts[row.checkpoint]
        n = only_native + only_resize + both + 10  # and 10 images both get wrong
        right = np.zeros(n, bool)
        if row.policy == "native":
            right[:only_native] = True
        else:
            right[only_native:only_native + only_resize] = True
        right[only_native + only_resize:only_native + only_resize + both] = True
        label = np.arange(n) % 4
        return pd.DataFrame({"index": np.arange(n), "label": label, "pred": np.where(right, label, (label + 1) % 4)})


@pytest.mark.parametrize("counts, winners", [
    ({"a": (30, 2, 50), "b": (1, 25, 50), "c": (5, 6, 50)},
     {"a": "native (zero-shot) (paired test)", "b": "resize-input (paired test)", "c": "tie (paired test)"}),
    ({"a": (2, 30, 40), "b": (25, 1, 40), "c": (0, 0, 40)},
     {"a": "resize-input (paired test)", "b": "native (zero-shot) (paired test)", "c": "tie (paired test)"}),
])
def test_the_paired_winner_of_known_discordant_counts(counts, winners):
    from resbench.report.stats import paired_columns

    names = sorted(counts)
    pol = pd.DataFrame({"checkpoint": names, "train_res": "14", "test_res": "7", "winner": "placeholder"})
    ref = pd.DataFrame([{"checkpoint": c, "test_res": "7", "policy": p} for c in names
                        for p in ("native", "resize-input")])
    out = paired_columns(pol.copy(), ref, _KnownRecords(counts))
    assert dict(zip(out["checkpoint"], out["winner"])) == winners
    assert dict(zip(out["checkpoint"], out["only native"])) == {c: str(counts[c][0]) for c in names}
    assert dict(zip(out["checkpoint"], out["only resize"])) == {c: str(counts[c][1]) for c in names}
