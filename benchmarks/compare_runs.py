"""Two sweep folders of the same cells side by side: accuracy differences and argmax flips per cell.

For a device or precision check: the same checkpoints swept on the CPU and a GPU, or in fp32 and bf16.
Cells are matched by checkpoint file (sha256), test size, policy, bandlimit, seed and images (precision and
device may differ). Where both cells have per-image records (`sweep --log-samples`) the images whose
predicted class differs are counted. The cells' model seconds (the rows' `seconds`) are summed over the matched
cells, in all and per model, with A / B (how much faster B ran them). Prints a summary and, with --csv,
writes one row per matched cell.

    python benchmarks/compare_runs.py A_FOLDER B_FOLDER [--csv cells.csv] [--tolerance 0.1]
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resbench.store import read_rows, read_samples  # noqa: E402

MATCH = ["checkpoint_sha256", "test_res", "policy", "bandlimit", "seed", "limit"]


def cells(folder: Path) -> pd.DataFrame:
    rows = [r for r in read_rows(folder) if not r.get("error")]
    frame = pd.DataFrame(rows)
    frame["limit"] = frame["limit"].fillna(-1) if "limit" in frame else -1
    frame["folder"] = str(folder)
    return frame


def flips(a_folder: Path, a_row: dict, b_folder: Path, b_row: dict) -> tuple[int, int] | None:
    """(images whose predicted class differs, images) or None when a side has no records."""
    a, b = read_samples(a_folder, a_row), read_samples(b_folder, b_row)
    if a is None or b is None or len(a) != len(b):
        return None
    return int((a["pred"].to_numpy() != b["pred"].to_numpy()).sum()), len(a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--csv", default=None)
    parser.add_argument("--tolerance", type=float, default=0.1, help="points of accuracy counted as 'within'")
    args = parser.parse_args()
    a_folder, b_folder = Path(args.a), Path(args.b)
    a, b = cells(a_folder), cells(b_folder)
    both = a.merge(b, on=MATCH, suffixes=("_a", "_b"))
    out = []
    for r in both.to_dict("records"):
        row = {k: r[k] for k in MATCH if k != "checkpoint_sha256"}
        row["checkpoint"] = r["checkpoint_a"]
        row["acc_a"], row["acc_b"] = 100 * r["accuracy_a"], 100 * r["accuracy_b"]
        row["diff_points"] = row["acc_b"] - row["acc_a"]
        f = flips(a_folder, {"samples": r.get("samples_a")}, b_folder, {"samples": r.get("samples_b")})
        row["flips"], row["n"] = (f if f is not None else (None, r["n_a"]))
        row["model"], row["seconds_a"], row["seconds_b"] = r["model_a"], r["seconds_a"], r["seconds_b"]
        out.append(row)
    frame = pd.DataFrame(out)
    print(f"A {a_folder}: {len(a)} cells ({', '.join(sorted(set(a['precision'])))}; "
          f"{', '.join(sorted(set(a['device'])))})")
    print(f"B {b_folder}: {len(b)} cells ({', '.join(sorted(set(b['precision'])))}; "
          f"{', '.join(sorted(set(b['device'])))})")
    if frame.empty:
        print("no cell in common")
        return
    diff = frame["diff_points"].abs()
    print(f"matched cells: {len(frame)}; |B - A| accuracy: max {diff.max():.3f} points, mean {diff.mean():.4f}; "
          f"within {args.tolerance}: {(diff <= args.tolerance + 1e-9).sum()} of {len(frame)}")
    with_flips = frame.dropna(subset=["flips"])
    if len(with_flips):
        print(f"argmax flips (cells with records: {len(with_flips)}): {int(with_flips['flips'].sum())} of "
              f"{int(with_flips['n'].sum())} images; most in one cell {int(with_flips['flips'].max())}")
    seconds = frame.groupby("model")[["seconds_a", "seconds_b"]].sum()
    seconds.loc["all"] = seconds.sum()
    seconds["A / B"] = seconds["seconds_a"] / seconds["seconds_b"]
    print("cell seconds over the matched cells:")
    print(seconds.round(2).to_string())
    worst = frame.reindex(diff.sort_values(ascending=False).index).head(5)
    print(worst[["checkpoint", "test_res", "policy", "bandlimit", "acc_a", "acc_b", "diff_points", "flips"]]
          .to_string(index=False))
    if args.csv:
        frame.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
