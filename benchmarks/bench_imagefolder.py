"""An ImageNet-style folder at real sizes: loader against model throughput, memory against split size, time to
the first cell, and the sweep's estimate against its real time.

    python benchmarks/bench_imagefolder.py --root /tmp/if20k --images 20000

1. Builds ROOT/val/CLASS/*.JPEG (10 classes; each image a Fashion-MNIST item, upscaled and tinted, on a
   textured background, at a random size of 150 to 500 px a side and a random aspect ratio); kept if there.
2. The loader alone: resbench's streaming reader (timm's eval transform at 224, --loader-workers) over --loader-images.
3. The model alone: --model at 224 on random input, batch 32, img/s.
4. Peak memory (PSS of the sweep's process tree, sampled from /proc) of a streamed sweep of --rss-model at --rss-size
   over 2,000 images and over the whole folder.
5. A streamed sweep of --model at --sizes on a stratified --limit: the estimate of its first line, the time to
   its first finished cell and its real wall time.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import best_time  # noqa: E402  (benchmarks/common.py, beside this script)

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def _make_image(item: np.ndarray, rng: np.random.Generator):
    from PIL import Image

    w, h = (int(v) for v in rng.integers(150, 501, 2))
    lo = rng.normal(size=(max(2, h // 40), max(2, w // 40), 3))  # a coarse noise texture, upscaled
    bg = np.asarray(Image.fromarray(((lo - lo.min()) / np.ptp(lo) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC),
                    dtype=np.float32)
    bg = 0.5 * bg + 0.5 * rng.uniform(0, 255, 3) + rng.normal(0, 8, (h, w, 3))
    side = int(min(w, h) * rng.uniform(0.5, 0.9))
    obj = np.asarray(Image.fromarray(item).resize((side, side), Image.BICUBIC), dtype=np.float32)[..., None] / 255
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    tint = rng.uniform(80, 255, 3)
    patch = bg[y:y + side, x:x + side]
    bg[y:y + side, x:x + side] = patch * (1 - obj) + tint * obj
    return Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))


def _build_part(args):
    root, start, stop, items, labels = args
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        path = Path(root) / "val" / CLASSES[labels[i]] / f"img_{i:06d}.JPEG"
        _make_image(items[i], rng).save(path, quality=90)


def build(root: Path, n: int) -> None:
    from multiprocessing import Pool

    from resbench import data

    have = sum(1 for _ in root.glob("val/*/*.JPEG")) if root.exists() else 0
    if have == n:
        print(f"folder: {root} has its {n} images")
        return
    if have:
        raise SystemExit(f"{root} holds {have} images, not {n}: remove it first")
    raw, labels = data.load_raw("fashion-mnist", "train", limit=n)
    items, labels = raw[:, 0].numpy(), labels.numpy()
    for c in CLASSES:
        (root / "val" / c).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    parts = [(str(root), s, min(n, s + 1000), items, labels) for s in range(0, n, 1000)]
    with Pool(os.cpu_count() or 2) as pool:
        pool.map(_build_part, parts)
    size = sum(p.stat().st_size for p in root.glob("val/*/*.JPEG"))
    print(f"folder: built {n} JPEGs in {time.perf_counter() - t0:.0f} s, {size / 2**20:.0f} MiB")


def loader_rate(root: Path, n: int, workers: int) -> float:
    from resbench.data.stream import folder_batches, folder_split

    split = folder_split(root)
    t0 = time.perf_counter()
    count = 0
    for x, _ in folder_batches(split, torch.arange(n), (224, 224), 64, workers, ((0.5,) * 3, (0.5,) * 3)):
        count += len(x)
    return count / (time.perf_counter() - t0)


def model_rate(spec: str, threads: int) -> float:
    import timm

    torch.set_num_threads(threads)
    net = timm.create_model(spec.removeprefix("timm:"), num_classes=10).eval()
    x = torch.randn(32, 3, 224, 224)
    with torch.no_grad():
        return 32 / best_time(lambda: net(x), 2)


def _tree_rss(pid: int) -> int:
    """Proportional resident bytes (PSS: a page shared by k processes counts 1/k in each, so forked loader
    workers are not counted k times) of `pid` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            total += int(re.search(r"Pss:\s+(\d+)", Path(f"/proc/{p}/smaps_rollup").read_text()).group(1)) * 1024
        except (OSError, AttributeError):
            continue
    return total


def run_sweep(command: list[str]) -> dict:
    """Run a sweep, sampling its process tree's RSS; the first line's estimate, first-cell and wall times."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, first_cell, estimate, lines = [0], None, None, []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.2)

    threading.Thread(target=sample, daemon=True).start()
    for line in proc.stdout:
        lines.append(line)
        if estimate is None and (m := re.search(r"estimated ([^(]+)\(", line)):
            estimate = m.group(1).strip()
        if first_cell is None and re.match(r"\s*cell 1/", line):
            first_cell = time.perf_counter() - t0
    proc.wait()
    stop.set()
    if proc.returncode:
        raise SystemExit("sweep failed:\n" + "".join(lines[-20:]))
    return {"wall_s": time.perf_counter() - t0, "first_cell_s": first_cell, "estimate": estimate,
            "peak_pss_mib": peak[0] / 2**20}


def sweep_command(model: str, weights: Path, root: Path, sizes: str, limit: int | None, out: Path,
                  workers: int) -> list[str]:
    command = [sys.executable, "cli.py", "sweep", "--model", model, "--weights", str(weights), "--train-res", "224",
               "--dataset", "imagefolder", "--data-dir", str(root), "--reader", "stream",
               "--loader-workers", str(workers), "--mean", "imagenet", "--test-res", sizes, "--policy", "native", "-o", str(out)]
    return command + (["--limit", str(limit)] if limit else [])


def weights_for(spec: str, folder: Path) -> Path:
    import timm

    path = folder / f"{spec.removeprefix('timm:').replace('/', '_')}_10cls.pth"
    if not path.exists():
        torch.save(timm.create_model(spec.removeprefix("timm:"), num_classes=10).state_dict(), path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/if20k"))
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--model", default="timm:resnet50")
    ap.add_argument("--sizes", default="160,224,288")
    ap.add_argument("--limit", type=int, default=500, help="stratified test images of the timed sweep")
    ap.add_argument("--rss-model", default="timm:resnet18")
    ap.add_argument("--rss-size", default="128")
    ap.add_argument("--loader-images", type=int, default=2000)
    ap.add_argument("--loader-workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stages", default="build,loader,model,rss,sweep")
    args = ap.parse_args()
    stages = set(args.stages.split(","))
    work = args.root.parent / f"{args.root.name}_runs"
    work.mkdir(parents=True, exist_ok=True)
    if "build" in stages:
        build(args.root, args.images)
    if "loader" in stages:
        rate = loader_rate(args.root, args.loader_images, args.loader_workers)
        print(f"loader alone: {rate:.0f} img/s at 224 ({args.loader_workers} workers, {args.loader_images} images)")
    if "model" in stages:
        print(f"model alone: {args.model} {model_rate(args.model, args.threads):.1f} img/s at 224 (batch 32, "
              f"{args.threads} threads)")
    if "rss" in stages:
        weights = weights_for(args.rss_model, work)
        for n in (2000, None):
            out = work / f"rss_{n or 'all'}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            r = run_sweep(sweep_command(args.rss_model, weights, args.root, args.rss_size, n, out, args.loader_workers))
            print(f"peak memory, {args.rss_model} at {args.rss_size} on {n or args.images} images: "
                  f"{r['peak_pss_mib']:.0f} MiB (PSS of the process tree), wall {r['wall_s']:.0f} s")
    if "sweep" in stages:
        out = work / "timed"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        r = run_sweep(sweep_command(args.model, weights_for(args.model, work), args.root, args.sizes, args.limit, out,
                                    args.loader_workers))
        print(f"sweep {args.model} at {args.sizes} on {args.limit} images: estimated {r['estimate']}, first cell "
              f"after {r['first_cell_s']:.0f} s, wall {r['wall_s']:.0f} s, peak PSS {r['peak_pss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
