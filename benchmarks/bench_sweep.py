"""Sweep speed: images/s per model and test size, and the wall time of the default full sweep.

The second table divides each cell's matrix-product and convolution FLOPs (torch's FlopCounterMode;
elementwise work is not counted) by its time: set against the machine's matmul peak, printed above it,
it says how much any faster arithmetic could still gain for that model and size.

Usage:
  python benchmarks/bench_sweep.py                       # images/s per shipped checkpoint and test size
  python benchmarks/bench_sweep.py --full -o /tmp/full   # + wall time of `resbench sweep checkpoints/` (10k images)
"""

import argparse
import shutil
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import common

from resbench.checkpoints import find_checkpoints, load_checkpoint
from resbench.models import cached_kernels
from resbench.sweep import CACHE_PIXELS, cache_batch


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--sizes", default="7,14,28,56")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--full", action="store_true", help="also time the default full sweep")
    parser.add_argument("-o", "--out", default="/tmp/resbench-bench-sweep")
    args = common.parse(parser)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"eval images/s (native policy, batch {args.batch} or {CACHE_PIXELS} pixels if fewer, threads {args.threads}, malloc {args.malloc})")
    print(f"{'checkpoint':<22}" + "".join(f"{s:>9}" for s in sizes) + "   ms/img at largest vs smallest, per pixel")
    achieved = {}
    for path in find_checkpoints([args.checkpoints]):
        ckpt = load_checkpoint(path)
        model = ckpt.build_model()
        rates, gflops = [], []
        for s in sizes:
            batch = cache_batch(args.batch, (s, s))  # the sweep's own rule
            x = torch.randn(batch, model.config.in_chans, s, s)
            with torch.inference_mode(), cached_kernels(model):
                model(x)  # warm-up (and kernel cache)
                with FlopCounterMode(display=False) as counter:
                    model(x[:1])
                t0, n = time.perf_counter(), 0
                while n < 256 or time.perf_counter() - t0 < 0.5:  # at least 256 images and half a second
                    model(x)
                    n += batch
                rates.append(n / (time.perf_counter() - t0))
                gflops.append(counter.get_total_flops() * rates[-1] / 1e9)
        achieved[path.stem] = gflops
        per_pixel = (1 / rates[-1] / sizes[-1] ** 2) / (1 / rates[0] / sizes[0] ** 2)
        print(f"{path.stem:<22}" + "".join(f"{r:>9.0f}" for r in rates) + f"   {per_pixel:.2f}")
    print(f"\nmatmul + conv GFLOP/s achieved (this machine's float32 matmul peak: {common.matmul_peak():.0f} GFLOP/s)")
    print(f"{'checkpoint':<22}" + "".join(f"{s:>9}" for s in sizes))
    for name, gflops in achieved.items():
        print(f"{name:<22}" + "".join(f"{g:>9.0f}" for g in gflops))
    if args.full:
        from resbench.sweep import SweepConfig, run_sweep

        out = Path(args.out)
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        df = run_sweep(SweepConfig(checkpoints=[args.checkpoints], out=str(out)), quiet=True)
        print(f"default full sweep: {len(df)} cells, {int(df['n'].sum())} image evaluations, "
              f"{time.perf_counter() - t0:.0f} s wall")


if __name__ == "__main__":
    main()
