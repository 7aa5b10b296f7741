"""Does the aliasing metric, or the response mismatch, predict the accuracy drop better than |log(test/train)|?

    python benchmarks/metric_check.py RESULTS_DIR [RESULTS_DIR ...] --checkpoints checkpoints/ -o metric_check.csv

Reads the native cells of the sweep folders, computes for every S4ND checkpoint found (by name, in the
--checkpoints folder and its subfolders) the kernel aliasing metric (resbench.kernels, mean over layers, axes
and directions) and the response mismatch (resbench.mismatch, flat and weighted by the test images'
spectrum) at each swept size and bandlimit setting, and prints the within-checkpoint rank correlations
(resbench.metric_validation) against the trivial predictor, over all zero-shot sizes, below and above the
training size. Writes the merged cells to -o.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resbench import data  # noqa: E402
from resbench.checkpoints import load_checkpoint  # noqa: E402
from resbench.kernels import aliasing_table  # noqa: E402
from resbench.metric_validation import compare_predictors, zero_shot_drops  # noqa: E402
from resbench.mismatch import mismatch_table  # noqa: E402
from resbench.resolution import parse_size  # noqa: E402

METRICS = ["aliasing", "mismatch_flat", "mismatch_images"]


def metrics_for(path: Path, cells: pd.DataFrame, images) -> pd.DataFrame:
    ckpt = load_checkpoint(path)
    sizes = sorted({parse_size(s, ckpt.dims) for s in cells["test_res"].astype(str)})
    settings = tuple(sorted(set(cells["bandlimit"]) & {"on", "off", "capped", "adaptive"}))
    mm = mismatch_table(ckpt, sizes, settings, images=images)
    al = aliasing_table(ckpt, sizes)
    al = al.groupby(["test_res", "bandlimit"], as_index=False)["aliasing"].mean()
    return mm.merge(al, on=["test_res", "bandlimit"], how="left")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    ap.add_argument("--images", type=int, default=1000, help="test images for the spectrum (default 1000)")
    ap.add_argument("-o", "--out", type=Path, default=Path("metric_check.csv"))
    ap.add_argument("--reuse", action="store_true", help="reuse the metrics written beside -o by an earlier run")
    args = ap.parse_args()
    results = pd.concat([pd.read_csv(d / "results.csv") for d in args.results], ignore_index=True)
    results = results[(results["policy"] == "native") & (results["dims"] == 2)]
    results = results.drop_duplicates(["checkpoint", "test_res", "bandlimit"])
    files = {p.stem: p for p in sorted(args.checkpoints.rglob("*.pt"))}
    images, _ = data.load_raw("fashion-mnist", "test", limit=args.images)
    cache = args.out.with_suffix(".metrics.csv")
    parts = [pd.read_csv(cache, dtype={"test_res": str})] if args.reuse and cache.exists() else []
    for name, cells in results.groupby("checkpoint") if not parts else ():
        if name not in files or not (cells["bandlimit"].isin(["on", "off"])).any():
            continue
        print(f"metrics of {name} ({len(cells)} cells)", file=sys.stderr, flush=True)
        parts.append(metrics_for(files[name], cells, images.float()))
    metrics = pd.concat(parts, ignore_index=True).drop(columns="train_res", errors="ignore")
    metrics.to_csv(cache, index=False)
    drops = zero_shot_drops(results).merge(metrics, on=["checkpoint", "test_res", "bandlimit"], how="inner")
    drops.to_csv(args.out, index=False)
    table = pd.concat([compare_predictors(drops, METRICS, trivial, where=w)
                       for trivial in ("log_ratio", "side_then_distance") for w in ("all", "below", "above")])
    pd.set_option("display.width", 200)
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
