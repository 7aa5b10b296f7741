"""Progressive resizing against training at the full size, timed back to back (prints a table, writes a CSV).

    python benchmarks/progressive_timing.py --seeds 0,1,2 -o progressive_timing.csv

For each seed the two recipes of the shipped pair run one after the other in this process, their order
alternating with the seed (seed 0: progressive first; seed 1: full size first; ...), so a machine that slows
down or speeds up over the run weighs on both alike:

- progressive: `s4nd_iso --schedule 7:1,14:2,28:1 --bandlimit 0.5` (s4nd_iso_prog28's recipe)
- full size:   `s4nd_iso --train-res 28 --epochs 4 --bandlimit 0.5` (s4nd_iso_28's recipe)

After every epoch the model is tested at the final size (28) on the test images, that time kept apart from
the training time. Printed per recipe (mean +- sd over seeds): the accuracy at equal epochs, the training
time, and the time to equal accuracy (the training seconds until the recipe's test accuracy first reaches the
other recipe's final accuracy, mean over seeds; "not reached" when it never does). Run it on a quiet machine
and say which; `--limit`/`--test-limit` make a quick smoke run, not a measurement.

The CSV is rewritten after every seed (both recipes done), and a rerun with the same `-o` skips the seeds it
already holds, so a long run can be resumed; each row names the machine and thread count it was timed on, and
the summary refuses to pool seeds timed on different machines.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resbench import data  # noqa: E402
from resbench.device import cpu_model  # noqa: E402
from resbench.train import evaluate, train  # noqa: E402
from resbench.train_recipe import train_config  # noqa: E402

RECIPES = {"progressive": {"schedule": "7:1,14:2,28:1"}, "full size": {"train_res": 28, "epochs": 4}}
TEST_SIZE = 28


def run_recipe(name: str, seed: int, args, out: Path) -> list[dict]:
    """Train one recipe; one row per epoch: cumulative training seconds and test accuracy at TEST_SIZE."""
    cfg = train_config("s4nd_iso", bandlimit="0.5", seed=seed, limit=args.limit, test_limit=args.test_limit,
                       threads=args.threads, **RECIPES[name])
    stats = data.dataset_stats(cfg.dataset, cfg.data_dir, seed=seed)
    x_test, y_test = data.load(cfg.dataset, "test", TEST_SIZE, cfg.data_dir, stats=stats, limit=args.test_limit,
                               seed=seed)  # (N, 1, 28, 28), (N,)
    rows = []

    def on_epoch_end(end):
        t0 = time.perf_counter()
        end.model.eval()
        correct, _ = evaluate(end.model, x_test, y_test)
        end.model.train()
        rows.append({"recipe": name, "seed": seed, "epoch": end.epoch, "size": str(end.record["size"]),
                     "train_seconds": end.record["seconds"], "test_accuracy": correct / len(y_test),
                     "test_images": len(y_test), "eval_seconds": round(time.perf_counter() - t0, 1)})
        print(f"  {name:<12} seed {seed} epoch {end.epoch} at {end.record['size']}: "
              f"{end.record['seconds']:7.1f} s trained, accuracy at {TEST_SIZE} {correct / len(y_test):.4f}",
              flush=True)

    train(cfg, out / f"{name.replace(' ', '_')}_seed{seed}.pt", quiet=True, on_epoch_end=on_epoch_end)
    return rows


def time_to_reach(curve: pd.DataFrame, target: float) -> float | None:
    """Training seconds at the first epoch whose test accuracy reaches `target`; None when none does."""
    hit = curve[curve["test_accuracy"] >= target]
    return float(hit["train_seconds"].iloc[0]) if len(hit) else None


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per recipe: final accuracy and training time (mean, sd over seeds), time to the other's final accuracy."""
    finals = table.sort_values("epoch").groupby(["recipe", "seed"]).tail(1).set_index(["recipe", "seed"])
    rows = []
    for name in RECIPES:
        other = next(r for r in RECIPES if r != name)
        seeds = sorted(finals.loc[name].index)
        reach = [time_to_reach(table[(table["recipe"] == name) & (table["seed"] == s)],
                               finals.loc[(other, s), "test_accuracy"]) for s in seeds]
        acc = [100 * finals.loc[(name, s), "test_accuracy"] for s in seeds]
        secs = [finals.loc[(name, s), "train_seconds"] for s in seeds]
        rows.append({"recipe": name, "seeds": len(seeds),
                     "accuracy at 4 epochs (%)": _mean_sd(acc, 2), "training time (s)": _mean_sd(secs, 0),
                     "time to the other's final accuracy (s)":
                         _mean_sd([r for r in reach if r is not None], 0) + _missing(reach)})
    return pd.DataFrame(rows)


def _mean_sd(values: list[float], digits: int) -> str:
    values = [float(v) for v in values]  # statistics needs Python numbers, not numpy scalars
    if not values:
        return "not reached"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def _missing(reach: list) -> str:
    misses = sum(r is None for r in reach)
    return f" (not reached in {misses} of {len(reach)} seeds)" if misses and misses < len(reach) else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="training images (smoke runs only)")
    parser.add_argument("--test-limit", type=int, default=None, help="test images (smoke runs only)")
    parser.add_argument("-o", "--out", default="progressive_timing.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    machine = f"{platform.processor() or platform.machine()} ({cpu_model()}), {torch.get_num_threads()} threads"
    print(f"machine: {machine}, torch {torch.__version__}")
    out = Path(args.out)
    table = pd.read_csv(out) if out.exists() else pd.DataFrame()
    done = set(table["seed"]) if len(table) else set()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            if seed in done:
                print(f"seed {seed}: already in {out}, skipped")
                continue
            order = list(RECIPES) if seed % 2 == 0 else list(reversed(RECIPES))
            rows = []
            for name in order:
                rows += run_recipe(name, seed, args, Path(tmp))
            for row in rows:
                row["machine"] = machine
            table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
            partial = out.with_name(out.name + ".partial")
            table.to_csv(partial, index=False)
            partial.replace(out)  # atomic: a cut-off run keeps every finished seed
    if table["machine"].nunique() > 1:
        sys.exit(f"{out} holds seeds timed on different machines: {sorted(table['machine'].unique())}")
    print(summarise(table).to_string(index=False))
    print(f"per-epoch rows: {args.out}")


if __name__ == "__main__":
    main()
