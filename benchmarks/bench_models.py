"""Parameters and eval forward time (ms per batch of 64 at 28x28) of every registered model (prints a table)."""

import argparse

import torch

import common

from resbench.models import count_params, create_model, list_models


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--train-res", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=5)
    args = common.parse(parser)
    print(f"defaults (1 channel, 10 classes, trained at {args.train_res}); eval, batch {args.batch} at "
          f"{args.size}x{args.size}, threads {args.threads}, malloc {args.malloc}, best of {args.repeats}")
    print(f"{'model':<15} {'parameters':>11} {'ms/batch':>9}")
    x = torch.randn(args.batch, 1, args.size, args.size)
    for name in list_models():
        torch.manual_seed(0)
        model = create_model(name, train_res=args.train_res).eval()
        with torch.inference_mode():
            seconds = common.best_time(lambda: model(x), args.repeats)
        print(f"{name:<15} {count_params(model):>11,} {1e3 * seconds:>9.1f}")


if __name__ == "__main__":
    main()
