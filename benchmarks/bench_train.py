"""Images/s of one s4nd_iso training step at 14 and 28, Toeplitz vs FFT path (prints a table).

Usage: python benchmarks/bench_train.py [--sizes 14,28] [--batch 64] [--steps 5] [--threads 2] [--malloc keep|default]
"""

import argparse
import time

import torch
import torch.nn.functional as F

import common

from resbench.models import create_model
from resbench.models.base import s4nd_layers


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="14,28")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    args = common.parse(parser)
    print(f"s4nd_iso training step (default config), batch {args.batch}, threads {args.threads}, "
          f"malloc {args.malloc}, "
          f"best of {args.steps} steps")
    print(f"{'size':>5} {'method':>9} {'ms/step':>9} {'images/s':>9}")
    for size in [int(s) for s in args.sizes.split(",")]:
        for method in ("toeplitz", "fft"):
            torch.manual_seed(0)
            model = create_model("s4nd_iso", train_res=size).train()
            for wrapper in model.modules():
                if hasattr(wrapper, "method") and hasattr(wrapper, "s4nd"):
                    wrapper.method = method
            if not s4nd_layers(model):
                raise SystemExit('s4nd_iso has no S4ND layers?')
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            x = torch.randn(args.batch, 1, size, size)
            y = torch.randint(0, 10, (args.batch,))
            times = []
            for step in range(args.steps + 1):
                t0 = time.perf_counter()
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step:  # the first step warms up allocators
                    times.append(time.perf_counter() - t0)
            best = min(times)
            print(f"{size:>5} {method:>9} {1e3 * best:>9.1f} {args.batch / best:>9.0f}")


if __name__ == "__main__":
    main()
