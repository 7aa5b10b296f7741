"""Train recipes of checkpoints/train_all.sh in parallel on one device (a lent GPU), under a time limit.

Each run is `python cli.py train RECIPE --seed 0 (unless it names one) --device DEVICE --resume -o OUT/NAME.pt`
in its own process with OMP_NUM_THREADS limited, logging to OUT/logs/NAME.log. New runs start while
fewer than --jobs are running and --budget seconds have not passed; running ones are killed at --deadline
(their OUT/NAME.pt.state lets a later call with --resume continue). NAME patterns take shell wildcards
('ablation/*'). At the end one line per run: name, status, native accuracy, seconds (also OUT/summary.tsv).

    python benchmarks/gpu_train.py --device cuda --jobs 12 --budget 240 --deadline 290 -o /tmp/out 'ablation/*'
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE_LINE = re.compile(r'^\s*\[([^\]]+)\]="([^"]*)"')  # `  [NAME]="model --train-res 7 ..."` in train_all.sh
ACCURACY = re.compile(r"native accuracy ([0-9.]+)")  # the train command's last line


def read_recipes(path: Path) -> dict[str, str]:
    """NAME -> recipe (the train command's arguments) from a train_all.sh-style file, in file order."""
    return {m.group(1): m.group(2) for m in map(RECIPE_LINE.match, path.read_text().splitlines()) if m}


def select(recipes: dict[str, str], patterns: list[str]) -> list[str]:
    """The recipe names matching any pattern (shell wildcards), in the order of the patterns, then the file."""
    names = []
    for pattern in patterns:
        found = [n for n in recipes if fnmatch.fnmatchcase(n, pattern)]
        if not found:
            sys.exit(f"gpu_train: no recipe matches {pattern!r} (see --list)")
        names += [n for n in found if n not in names]
    return names


def cost(recipe: str) -> float:
    """A rough relative cost for --longest-first: epochs x pixels of the training size (x4 for s4nd models)."""
    args = shlex.split(recipe)

    def value(flag, default):
        return args[args.index(flag) + 1] if flag in args else default

    sides = [int(v) for v in re.findall(r"\d+", value("--train-res", "14"))]
    pixels = sides[0] * sides[-1] if len(sides) <= 2 else sides[0] * sides[1] * sides[2]
    return int(value("--epochs", "3")) * pixels * (4 if args[0].startswith("s4nd") else 1)


def command(name: str, recipe: str, args: argparse.Namespace) -> list[str]:
    seed = [] if "--seed" in shlex.split(recipe) else ["--seed", "0"]
    return [sys.executable, str(REPO / "cli.py"), "train", *shlex.split(recipe), *seed, "--device", args.device,
            "--resume", *shlex.split(args.train_args), "-o", str(args.out / f"{name}.pt")]


class Run:
    """One training process and what the summary says of it."""

    def __init__(self, name: str, argv: list[str], log: Path, threads: int):
        log.parent.mkdir(parents=True, exist_ok=True)
        (Path(argv[-1]).parent).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.name, self.log, self.started, self.status = name, log, time.perf_counter(), "running"
        self._file = log.open("w")
        self._file.write("$ " + shlex.join(argv) + "\n")
        self._file.flush()
        self.proc = subprocess.Popen(argv, stdout=self._file, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        self.seconds = 0.0

    def poll(self) -> bool:
        """True once the process has ended (status set)."""
        if self.proc.poll() is None:
            return False
        self._end("ok" if self.proc.returncode == 0 else f"failed rc={self.proc.returncode}")
        return True

    def kill(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._end("killed at deadline")

    def _end(self, status: str) -> None:
        self.status, self.seconds = status, time.perf_counter() - self.started
        self._file.close()

    def accuracy(self) -> str:
        found = ACCURACY.findall(self.log.read_text(errors="replace")) if self.log.exists() else []
        return found[-1] if found else "-"


def write_summary(out: Path, rows: list[tuple]) -> None:
    """OUT/summary.tsv: one line per run (rewritten as runs end, so a killed call still leaves one)."""
    lines = ["name\tstatus\taccuracy\tseconds", *("\t".join(row) for row in rows)]
    (out / "summary.tsv").write_text("\n".join(lines) + "\n")


def run_all(names: list[str], recipes: dict[str, str], args: argparse.Namespace) -> list[tuple]:
    """Start, watch and end the runs; returns (name, status, accuracy, seconds) per name, in the order of `names`."""
    t0 = time.perf_counter()
    pending, running, done, skipped = list(names), [], [], []
    while pending or running:
        elapsed = time.perf_counter() - t0
        for run in [r for r in running if r.poll()]:
            running.remove(run)
            done.append(run)
            print(f"[{elapsed:6.0f}s] {run.name}: {run.status}, accuracy {run.accuracy()}, {run.seconds:.0f} s",
                  flush=True)
            write_summary(args.out, [(r.name, r.status, r.accuracy(), f"{r.seconds:.0f}") for r in done])
        if args.deadline is not None and elapsed > args.deadline:
            for run in running:
                run.kill()
            done += running
            running = []
            break
        while pending and len(running) < args.jobs and elapsed < args.budget:
            name = pending.pop(0)
            if (args.out / f"{name}.pt").exists():
                skipped.append(name)
                continue
            running.append(Run(name, command(name, recipes[name], args), args.out / "logs" / f"{name}.log",
                               args.threads))
            print(f"[{elapsed:6.0f}s] started {name}", flush=True)
        if not running and (not pending or elapsed >= args.budget):
            break
        time.sleep(args.poll)
    rows = [(r.name, r.status, r.accuracy(), f"{r.seconds:.0f}") for r in done]
    rows += [(n, "exists", "-", "0") for n in skipped]
    rows += [(n, "not started (budget)", "-", "0") for n in pending]
    return sorted(rows, key=lambda row: names.index(row[0]))  # in the order asked for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="recipe names or wildcard patterns ('ablation/*')")
    parser.add_argument("-o", "--out", type=Path, help="folder for NAME.pt, logs/NAME.log and summary.tsv")
    parser.add_argument("--recipes", type=Path, default=REPO / "checkpoints" / "train_all.sh")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--jobs", type=int, default=8, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of each run")
    parser.add_argument("--budget", type=float, default=240, help="seconds after which no run starts")
    parser.add_argument("--deadline", type=float, default=None, help="seconds after which running runs are killed")
    parser.add_argument("--longest-first", action="store_true", help="start the costliest recipes first")
    parser.add_argument("--train-args", default="", help="more train options for every run, e.g. '--data-dir D'")
    parser.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help="print the matching recipes and exit")
    args = parser.parse_args()
    recipes = read_recipes(args.recipes)
    names = select(recipes, args.names or ["*"])
    if args.longest_first:
        names.sort(key=lambda n: -cost(recipes[n]))
    if args.list:
        print("\n".join(f"{n}\t{recipes[n]}" for n in names))
        return
    if args.out is None or args.jobs < 1 or args.threads < 1:
        sys.exit("gpu_train: expected -o OUT, --jobs >= 1 and --threads >= 1")
    args.out = args.out.resolve()  # the runs start in the repository root
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run_all(names, recipes, args)
    write_summary(args.out, rows)
    for row in rows:
        print("SUMMARY " + "\t".join(row), flush=True)


if __name__ == "__main__":
    main()
