"""GPU smoke check: everything resbench runs on a CUDA device against the CPU in float32, in a few minutes.

Run it first when a GPU is lent. It covers: resizing on the device against the CPU (1-d, 2-d, 3-d, extreme
ratios); the S4ND layer (diagonal and DPLR kernels, Toeplitz and FFT paths) and CKConv; every shipped
checkpoint's model at sizes below, at and above its training size and over 128 px; each in fp32, bf16 and fp16
against CPU fp32; and a model's throughput at batch 32 against 512. Prints one line per check and a table;
writes the rows as CSV with --out. It asserts nothing: a row says "FAIL" with its error instead.

    python benchmarks/gpu_smoke.py [--out rows.csv] [--checkpoints checkpoints/]
"""

import argparse
import csv
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resbench.checkpoints import load_checkpoint  # noqa: E402
from resbench.device import autocast  # noqa: E402
from resbench.layers.ckconv import ContinuousDepthwiseConv  # noqa: E402
from resbench.layers.s4nd import S4ND  # noqa: E402
from resbench.resolution import resize_images  # noqa: E402
from resbench.layers.resolution_aware import cached_kernels  # noqa: E402

PRECISIONS = ("fp32", "bf16", "fp16")
ROWS: list[dict] = []


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64 on the CPU (nan when out has non-finite values)."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if not torch.isfinite(out).all():
        return float("nan")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def check(group: str, name: str, fn) -> None:
    """Run fn() -> dict of figures; record the row (FAIL with the error's last line when it raises)."""
    t0 = time.perf_counter()
    try:
        figures = fn()
        status = "ok"
    except Exception as e:  # noqa: BLE001 - a smoke check reports every failure and goes on
        figures, status = {}, "FAIL " + (traceback.format_exception_only(type(e), e)[-1].strip())[:200]
    row = {"group": group, "name": name, "status": status, "seconds": round(time.perf_counter() - t0, 3), **figures}
    ROWS.append(row)
    print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


def resize_checks(dev: torch.device) -> None:
    g = torch.Generator().manual_seed(0)
    cases = [("2-d 28->7", (64, 1, 28, 28), (7, 7)), ("2-d 28->56", (64, 1, 28, 28), (56, 56)),
             ("2-d 800->7 (114x)", (4, 3, 800, 800), (7, 7)), ("2-d 500x375->224", (8, 3, 500, 375), (224, 224)),
             ("1-d 4000->2000", (32, 1, 4000), (2000,)), ("1-d 4000->8000", (32, 1, 4000), (8000,)),
             ("3-d 8x14x14->4x7x7", (16, 1, 8, 14, 14), (4, 7, 7)), ("3-d 8x14x14->16x28x28", (16, 1, 8, 14, 14),
                                                                       (16, 28, 28))]
    for name, shape, size in cases:
        x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)

        def run(x=x, size=size):
            ref = resize_images(x, size)
            out = resize_images(x.to(dev), size)
            return {"max_abs": float((out.cpu() - ref).abs().max()), "rel": rel_err(out, ref)}
        check("resize", name, run)


def layer_checks(dev: torch.device) -> None:
    torch.manual_seed(0)
    for kernel in ("diag", "dplr"):
        for side, method in ((28, "toeplitz"), (28, "fft"), (160, "fft")):
            layer = S4ND(32, d_state=16, dim=2, l_max=28, kernel=kernel, bandlimit=0.5).eval()
            x = torch.randn(8, 32, side, side)
            with torch.inference_mode():
                ref = layer(x, rate=28 / side, method=method)
            for precision in PRECISIONS:
                def run(layer=layer, x=x, ref=ref, precision=precision, method=method, side=side):
                    g = layer.to(dev)
                    with torch.inference_mode(), autocast(dev, precision):
                        out = g(x.to(dev), rate=28 / side, method=method)
                    layer.cpu()
                    return {"rel": rel_err(out, ref)}
                check("layer", f"s4nd {kernel} {method} {side}px {precision}", run)
    conv = ContinuousDepthwiseConv(16, taps=9, train_size=(14, 14)).eval()
    for side in (7, 14, 28, 160):
        x = torch.randn(8 if side < 128 else 2, 16, side, side)
        with torch.inference_mode():
            ref = conv(x)
        for precision in PRECISIONS:
            def run(x=x, ref=ref, precision=precision):
                g = conv.to(dev)
                with torch.inference_mode(), autocast(dev, precision):
                    out = g(x.to(dev))
                conv.cpu()
                return {"rel": rel_err(out, ref)}
            check("layer", f"ckconv {side}px {precision}", run)


def _sizes(train: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Below, at and above the training size, and over 128 on the last axis (1-d: 8000 samples)."""
    half = tuple(max(1, t // 2) for t in train)
    double = tuple(2 * t for t in train)
    big = train[:-1] + (max(132, 2 * train[-1]),) if len(train) < 3 else train[:-2] + (64, 64)
    return list(dict.fromkeys([half, train, double, big]))


def model_checks(dev: torch.device, folder: Path) -> None:
    for path in sorted(folder.glob("*.pt")):
        ckpt = load_checkpoint(path)
        model = ckpt.build_model().eval()
        chans = model.config.in_chans
        for size in _sizes(tuple(ckpt.train_res)):
            torch.manual_seed(0)
            x = torch.randn(16 if max(size) <= 64 else 1, chans, *size)  # (b, C, *size); one at the big size
            try:
                with torch.inference_mode(), cached_kernels(model):
                    ref = model(x)
            except Exception as e:  # noqa: BLE001
                check("model", f"{path.stem} {size}", lambda e=e: (_ for _ in ()).throw(e))
                continue
            for precision in PRECISIONS:
                def run(x=x, ref=ref, precision=precision):
                    g = model.to(dev)
                    with torch.inference_mode(), cached_kernels(g), autocast(dev, precision):
                        out = g(x.to(dev)).float()
                    model.cpu()
                    agree = float((out.argmax(1).cpu() == ref.argmax(1)).float().mean())
                    return {"rel": rel_err(out, ref), "argmax_agree": agree}
                check("model", f"{path.stem} {'x'.join(map(str, size))} {precision}", run)


def throughput_checks(dev: torch.device, folder: Path) -> None:
    for stem, side in (("s4nd_iso_14", 28), ("conv2d_iso_14", 28), ("s4nd_iso_14", 56)):
        path = folder / f"{stem}.pt"
        if not path.exists():
            continue
        model = load_checkpoint(path).build_model().eval().to(dev)
        for batch in (32, 512):
            def run(model=model, batch=batch, side=side):
                x = torch.randn(batch, 1, side, side, device=dev)
                with torch.inference_mode(), cached_kernels(model), autocast(dev, "fp32"):
                    model(x)
                    torch.cuda.synchronize(dev)
                    t0 = time.perf_counter()
                    reps = max(3, 4096 // batch)
                    for _ in range(reps):
                        model(x)
                    torch.cuda.synchronize(dev)
                return {"images_per_s": batch * reps / (time.perf_counter() - t0)}
            check("throughput", f"{stem} {side}px batch {batch}", run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the rows as CSV here")
    parser.add_argument("--checkpoints", default="checkpoints", help="folder of shipped checkpoints")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device {dev} ({name}), torch {torch.__version__}", flush=True)
    resize_checks(dev)
    layer_checks(dev)
    model_checks(dev, Path(args.checkpoints))
    if dev.type == "cuda":
        throughput_checks(dev, Path(args.checkpoints))
    failed = [r for r in ROWS if r["status"] != "ok"]
    print(f"{len(ROWS)} checks, {len(failed)} failed", flush=True)
    for r in failed:
        print("FAILED:", r["group"], r["name"], r["status"])
    if args.out:
        keys = list(dict.fromkeys(k for r in ROWS for k in r))
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows(ROWS)


if __name__ == "__main__":
    main()
