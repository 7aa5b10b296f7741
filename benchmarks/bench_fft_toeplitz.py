"""Where S4ND's Toeplitz products and its FFT convolution cross over, per number of axes (prints a table;
asserts nothing). Each row: one grid, the layer as a model block runs it (a prenorm residual on channels-last
input, kernels cached, as in a sweep), eval ms per image in fp32 and bf16 for each method and for "auto", and
the ms of one training step (forward and backward, kernels computed, fp32) per method.

    python benchmarks/bench_fft_toeplitz.py [--grids 128,512,2000] [--grids 56x56,224x224,512x512]
        [--grids 16x56x56,32x192x192] [--width 64] [--pixels 16000] [--threads 1] [--no-train]

A grid is one side (1 axis) or sides joined by "x"; the batch holds about --pixels samples (at least one).
"""

import argparse
import math

import torch

import common

from resbench.layers.blocks import ChannelNorm
from resbench.layers.resolution_aware import cached_kernels
from resbench.layers.s4nd import S4ND, auto_toeplitz_max_len

METHODS = ("toeplitz", "fft", "auto")


def eval_ms(layer, norm, x, method, precision, repeats):
    with torch.inference_mode(), cached_kernels(layer), torch.autocast("cpu", torch.bfloat16,
                                                                       enabled=precision == "bf16"):
        return 1e3 * common.best_time(lambda: layer.prenorm_residual(x, norm, rate=0.5, method=method), repeats)


def train_ms(layer, x, method, repeats):
    layer.train()

    def step():
        layer.zero_grad(set_to_none=True)
        layer(x, rate=0.5, method=method).sum().backward()
    ms = 1e3 * common.best_time(step, repeats)
    layer.eval()
    return ms


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", default="128,512,2000")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--d-state", type=int, default=64)
    parser.add_argument("--pixels", type=int, default=16000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-train", action="store_true")
    args = common.parse(parser)
    torch.set_flush_denormal(True)  # as the CLI runs
    print(f"S4ND Toeplitz vs FFT: H={args.width}, d_state={args.d_state}, about {args.pixels} samples a batch, "
          f"threads={args.threads}, malloc={args.malloc}; eval ms per image (kernels cached), train ms per step")
    cols = [f"{p} {m}" for p in ("fp32", "bf16") for m in METHODS] + ([] if args.no_train else
                                                                       [f"train {m}" for m in METHODS[:2]])
    print(f"{'grid':>12} {'batch':>5} {'auto':>8} " + " ".join(f"{c:>14}" for c in cols))
    for grid in args.grids.split(","):
        sides = [int(s) for s in grid.split("x")]
        torch.manual_seed(0)
        batch = max(1, args.pixels // math.prod(sides))
        layer = S4ND(args.width, args.d_state, dim=len(sides), l_max=[max(1, s // 2) for s in sides],
                     bandlimit=0.5).eval()
        norm = ChannelNorm(args.width)
        x = torch.randn(batch, *sides, args.width).movedim(-1, 1)  # (B, H, *sides), channels last in memory
        row = [eval_ms(layer, norm, x, m, p, args.repeats) / batch for p in ("fp32", "bf16") for m in METHODS]
        if not args.no_train:
            row += [train_ms(layer, x[:2].contiguous(), m, args.repeats) for m in METHODS[:2]]
        auto = "toeplitz" if max(sides) <= auto_toeplitz_max_len(len(sides)) else "fft"
        print(f"{grid:>12} {batch:>5} {auto:>8} " + " ".join(f"{v:>14.2f}" for v in row), flush=True)


if __name__ == "__main__":
    main()
