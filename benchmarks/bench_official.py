"""resbench's S4ND layer against the official one (state-spaces/s4), side by side in one process.

Both layers hold the same weights (the official layer's, loaded with S4ND.from_state_spaces), run in the
same process under the same allocator setting, and compute their kernels in every call (no cache):
eval forward (inference mode) and a training step (forward + backward of a summed output): --repeats calls in
a row per side, in --rounds rounds, the best call kept for each side (common.best_times). Prints a table;
asserts nothing. The "GEMM ms" column is the layer's output linear alone (a (B*L*L, H) x (H, 2H) product with
its bias, run as the layer runs it: through oneDNN in float32 on the CPU, see resbench.layers.onednn; the one
the GLU output needs whatever the convolution costs), timed the same way: no layer's eval can be
faster, so official / GEMM is the highest ratio this machine allows ("ceiling"). The official code is not
part of resbench: pass a checkout of the repository,

    git clone https://github.com/state-spaces/s4 /tmp/s4   # needs: pip install einops hydra-core pytorch-lightning
    python benchmarks/bench_official.py --official /tmp/s4 [--sides 8,14,28,56] [--batch 64] [--width 128]
        [--device cuda] [--precision bf16]

Without --official only resbench's column is measured. On a GPU every timed call ends with a device
synchronisation; --precision bf16/fp16 runs both layers under autocast (fp32: no TF32).
"""

import argparse
import sys

import torch

import common

from resbench.device import autocast
from resbench.layers import onednn
from resbench.layers.s4nd import S4ND


def timed(fn, device=torch.device("cpu"), precision="fp32"):
    """fn under the precision's autocast, synchronising a GPU after each call."""
    def call():
        with autocast(device, precision):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return call


def official_layer(path: str, config: dict):
    """The official S4ND layer built from `config` (the official option names)."""
    sys.path.insert(0, path)
    from src.models.sequence.modules.s4nd import S4ND as OfficialS4ND  # noqa: E402  (the checkout's)

    return OfficialS4ND(**config, return_state=False, verbose=False)


def train_step(layer, x):
    """One training step: forward, sum, backward (gradients of the weights and the input)."""
    x = x.clone().requires_grad_(True)

    def step():
        layer.zero_grad(set_to_none=True)
        out = layer(x)
        out = out[0] if isinstance(out, tuple) else out
        out.float().sum().backward()
    return step


def measure(side: int, args, official_path: str | None) -> dict:
    config = {"d_model": args.width, "d_state": args.d_state, "l_max": [side, side], "dim": 2,
              "bidirectional": True, "bandlimit": 0.5, "n_ssm": 1, "init": "diag-lin", "dt_min": 0.1,
              "dt_max": 1.0, "kernel": "diag", "disc": "zoh", "activation": "gelu", "final_act": "glu",
              "transposed": True, "linear": False}
    torch.manual_seed(0)
    dev, prec = torch.device(args.device), args.precision
    x = torch.randn(args.batch, args.width, side, side, device=dev)  # (B, H, L, L)
    row = {"side": side}
    if official_path:
        official = official_layer(official_path, config).eval()
        ours = S4ND.from_state_spaces(config, official.state_dict()).eval().to(dev)
        official = official.to(dev)
        with torch.inference_mode(), autocast(dev, prec):
            row["diff"] = (ours(x).float() - official(x).float()).abs().max().item()
    else:
        official = None
        ours = S4ND(**{k: v for k, v in config.items() if k not in ("kernel", "disc", "linear")}).eval().to(dev)
    # the output linear alone, as the layer runs it (onednn.linear: oneDNN for float32 on the CPU)
    a = torch.randn(args.batch * side * side, args.width, device=dev)
    w, bias = torch.randn(2 * args.width, args.width, device=dev), torch.randn(2 * args.width, device=dev)
    evals = {"ours": lambda: ours(x), "gemm": lambda: onednn.linear(a, w, bias)}
    if official is not None:
        evals["official"] = lambda: official(x)
    with torch.inference_mode():  # the sides take turns, a block of calls each (common.best_times)
        row.update(common.best_times({k: timed(fn, dev, prec) for k, fn in evals.items()}, args.repeats, args.rounds))
    steps = {"ours_train": train_step(ours.train(), x)}
    if official is not None:
        steps["official_train"] = train_step(official.train(), x)
    row.update(common.best_times({k: timed(fn, dev, prec) for k, fn in steps.items()}, args.repeats, args.rounds))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", default=None, help="a checkout of the state-spaces/s4 repository")
    parser.add_argument("--sides", default="8,14,28,56")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--d-state", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="blocks of --repeats calls per side, taking turns")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 (autocast, both layers)")
    args = common.parse(parser)
    print(f"S4ND layer, H={args.width}, d_state={args.d_state}, batch={args.batch}, bidirectional, bandlimit 0.5, "
          f"kernels computed in the call; threads={args.threads}, malloc={args.malloc}, device={args.device}, "
          f"precision={args.precision}")
    if not args.official:
        print("no --official checkout given: the official columns are skipped")
    print(f"{'side':>5} {'official ms':>12} {'resbench ms':>12} {'ratio':>7} {'GEMM ms':>8} {'ceiling':>8} "
          f"{'max |diff|':>11} | "
          f"{'train: official ms':>19} {'resbench ms':>12} {'ratio':>7}")
    for side in [int(s) for s in args.sides.split(",")]:
        r = measure(side, args, args.official)
        off, off_train = r.get("official"), r.get("official_train")
        print(f"{side:>5} {1e3 * off if off else float('nan'):>12.1f} {1e3 * r['ours']:>12.1f} "
              f"{off / r['ours'] if off else float('nan'):>6.1f}x {1e3 * r['gemm']:>8.1f} "
              f"{off / r['gemm'] if off else float('nan'):>7.1f}x {r.get('diff', float('nan')):>11.2e} | "
              f"{1e3 * off_train if off_train else float('nan'):>19.1f} {1e3 * r['ours_train']:>12.1f} "
              f"{off_train / r['ours_train'] if off_train else float('nan'):>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
