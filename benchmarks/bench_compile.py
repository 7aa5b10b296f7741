"""torch.compile (inductor's CPU backend) against eager for a shipped S4ND-ISO checkpoint's eval (prints a table).

    python benchmarks/bench_compile.py [--checkpoint checkpoints/s4nd_iso_14.pt] [--sides 14,28,56] [--repeats 5]

Three ways to run the same model on one batch: eager (as the sweep runs it); the whole model compiled
(`torch.compile(model)`); each residual block compiled on its own (the elementwise passes around the S4ND
convolution, layer norm, GELU, GLU and the residual add, are what inductor could fuse). For each: the first
call's seconds (compiling included), the best of `--repeats` later calls and the largest difference from
eager's logits. Inductor's on-disk caches are off (TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 unless set), so
a first call is a compile. Asserts nothing; run it on a quiet machine and say which.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")  # first calls compile, not read a cache
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402
from common import best_time  # noqa: E402

from resbench.checkpoints import load_checkpoint  # noqa: E402


def _timed_first(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/s4nd_iso_14.pt")
    parser.add_argument("--sides", default="14,28,56")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = common.parse(parser)
    ckpt = load_checkpoint(args.checkpoint)
    print(f"{args.checkpoint}: eval, batch {args.batch}, threads {args.threads}, malloc {args.malloc}, "
          f"torch {torch.__version__}")
    print(f"{'side':>5} {'variant':<16} {'first call s':>13} {'best ms':>9} {'vs eager':>9} {'max |diff|':>11}")
    for side in [int(s) for s in args.sides.split(",")]:
        torch.manual_seed(0)
        x = torch.randn(args.batch, ckpt.build_model().config.in_chans, side, side)
        eager = ckpt.build_model().eval()
        whole = torch.compile(ckpt.build_model().eval(), dynamic=False)
        blocks = ckpt.build_model().eval()
        for i, block in enumerate(blocks.blocks):
            blocks.blocks[i] = torch.compile(block, dynamic=False)
        with torch.inference_mode():
            ref = eager(x)
            base = None
            for name, model in (("eager", eager), ("compiled model", whole), ("compiled blocks", blocks)):
                first, out = _timed_first(lambda: model(x))
                ms = 1e3 * best_time(lambda: model(x), args.repeats)
                base = base or ms
                print(f"{side:>5} {name:<16} {first:>13.1f} {ms:>9.1f} {base / ms:>8.2f}x "
                      f"{(out - ref).abs().max().item():>11.2e}")
        torch._dynamo.reset()


if __name__ == "__main__":
    main()
