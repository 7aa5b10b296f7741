"""Zero-shot goals as paired tests on per-image records: S4ND's drop and its discrete twin's, on the same images.

A goal is two claims, each tested rather than read off point estimates:
- **S4ND keeps its accuracy**: its drop (accuracy at the training size minus at the test size) lies within
  +-EQUIVALENCE_MARGIN points, shown when the drop's 90% interval lies inside the margin (two one-sided tests at
  5%, the usual equivalence test);
- **the twin falls further**: the twin's drop minus S4ND's, per image, has a 95% interval above zero.

Both models see the same test images at both sizes, so each image gives one paired difference; the intervals
are normal intervals of the mean of those per-image differences (n is a thousand or more).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["EQUIVALENCE_MARGIN", "paired_mean", "goal_tests"]

EQUIVALENCE_MARGIN = 2.0  # points: "within 2 points of native"
Z95, Z90 = 1.959963984540054, 1.6448536269514722  # two-sided 95% and 90% normal quantiles


def paired_mean(diff: np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """(mean, low, high) in points of per-image differences (each -1, 0 or 1): a normal interval of the mean."""
    diff = np.asarray(diff, dtype=np.float64)
    n = len(diff)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = diff.mean()
    half = z * diff.std(ddof=1) / math.sqrt(n) if n > 1 else float("inf")
    return 100 * mean, 100 * (mean - half), 100 * (mean + half)


def _correct(records: pd.DataFrame) -> np.ndarray:
    return (records["pred"].to_numpy() == records["label"].to_numpy()).astype(np.int8)


def _same_images(frames: list[pd.DataFrame]) -> bool:
    first = frames[0]
    return all(len(f) == len(first) and (f["index"].to_numpy() == first["index"].to_numpy()).all()
               and (f["label"].to_numpy() == first["label"].to_numpy()).all() for f in frames[1:])


def goal_tests(s4_train: pd.DataFrame, s4_test: pd.DataFrame, twin_train: pd.DataFrame,
               twin_test: pd.DataFrame) -> dict | None:
    """The two tests of one goal from the four cells' per-image records (None when they are not on the same
    images). Drops and intervals in points."""
    frames = [s4_train, s4_test, twin_train, twin_test]
    if not _same_images(frames):
        return None
    s4 = _correct(s4_train) - _correct(s4_test)  # per image: 1 lost, -1 gained, 0 unchanged
    twin = _correct(twin_train) - _correct(twin_test)
    drop, low95, high95 = paired_mean(s4)
    _, low90, high90 = paired_mean(s4, Z90)
    twin_drop, twin_low, twin_high = paired_mean(twin)
    gap, gap_low, gap_high = paired_mean(twin - s4)
    return {"n": len(s4), "S4ND drop": drop, "S4ND 95% CI": (low95, high95), "twin drop": twin_drop,
            "twin 95% CI": (twin_low, twin_high), "twin - S4ND": gap, "twin - S4ND 95% CI": (gap_low, gap_high),
            "S4ND within 2": -EQUIVALENCE_MARGIN < low90 and high90 < EQUIVALENCE_MARGIN,
            "twin falls further": gap_low > 0}
