"""Recipe search for the s4nd_iso checkpoints trained at 28 (exploration, not a shipped recipe).

Trains several candidate recipes side by side, one process each, and logs the full-test-set
accuracy at 28 after every epoch as JSON lines. It runs on CPU too, but was meant for a GPU
(`--device cuda`): on this project's 2-core CPU one epoch at 28 takes about 4 minutes with both
cores (s4nd_iso_28_long's log), and these runs take one thread each.
The shipped checkpoints are then trained on CPU with `resbench train` (checkpoints/train_all.sh).

    python benchmarks/recipe_search.py --device cuda --budget 380 -o /tmp/search.jsonl d0_6 prog6
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

import torch.multiprocessing as mp

# name -> schedule [(size, epochs), ...], model config overrides, learning rate (others: TrainConfig defaults)
RECIPES = {
    "base6": {"schedule": [(28, 6)]},
    "base8": {"schedule": [(28, 8)]},
    "base10": {"schedule": [(28, 10)]},
    "d0_6": {"schedule": [(28, 6)], "overrides": {"dropout": 0.0}},
    "d0_8": {"schedule": [(28, 8)], "overrides": {"dropout": 0.0}},
    "w96_6": {"schedule": [(28, 6)], "overrides": {"d_model": 96}},
    "w96_8": {"schedule": [(28, 8)], "overrides": {"d_model": 96}},
    "L6_8": {"schedule": [(28, 8)], "overrides": {"n_layers": 6}},
    "lr1e2_8": {"schedule": [(28, 8)], "lr": 1e-2},
    "prog6": {"schedule": [(7, 1), (14, 3), (28, 2)]},
    "prog8a": {"schedule": [(7, 2), (14, 3), (28, 3)]},
    "prog8b": {"schedule": [(7, 2), (14, 4), (28, 2)]},
    # not run on the GPU: a 6-epoch progressive twin of d0_6, d0_10 (run on the CPU as s4nd_iso_28_long:
    # 91.02%) and its 10-epoch progressive twin
    "prog6_d0": {"schedule": [(7, 1), (14, 3), (28, 2)], "overrides": {"dropout": 0.0}},
    "d0_10": {"schedule": [(28, 10)], "overrides": {"dropout": 0.0}},
    "prog10_d0": {"schedule": [(7, 2), (14, 5), (28, 3)], "overrides": {"dropout": 0.0}},
}


class _Deadline(Exception):
    """Raised after an epoch that ends past the budget: the run stops there (its state stays resumable)."""


def run(name: str, device: str, data_dir: str | None, out: str, deadline: float) -> None:
    from resbench import data
    from resbench.train import TrainConfig, evaluate, train

    spec = RECIPES[name]
    cfg = TrainConfig(model="s4nd_iso", schedule=spec["schedule"], lr=spec.get("lr", 5e-3), data_dir=data_dir,
                      threads=1, device=device, model_overrides={"bandlimit": 0.5, **spec.get("overrides", {})})
    stats = data.dataset_stats(cfg.dataset, data_dir, seed=0)
    x_test, y_test = (t.to(device) for t in data.load(cfg.dataset, "test", 28, data_dir, stats=stats))
    started = time.time()

    def after_epoch(end) -> None:  # the full test set at 28 after every epoch, whatever the epoch's size
        correct, _ = evaluate(end.model, x_test, y_test, batch_size=500)
        rec = {"name": name, "epoch": end.epoch, "size": end.record["size"], "loss": end.record["loss"],
               "test28": correct / len(y_test), "t": round(time.time() - started, 1)}
        _log(out, rec)
        if time.time() > deadline:
            raise _Deadline

    with tempfile.TemporaryDirectory() as tmp:
        try:
            train(cfg, Path(tmp) / f"{name}.pt", quiet=True, on_epoch_end=after_epoch)
        except _Deadline:
            pass
        except Exception:
            _log(out, {"name": name, "error": traceback.format_exc()})
            raise


def _log(out: str, rec: dict) -> None:
    print(json.dumps(rec), flush=True)
    with open(out, "a") as log:
        log.write(json.dumps(rec) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES), metavar="RECIPE")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the Debian package's)")
    parser.add_argument("--budget", type=float, default=3600, help="seconds; each run stops after the epoch past it")
    parser.add_argument("-o", "--out", default="recipe_search.jsonl")
    args = parser.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.budget
    mp.set_start_method("spawn")
    procs = [mp.Process(target=run, args=(name, args.device, args.data_dir, args.out, deadline))
             for name in args.recipes]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
