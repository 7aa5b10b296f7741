"""Results store speed: rows per second into a cell log, and the cost of rebuilding the tables as rows grow.

Appends synthetic rows shaped like a sweep's (every result column, 10 classes) with
resbench.store.append_row (one fsync each, as a sweep logs a cell), and at each row count of --rows
times read_rows (parse and deduplicate the log), results_frame and write_tables (results.csv,
.parquet, per_class.csv; what sweep.execute runs after every cell). The rows are the cells of a
study of 50 checkpoints x 40 test sizes x 5 bandlimit settings x 10 seeds (100,000 cells).

From the fitted cost of one write_tables at n rows, a + b*n, it prints what rebuilding after every
cell costs over a whole run (n a + b n^2 / 2: quadratic in rows), and after every Ray task instead.

Usage:
  python benchmarks/bench_store.py                          # 1k, 10k and 100k rows (several minutes)
  python benchmarks/bench_store.py --rows 1000,10000 -o /tmp/store
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from resbench.store import append_row, log_path, read_rows, results_frame, write_tables

CLASSES = [f"class {i}" for i in range(10)]


def synthetic_row(i: int) -> dict:
    """Row i of the study: checkpoint i // 2000, test size, bandlimit and seed from the rest, 1000 images."""
    ckpt, rest = divmod(i, 2000)
    size, rest = divmod(rest, 50)
    bandlimit, seed = divmod(rest, 10)
    correct = 500 + (i * 7919) % 450
    return {"model": "s4nd_iso", "checkpoint": f"s4nd_iso_{ckpt:02d}", "checkpoint_sha256": f"{ckpt:064x}",
            "dataset": "fashion-mnist", "train_res": "28", "test_res": str(7 + size), "policy": "native",
            "bandlimit": ["on", "off", "adaptive", "0.25", "0.75"][bandlimit], "alpha": 0.5, "seed": seed,
            "precision": "fp32", "device": "cpu", "limit": 1000, "test_images": "first 1000 of 10000",
            "n": 1000, "correct": correct, "accuracy": correct / 1000, "ci_low": 0.5, "ci_high": 0.6,
            "loss": 1.234567, "seconds": 0.812, "images_per_s": 1231.5, "error": "", "warning": "",
            "seen_in_training": size == 21, "trained_bandlimit": 0.5, "recipe": "28:10", "samples": "",
            "class_names": CLASSES, "class_n": [100] * 10, "class_correct": [correct // 10] * 10}


def megabytes(path: Path) -> float:
    return path.stat().st_size / 1e6


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000,10000,100000", help="row counts at which to time the rebuild")
    parser.add_argument("--cells-per-task", type=int, default=5,
                        help="cells per Ray task (one checkpoint and test size: 5 bandlimit settings here)")
    parser.add_argument("-o", "--out", default=None, help="folder to fill (default: a temporary one, removed)")
    args = parser.parse_args()
    counts = sorted(int(n) for n in args.rows.split(","))
    out = Path(args.out or tempfile.mkdtemp(prefix="resbench-bench-store-"))
    out.mkdir(parents=True, exist_ok=True)
    log = log_path(out, (1, 1))
    print(f"store benchmark in {out} (rows of 10 classes, one fsync per append, as a sweep logs a cell)")
    print(f"{'rows':>8} {'append rows/s':>14} {'read_rows s':>12} {'results_frame s':>16} {'write_tables s':>15} "
          f"{'log MB':>7} {'csv MB':>7} {'per_class MB':>13}")
    results_frame([synthetic_row(0)])  # warm-up: its first call imports torch (resbench.resolution)
    fitted, rate, done = [], 0.0, 0
    try:
        for n in counts:
            start, done = done, n
            rate = (n - start) / timed(lambda: [append_row(log, synthetic_row(i)) for i in range(start, n)])
            rows = []
            parse = timed(lambda: rows.extend(read_rows(out)))
            frame = timed(lambda: results_frame(rows))
            tables = timed(lambda: write_tables(out))
            fitted.append((n, tables))
            print(f"{n:>8} {rate:>14.0f} {parse:>12.2f} {frame:>16.2f} {tables:>15.2f} "
                  f"{megabytes(log):>7.1f} {megabytes(out / 'results.csv'):>7.1f} "
                  f"{megabytes(out / 'per_class.csv'):>13.1f}", flush=True)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    if len(fitted) >= 2:
        (n0, t0), (n1, t1) = fitted[0], fitted[-1]
        b = (t1 - t0) / (n1 - n0)  # seconds per row of one rebuild
        a = max(0.0, t0 - b * n0)  # seconds of a rebuild of an empty folder
        per_cell = n1 * a + b * n1 ** 2 / 2
        print(f"\nwrite_tables(n) ~ {a:.3f} s + {b * 1e6:.1f} us x n (fitted to {n0} and {n1} rows)")
        print(f"rebuilding after every cell of a {n1}-cell run (sweep --executor local): {per_cell / 3600:.1f} h "
              f"in all; at the last cell at most {1 / (a + b * n1):.2f} rows/s")
        print(f"rebuilding after every Ray task of {args.cells_per_task} cells: "
              f"{per_cell / args.cells_per_task / 3600:.1f} h in all")
        print(f"appending alone (last rate, {rate:.0f} rows/s): {n1 / rate / 60:.1f} min for {n1} rows")


if __name__ == "__main__":
    main()
