"""What the per-image records of a sweep (`sweep --log-samples`) add to accuracy: prediction flips between the
training size and each test size, calibration (expected calibration error, reliability diagrams), and a paired
test of two cells on the same images (exact McNemar).

Everything here reads a results frame that carries each row's sweep folder ("sweep_dir", set by
report.load.load_sweeps) and records file ("samples"); rows without records are skipped, never guessed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from resbench.store import read_samples

__all__ = ["ECE_BINS", "Records", "ece", "reliability_bins", "mcnemar_p", "holm", "flip_frame", "calibration_frame",
           "paired_policy", "has_records"]


ECE_BINS = 15  # equal-width confidence bins, the usual choice for ECE


class Records:
    """Reads each row's per-image records once (a report asks for the same cell several times)."""

    def __init__(self):
        self._cache: dict[tuple[str, str], pd.DataFrame | None] = {}

    def get(self, row) -> pd.DataFrame | None:
        folder, name = getattr(row, "sweep_dir", ""), getattr(row, "samples", "")
        if not isinstance(name, str) or not name or not isinstance(folder, str) or not folder:
            return None
        key = (folder, name)
        if key not in self._cache:
            self._cache[key] = read_samples(Path(folder), {"samples": name})
        return self._cache[key]


def has_records(frame: pd.DataFrame) -> bool:
    return "samples" in frame and bool((frame["samples"].fillna("").astype(str) != "").any())


def ece(records: pd.DataFrame, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over confidence bins of (bin share) x |accuracy - mean confidence|."""
    table = reliability_bins(records, bins)
    n = table["n"].sum()
    return float((table["n"] * (table["accuracy"] - table["confidence"]).abs()).sum() / n) if n else float("nan")


def reliability_bins(records: pd.DataFrame, bins: int = ECE_BINS) -> pd.DataFrame:
    """Per non-empty confidence bin: images, their accuracy and mean confidence (the top class's probability)."""
    conf = records["p_pred"].to_numpy(dtype=np.float64)
    hit = (records["pred"].to_numpy() == records["label"].to_numpy()).astype(np.float64)
    # bin k holds confidences in (k/bins, (k+1)/bins]; a confidence of exactly 0 goes to the first bin
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    rows = [{"bin": k, "n": int((which == k).sum()), "accuracy": hit[which == k].mean(),
             "confidence": conf[which == k].mean()} for k in range(bins) if (which == k).any()]
    return pd.DataFrame(rows, columns=["bin", "n", "accuracy", "confidence"])


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for b and c discordant pairs: 2 x P(X <= min(b, c)), X ~ Bin(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # in logs: math.comb(n, i) / 2**n overflows a float for the n of a 10k-image test set
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(logs)
    return min(1.0, 2 * math.exp(top) * sum(math.exp(v - top) for v in logs))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error over the comparisons given), in the input order."""
    order = sorted(range(len(pvalues)), key=pvalues.__getitem__)
    adjusted, running = [1.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _same_images(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return len(a) == len(b) and (a["index"].to_numpy() == b["index"].to_numpy()).all() and \
        (a["label"].to_numpy() == b["label"].to_numpy()).all()


def flip_frame(ref: pd.DataFrame, records: Records) -> pd.DataFrame:
    """Per cell of `ref` (one policy and bandlimit setting per checkpoint) whose checkpoint has records at its
    training size: the share of images whose predicted class differs from the prediction at the training size,
    split into right-to-wrong and wrong-to-right. Cells on other images (another subset) are skipped."""
    rows = []
    for (ckpt, limit), g in ref.groupby(["checkpoint", "limit"]):
        base_rows = g[g["test_res"] == g["train_res"]]
        base = records.get(base_rows.iloc[0]) if len(base_rows) else None
        if base is None:
            continue
        right = base["pred"].to_numpy() == base["label"].to_numpy()
        for r in g[g["test_res"] != g["train_res"]].itertuples():
            other = records.get(r)
            if other is None or not _same_images(base, other):
                continue
            now_right = other["pred"].to_numpy() == other["label"].to_numpy()
            flipped = base["pred"].to_numpy() != other["pred"].to_numpy()
            rows.append({"checkpoint": ckpt, "train_res": r.train_res, "test_res": r.test_res, "seen": r.seen,
                         "n": len(base), "flips": 100 * flipped.mean(),
                         "right_to_wrong": 100 * (right & ~now_right).mean(),
                         "wrong_to_right": 100 * (~right & now_right).mean()})
    return pd.DataFrame(rows, columns=["checkpoint", "train_res", "test_res", "seen", "n", "flips",
                                       "right_to_wrong", "wrong_to_right"])


def calibration_frame(ref: pd.DataFrame, records: Records) -> pd.DataFrame:
    """ECE (%) and mean confidence (%) of every cell of `ref` that has records."""
    rows = []
    for r in ref.itertuples():
        rec = records.get(r)
        if rec is None:
            continue
        rows.append({"checkpoint": r.checkpoint, "train_res": r.train_res, "test_res": r.test_res, "seen": r.seen,
                     "ece": 100 * ece(rec), "confidence": 100 * float(rec["p_pred"].mean()),
                     "accuracy": 100 * float((rec["pred"] == rec["label"]).mean())})
    return pd.DataFrame(rows, columns=["checkpoint", "train_res", "test_res", "seen", "ece", "confidence",
                                       "accuracy"])


def paired_policy(native_row, resize_row, records: Records) -> dict | None:
    """The paired comparison of a native and a resize-input cell on the same images: discordant counts
    (native right and resize-input wrong, and the reverse) and the exact McNemar p; None without records."""
    a, b = records.get(native_row), records.get(resize_row)
    if a is None or b is None or not _same_images(a, b):
        return None
    right_a = a["pred"].to_numpy() == a["label"].to_numpy()
    right_b = b["pred"].to_numpy() == b["label"].to_numpy()
    only_native, only_resize = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    return {"only_native": only_native, "only_resize": only_resize, "p": mcnemar_p(only_native, only_resize)}
