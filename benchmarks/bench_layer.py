"""Eval forward time of the S4ND layer per method and image side (prints a table; asserts nothing).

Usage: python benchmarks/bench_layer.py [--sides 8,14,28,56,112] [--batch 64] [--width 128] [--repeats 3]
"""

import argparse

import torch

import common
from common import best_time

from resbench.layers.s4nd import S4ND, auto_toeplitz_max_len


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sides", default="8,14,28,56,112")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--d-state", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = common.parse(parser, malloc="default")
    torch.manual_seed(0)
    print(f"S4ND eval forward, H={args.width}, d_state={args.d_state}, batch={args.batch}, "
          f"threads={args.threads}, malloc={args.malloc}, auto: Toeplitz up to side {auto_toeplitz_max_len(2)}")
    print(f"{'side':>5} {'toeplitz ms':>12} {'fft ms':>9} {'auto ms':>9} {'fft/auto':>9} "
          f"{'auto/best':>10} {'max |diff|':>11}")
    for side in [int(s) for s in args.sides.split(",")]:
        layer = S4ND(args.width, d_state=args.d_state, dim=2, l_max=side, bandlimit=0.5).eval()
        x = torch.randn(args.batch, args.width, side, side)
        with torch.inference_mode():
            outs = {m: layer(x, method=m) for m in ("toeplitz", "fft")}
            ms = {m: 1e3 * best_time(lambda: layer(x, method=m), args.repeats)
                  for m in ("toeplitz", "fft", "auto")}
        diff = (outs["toeplitz"] - outs["fft"]).abs().max().item()
        print(f"{side:>5} {ms['toeplitz']:>12.1f} {ms['fft']:>9.1f} {ms['auto']:>9.1f} "
              f"{ms['fft'] / ms['auto']:>8.1f}x {ms['auto'] / min(ms['toeplitz'], ms['fft']):>10.2f} {diff:>11.2e}")


if __name__ == "__main__":
    main()
