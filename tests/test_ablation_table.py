"""The report's bandlimit ablation by arm (report/ablation.py): arms, seeds, seed-paired differences, checked
against direct computations on made-up accuracies."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest
from scipy import stats

from resbench.report.ablation import ARMS_TITLE, DIFF_TITLE, arm_tables

SIZES = ["7", "14", "28"]
ACC = {  # (arm, seed) -> accuracy at 7, 14, 28
    ("band", 0): [0.84, 0.80, 0.72], ("band", 1): [0.85, 0.81, 0.75], ("band", 2): [0.84, 0.79, 0.74],
    ("random", 0): [0.85, 0.73, 0.50], ("random", 1): [0.84, 0.70, 0.55], ("random", 2): [0.86, 0.75, 0.52],
    ("none", 0): [0.86, 0.79, 0.66], ("none", 1): [0.87, 0.77, 0.70],
}


def _ckpt(arm, seed, records_mask=True):
    overrides = {"none": {"bandlimit": None}, "band": {"bandlimit": 0.5},
                 "random": {"bandlimit": 0.5, "mask": "random"}}[arm]
    provenance = {"train_config": {"model": "s4nd_iso", "schedule": [[7, 3]], "seed": seed,
                                   "model_overrides": dict(overrides)}}
    if records_mask:
        provenance["mask"] = overrides.get("mask", "band")
    return SimpleNamespace(provenance=provenance, config={"bandlimit": overrides["bandlimit"]})


def _rows(name, acc, setting):
    return [{"checkpoint": name, "checkpoint_sha256": name, "error": "", "policy": "native", "bandlimit": setting,
             "train_res": "7", "test_res": size, "accuracy": a, "seen_in_training": False, "dims": 2}
            for size, a in zip(SIZES, acc)]


def _swept(acc=ACC, extra=()):
    files, rows = {}, []
    for (arm, seed), values in acc.items():
        name = f"s4nd_iso_7_{arm}_seed{seed}"
        files[name] = _ckpt(arm, seed)
        rows += _rows(name, values, "off" if arm == "none" else "on")
    for name, ckpt, values in extra:
        files[name] = ckpt
        rows += _rows(name, values, "on")
    return pd.DataFrame(rows), SimpleNamespace(get=files.get)


def test_each_arm_is_the_mean_and_sd_of_its_seeds():
    table = arm_tables(*_swept())[ARMS_TITLE].set_index("arm")
    for arm, label in (("band", "band mask (alpha 0.5)"), ("random", "random mask (alpha 0.5)"), ("none", "no mask")):
        for i, size in enumerate(SIZES):
            values = [100 * v[i] for (a, _), v in ACC.items() if a == arm]
            expected = f"{pd.Series(values).mean():.2f} \u00b1 {pd.Series(values).std():.2f} ({len(values)})"
            assert table.loc[label, size] == expected
    assert list(table.index) == ["band mask (alpha 0.5)", "random mask (alpha 0.5)", "no mask"]


@pytest.mark.parametrize("other, label", [("random", "random mask (alpha 0.5)"), ("none", "no mask")])
def test_differences_pair_seed_by_seed_with_a_t_interval(other, label):
    table = arm_tables(*_swept())[DIFF_TITLE].set_index("comparison")
    row = table.loc[f"band mask (alpha 0.5) minus {label}"]
    for i, size in enumerate(SIZES):
        seeds = sorted(s for a, s in ACC if a == other)  # no-mask has seeds 0 and 1 only: two pairs
        d = pd.Series([100 * (ACC[("band", s)][i] - ACC[(other, s)][i]) for s in seeds])
        half = stats.t.ppf(0.975, len(d) - 1) * d.std() / math.sqrt(len(d))
        assert row[size] == f"{d.mean():+.2f} [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}] ({len(d)})"


def test_a_twin_file_of_one_arm_and_seed_counts_once():
    # an older file of the band arm's seed 0 that does not record its mask kind: left out, the arm keeps 3 seeds
    twin = ("s4nd_iso_7", _ckpt("band", 0, records_mask=False), [0.10, 0.10, 0.10])
    table = arm_tables(*_swept(extra=[twin]))[ARMS_TITLE].set_index("arm")
    assert table.loc["band mask (alpha 0.5)", "7"].endswith("(3)")
    assert not table.loc["band mask (alpha 0.5)", "7"].startswith("6")  # the 10% twin did not enter the mean


def test_one_arm_alone_is_no_ablation():
    only_band = {k: v for k, v in ACC.items() if k[0] == "band"}
    assert arm_tables(*_swept(only_band)) == {}
