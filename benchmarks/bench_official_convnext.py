"""Time to import and sweep a full-size official S4ND-ConvNeXt (convnext_tiny, the ImageNet S4ND config).

The model is built with the official code (random weights; one call at 224x224 turns each DPLR kernel's C
into C~, as training does) and saved as a Lightning run saves it: `model.*` weights and the config as an
omegaconf DictConfig. Then, each as its own process (start-up included):

    resbench import-official FILE -o FILE.pt          (read without running code, rebuild, check, write)
    resbench sweep FILE --test-res 112,224,448 ...    (converted on the fly, native policy, bandlimit off)

on an image folder of 1000 classes (one random 224x224 image each), `--images` images per size. The
official code is not part of resbench: pass a checkout of state-spaces/s4 (needs einops, hydra-core):

    python benchmarks/bench_official_convnext.py --official /tmp/s4 [--images 8] [--work /tmp/bench_cnx]
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
LAYER = {"_name_": "s4nd", "d_state": 64, "channels": 1, "bidirectional": True, "activation": None,
         "final_act": "none", "initializer": None, "weight_norm": False, "dropout": 0, "tie_dropout": None,
         "init": "fourier", "rank": 1, "trank": 1, "dt_min": 0.01, "dt_max": 1.0, "lr": 0.001, "n_ssm": 1,
         "deterministic": False, "l_max": [224, 224], "verbose": False, "linear": True, "return_state": False,
         "bandlimit": None, "contract_version": 0}
MODEL = {"img_size": [224, 224], "drop_path_rate": 0.1, "patch_size": 4, "stem_channels": 32,
         "stem_type": "new_s4nd_patch", "stem_l_max": [16, 16], "downsample_type": "s4nd", "downsample_act": False,
         "downsample_glu": True, "conv_mlp": False, "custom_ln": False,
         "stem_layer": {"dt_min": 0.1, "dt_max": 1.0, "init": "fourier"},
         "stage_layers": [{"dt_min": 0.1, "dt_max": 1.0} for _ in range(4)]}


def save_official(official: str, path: Path) -> None:
    sys.path.insert(0, official)
    from omegaconf import OmegaConf
    from src.models.baselines.convnext_timm import ConvNeXt

    torch.manual_seed(0)
    conf = {k: v for k, v in MODEL.items() if k not in ("stem_layer", "stage_layers")}
    model = ConvNeXt(in_chans=3, num_classes=1000, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768),
                     layer=OmegaConf.create(LAYER), stem_layer=OmegaConf.create(MODEL["stem_layer"]),
                     stage_layers=[OmegaConf.create(s) for s in MODEL["stage_layers"]], **conf).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224), resolution=1)
    hp = OmegaConf.create({"model": {**MODEL, "layer": LAYER, "_name_": "timm/convnext_tiny"}, "encoder": None,
                           "decoder": "id", "dataset": {"_name_": "imagenet"}, "train": {"seed": 1112}})
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "hyper_parameters": hp,
                "hparams_name": "config", "epoch": 0, "global_step": 0, "pytorch-lightning_version": "1.9.0",
                "optimizer_states": [], "lr_schedulers": [], "callbacks": {}, "loops": {}}, path)


def image_folder(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(1000):
        (root / "val" / f"c{k:04d}").mkdir(parents=True, exist_ok=True)
        (root / "train" / f"c{k:04d}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(root / "val" / f"c{k:04d}/0.png")
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "train" / f"c{k:04d}/0.png")


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "cli.py"), *args], check=True, cwd=REPO)
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="a checkout of the state-spaces/s4 repository")
    parser.add_argument("--images", type=int, default=8, help="test images per size")
    parser.add_argument("--sizes", default="112,224,448")
    parser.add_argument("--work", default="/tmp/bench_official_convnext")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "convnext_tiny_s4nd.ckpt"
    if not ckpt.exists():
        save_official(args.official, ckpt)
    if not (work / "imgs").exists():
        image_folder(work / "imgs")
    print(f"checkpoint {ckpt.stat().st_size / 2**20:.0f} MiB; threads {torch.get_num_threads()}", flush=True)
    t_import = timed(["import-official", str(ckpt), "-o", str(work / "imported.pt")])
    print(f"import-official: {t_import:.1f} s", flush=True)
    t_sweep = timed(["sweep", str(ckpt), "--dataset", "imagefolder", "--data-dir", str(work / "imgs"), "--test-res",
                     args.sizes, "--limit", str(args.images), "--policy", "native", "--bandlimit", "off", "--quiet",
                     "-o", str(work / f"sweep_{time.time_ns()}")])
    print(f"sweep at {args.sizes}, {args.images} images per size: {t_sweep:.1f} s", flush=True)


if __name__ == "__main__":
    main()
