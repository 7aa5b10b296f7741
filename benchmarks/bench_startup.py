"""Start-up time of the commands that do little work (`--help`, `models`, `info`) against `import torch` alone:
each a fresh process, run in turn so that a shared machine's load falls on all alike; best and median."""

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def commands(checkpoint: str) -> dict[str, list[str]]:
    cli = [sys.executable, str(REPO / "cli.py")]
    return {"python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "resbench --help": cli + ["--help"],
            "resbench models": cli + ["models"],
            f"resbench info {checkpoint}": cli + ["info", checkpoint]}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="checkpoints/s4nd_iso_14.pt")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cmds = commands(args.checkpoint)
    times: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(args.repeats):
        for label, cmd in cmds.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[label].append(time.perf_counter() - t0)
    base = min(times["python -c 'import torch'"])
    print(f"{'command':<45} {'best s':>7} {'median s':>9} {'best - torch':>13}")
    for label, ts in times.items():
        print(f"{label:<45} {min(ts):>7.2f} {sorted(ts)[len(ts) // 2]:>9.2f} {min(ts) - base:>+13.2f}")


if __name__ == "__main__":
    main()
