"""bf16 (autocast) against fp32 on this machine: the S4ND layer, whole models, and sweep cells (prints tables).

    python benchmarks/bench_bf16.py [--sides 28,56] [--checkpoints checkpoints/s4nd_iso_28.pt,...] [--limit 2000]
                                    [--models PATH@SIZE,...] [--skip layer,models,cells]

1. The S4ND layer (H=128, d_state 64, batch 64, bidirectional, bandlimit 0.5): eval forward with its kernels
   cached (as a sweep runs it) and a training step (forward, backward), fp32 and bf16 timed alternately in one
   process, best of --repeats; the largest difference of the outputs relative to their largest value.
2. Shipped checkpoints, eval forward of one batch of 64 at each side, the same way; with --models, checkpoints
   of any kind at their own sizes (`checkpoints/s4nd_iso_digits4000.pt@8000,...@16x28x28`), each in a sweep's batch.
3. Sweep cells: the same checkpoints swept at each side on the first --limit test images (bandlimit on and off),
   once in fp32 and once with --precision bf16, per-image records kept: each cell's seconds, accuracy in both,
   and the images whose predicted class differs (argmax flips).

The machine line says whether the CPU has bf16 matrix units (AMX) or bf16 dot products (AVX512-BF16): without
either, bf16 is emulated and slower. Figures are this machine's, with nothing else running.
"""

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

import common
from compare_runs import MATCH, flips

from resbench.checkpoints import load_checkpoint
from resbench.device import autocast, cpu_model
from resbench.layers.resolution_aware import cached_kernels
from resbench.layers.s4nd import S4ND
from resbench.resolution import format_size
from resbench.store import read_rows
from resbench.sweep import cache_batch

CPU = torch.device("cpu")


def cpu_line(threads: int) -> str:
    """The CPU model, its bf16 units (AMX tiles, AVX512-BF16 dot products) from /proc/cpuinfo, threads, torch."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    units = [f for f in ("amx_bf16", "avx512_bf16") if f" {f}" in flags] or ["no bf16 units"]
    return f"{cpu_model()}; {', '.join(units)}; {threads} threads; torch {torch.__version__}"


def timed_pair(run, repeats: int) -> dict:
    """Best seconds of run(precision) for fp32 and bf16, the two alternating, after one warm-up each."""
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for p in best:
        run(p)
    for _ in range(repeats):
        for p in best:
            t0 = time.perf_counter()
            run(p)
            best[p] = min(best[p], time.perf_counter() - t0)
    return best


def relative_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def layer_rows(sides, repeats):
    rows = []
    for side in sides:
        torch.manual_seed(0)
        layer = S4ND(128, d_state=64, dim=2, l_max=side, bandlimit=0.5)
        x = torch.randn(64, 128, side, side)

        def forward(p):
            with torch.inference_mode(), autocast(CPU, p):
                return layer(x)

        def step(p):
            layer.zero_grad(set_to_none=True)
            with autocast(CPU, p):
                out = layer(x)
            out.float().square().mean().backward()

        layer.eval()
        with cached_kernels(layer):
            diff = relative_diff(forward("bf16"), forward("fp32"))
            ev = timed_pair(forward, repeats)
        layer.train()
        tr = timed_pair(step, max(1, repeats // 2))
        rows.append({"side": side, "eval fp32 ms": 1e3 * ev["fp32"], "eval bf16 ms": 1e3 * ev["bf16"],
                     "eval x": ev["fp32"] / ev["bf16"], "step fp32 ms": 1e3 * tr["fp32"],
                     "step bf16 ms": 1e3 * tr["bf16"], "step x": tr["fp32"] / tr["bf16"], "rel diff": diff})
    return pd.DataFrame(rows)


def model_rows(items, repeats):
    """items: (checkpoint path, size, batch); eval forward with kernels cached, fp32 against bf16."""
    rows = []
    for path, size, batch in items:
        ckpt = load_checkpoint(path)
        model = ckpt.build_model().eval()
        torch.manual_seed(0)
        x = torch.randn(batch, ckpt.config.get("in_chans", 1), *size)

        def forward(p):
            with torch.inference_mode(), autocast(CPU, p):
                return model(x)

        with cached_kernels(model):
            diff = relative_diff(forward("bf16"), forward("fp32"))
            t = timed_pair(forward, repeats)
        rows.append({"checkpoint": Path(path).stem, "size": format_size(size), "batch": batch,
                     "fp32 ms": 1e3 * t["fp32"], "bf16 ms": 1e3 * t["bf16"], "x": t["fp32"] / t["bf16"],
                     "logit rel diff": diff})
    return pd.DataFrame(rows)


def model_items(paths, sides, models):
    """--checkpoints x --sides (square images, batch 64), or --models PATH@SIZE pairs in a sweep's batch."""
    if not models:
        return [(path, (side, side), 64) for path in paths for side in sides]
    items = []
    for entry in models.split(","):
        path, _, size = entry.partition("@")
        size = tuple(int(v) for v in size.split("x"))
        items.append((Path(path), size, cache_batch(64, size)))
    return items


def cell_rows(paths, sides, limit, threads):
    """Sweep the checkpoints in fp32 and in bf16 (per-image records kept); one row per cell swept in both."""
    import resbench

    out = Path(tempfile.mkdtemp(prefix="bench-bf16-"))
    rows = {}
    for p in ("fp32", "bf16"):
        resbench.sweep([str(x) for x in paths], out / p, test_res=",".join(map(str, sides)), bandlimit="on,off",
                       limit=limit, precision=p, log_samples=True, quiet=True, threads=threads, device="cpu")
        rows[p] = {tuple(r[k] for k in MATCH): r for r in read_rows(out / p) if not r.get("error")}
    table = []
    for key, a in rows["fp32"].items():
        b = rows["bf16"].get(key)
        if b is None:
            continue
        table.append({"checkpoint": a["checkpoint"], "test_res": a["test_res"], "policy": a["policy"],
                      "bandlimit": a["bandlimit"], "fp32 s": a["seconds"], "bf16 s": b["seconds"],
                      "x": a["seconds"] / b["seconds"], "fp32 %": 100 * a["accuracy"], "bf16 %": 100 * b["accuracy"],
                      "delta pts": 100 * (b["accuracy"] - a["accuracy"]),
                      "argmax flips": flips(out / "fp32", a, out / "bf16", b)[0]})
    return pd.DataFrame(table)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", default="28,56")
    parser.add_argument("--checkpoints", default="checkpoints/s4nd_iso_28.pt,checkpoints/s4nd_iso_14.pt,"
                                                  "checkpoints/conv2d_iso_28.pt")
    parser.add_argument("--models", default=None,
                        help="PATH@SIZE,... models at their own sizes (a 1-d 8000, a 3-d 16x28x28), each in the batch "
                             "a sweep takes there, instead of --checkpoints at --sides in batches of 64")
    parser.add_argument("--limit", type=int, default=2000, help="test images per sweep cell")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: layer, models, cells")
    args = common.parse(parser)
    sides = [int(s) for s in args.sides.split(",")]
    paths = [Path(p) for p in args.checkpoints.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    pd.set_option("display.width", 200)
    print(f"machine: {cpu_line(args.threads)}; malloc {args.malloc}; best of {args.repeats}")
    if "layer" not in skip:
        print("\n1. S4ND layer, H=128, d_state 64, batch 64 (eval: kernels cached)")
        print(layer_rows(sides, args.repeats).round(3).to_string(index=False))
    if "models" not in skip:
        print("\n2. models, eval forward")
        print(model_rows(model_items(paths, sides, args.models), args.repeats).round(4).to_string(index=False))
    if "cells" not in skip:
        print(f"\n3. sweep cells, first {args.limit} test images")
        print(cell_rows(paths, sides, args.limit, args.threads).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
