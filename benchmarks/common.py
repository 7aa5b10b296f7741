"""What every benchmark shares: CPU threads, the allocator setting (see resbench/runtime.py), best-of timing."""

import argparse
import time

import torch

from resbench.runtime import keep_freed_memory


def parse(parser: argparse.ArgumentParser, malloc: str = "keep") -> argparse.Namespace:
    """Add --threads/--malloc to `parser`, parse, apply them; `malloc` is the default ("keep", as the CLI runs)."""
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--malloc", choices=["keep", "default"], default=malloc,
                        help="keep: reuse freed memory, as the resbench CLI does; default: glibc as it comes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.malloc == "keep" and not keep_freed_memory():
        args.malloc = "default (keep unavailable)"
    return args


def best_time(fn, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls of fn, after one warm-up call (allocator and kernel caches)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def best_times(fns: dict, repeats: int, rounds: int = 3) -> dict:
    """Seconds of the fastest call of each fn: `rounds` rounds in which each fn in turn gets a warm-up call and
    `repeats` calls in a row (its steady state: its own buffers reused), the best over all rounds kept. A slow
    spell on a shared machine then spoils one block, not a side's only one. Calls of different fns are not
    interleaved one by one: with glibc's allocator as it comes, a layer timed right after another's large frees
    pays to fault its memory in again on every call (the official layer's and ours alike)."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(best_time(fn, repeats))
    return {name: min(ts) for name, ts in times.items()}


def matmul_peak(side: int = 2048, repeats: int = 3) -> float:
    """GFLOP/s of one large float32 matrix product on this machine: the ceiling any model can reach."""
    a = torch.randn(side, side)
    return 2 * side ** 3 / best_time(lambda: a @ a, repeats) / 1e9
