"""Recipe search for the s4nd_iso checkpoints trained at 28 (exploration, not a shipped recipe).

Trains several candidate recipes side by side, one process each, and logs the full-test-set
accuracy at 28 after every epoch as JSON lines. It runs on CPU too, but was meant for a GPU
(`--device cuda`): on this project's 2-core CPU one epoch at 28 takes about 4 minutes with both
cores (s4nd_iso_28_long's log), and these runs take one thread each.
The shipped checkpoints are then trained on CPU with `resbench train` (checkpoints/train_all.sh).

    python checkpoints/recipe_search.py --device cuda --budget 380 -o /tmp/search.jsonl d0_6 prog6
"""

from __future__ import annotations

import argparse
import json
import math
import time
import traceback
from pathlib import Path

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

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


def run(name: str, device: str, data_dir: str | None, out: str, deadline: float) -> None:
    from resbench import data
    from resbench.models import create_model
    from resbench.train import TrainConfig, _lr_factor, _param_groups

    torch.set_num_threads(1)
    spec = RECIPES[name]
    with open(out, "a") as log:
        try:
            cfg = TrainConfig(model="s4nd_iso", schedule=spec["schedule"], lr=spec.get("lr", 5e-3), data_dir=data_dir,
                              model_overrides={"bandlimit": 0.5, **spec.get("overrides", {})})
            stats = data.dataset_stats(cfg.dataset, data_dir, seed=0)
            torch.manual_seed(0)
            model = create_model("s4nd_iso", in_chans=1, num_classes=10, train_res=28, **cfg.model_overrides).to(device)
            x_test, y_test = (t.to(device) for t in data.load(cfg.dataset, "test", 28, data_dir, stats=stats))
            n_train = len(data.load_raw(cfg.dataset, "train", data_dir)[1])
            total = math.ceil(n_train / cfg.batch_size) * cfg.epochs
            opt = torch.optim.AdamW(_param_groups(model, cfg))
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, total, cfg.warmup_frac))
            sizes = [size for size, epochs in cfg.schedule for _ in range(epochs)]
            loaded, t0 = None, time.time()
            for epoch, size in enumerate(sizes):
                if size != loaded:
                    x, y = (t.to(device) for t in data.load(cfg.dataset, "train", size, data_dir, stats=stats))
                    loaded = size
                torch.manual_seed(epoch)
                order = torch.randperm(n_train, generator=torch.Generator().manual_seed(epoch)).to(device)
                model.train()
                loss_sum = torch.zeros((), device=device)
                for i in range(0, n_train, cfg.batch_size):
                    idx = order[i:i + cfg.batch_size]
                    loss = F.cross_entropy(model(x[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    loss_sum += loss.detach() * len(idx)
                model.eval()
                with torch.inference_mode():
                    correct = sum((model(x_test[i:i + 500]).argmax(1) == y_test[i:i + 500]).sum().item()
                                  for i in range(0, len(y_test), 500))
                rec = {"name": name, "epoch": epoch + 1, "size": size, "loss": loss_sum.item() / n_train,
                       "test28": correct / len(y_test), "t": round(time.time() - t0, 1)}
                print(json.dumps(rec), flush=True)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if time.time() > deadline:
                    break
        except Exception:
            log.write(json.dumps({"name": name, "error": traceback.format_exc()}) + "\n")
            raise


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
