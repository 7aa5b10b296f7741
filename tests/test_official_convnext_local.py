"""Official S4ND-ConvNeXt models built with the official code, imported through resbench: logits within 1e-4.

Local only: needs a checkout of state-spaces/s4 at $RESBENCH_OFFICIAL_S4 (default /tmp/s4off) and its
packages (einops, hydra-core, omegaconf); skipped otherwise. Builds every configuration of the fixture
script with another seed, and registry-named models at their real depths and widths, saved as a
Lightning checkpoint saves its config (an omegaconf DictConfig, read by resbench's restricted reader).
"""

import os
import sys
from pathlib import Path

import pytest
import torch

from resbench.checkpoints import load_checkpoint

OFFICIAL = Path(os.environ.get("RESBENCH_OFFICIAL_S4", "/tmp/s4off"))
sys.path.insert(0, str(Path(__file__).parent / "fixtures/official_convnext"))
import make_fixtures as mf  # noqa: E402  (the fixture script: its cases and builders)


@pytest.fixture(scope="module", autouse=True)
def official_code():
    if not (OFFICIAL / "src/models/baselines/convnext_timm.py").exists():
        pytest.skip(f"no state-spaces/s4 checkout at {OFFICIAL} (set RESBENCH_OFFICIAL_S4)")
    try:
        import einops, omegaconf  # noqa: F401,E401
    except ImportError as e:
        pytest.skip(f"the official code's packages are missing: {e}")


def _save(tmp_path, model, hp, name="official.ckpt", dictconfig=False):
    """The file a Lightning run writes: `model.*` weights; with `dictconfig` the config pickled as omegaconf's."""
    if dictconfig:
        from omegaconf import OmegaConf

        hp = OmegaConf.create(hp)
    path = tmp_path / name
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "hyper_parameters": hp,
                "hparams_name": "config", "epoch": 3, "global_step": 30, "pytorch-lightning_version": "1.9.0",
                "optimizer_states": [], "lr_schedulers": [], "callbacks": {}, "loops": {}}, path)
    return path


def _import(path: Path):
    """The resbench model of an official file, as a sweep reads it (statistics given for celeba-all)."""
    from resbench.checkpoints import file_sha256
    from resbench.checkpoints import official_checkpoint, read_official

    raw = read_official(path)
    stats = {"mean": [0.0] * 3, "std": [1.0] * 3} if raw["hyper_parameters"]["dataset"]["_name_"] == "celeba-all" \
        else {}
    return official_checkpoint(raw, path, file_sha256(path), **stats)


def _worst(label, ours, official, inputs) -> float:
    """Largest |logit difference| over the inputs (printed: run with -s to see it)."""
    worst = 0.0
    with torch.no_grad():
        for x, extra in inputs:
            worst = max(worst, (ours(x) - official(x, **extra)[0]).abs().max().item())
    print(f"{label}: max |logit diff| {worst:.2e} over sizes {[tuple(x.shape[2:]) for x, _ in inputs]}")
    return worst


@pytest.mark.parametrize("name", list(mf.CASES))
def test_2d_configurations_with_another_seed(name, tmp_path):
    model, hp = mf.build(OFFICIAL, name, seed=7)
    ours = _import(_save(tmp_path, model, hp, dictconfig=True)).build_model()
    inputs = [(torch.randn(2, 3, s, s), {"resolution": 64 / s}) for s in (32, 64, 128)]
    assert _worst(name, ours, model, inputs) < 1e-4


@pytest.mark.parametrize("name", list(mf.CASES_3D))
def test_3d_configurations_with_another_seed(name, tmp_path):
    model, hp = mf.build3d(OFFICIAL, name, seed=7)
    ours = load_checkpoint(_save(tmp_path, model, hp, dictconfig=True)).build_model()
    inputs = [(torch.randn(1, 3, *size), {}) for size in mf.SIZES_3D[name]]
    assert _worst(name, ours, model, inputs) < 1e-4


@pytest.mark.parametrize("registry_name", ["timm/convnext_micro", "timm/convnext_tiny"])
def test_registry_named_models_at_their_real_sizes(registry_name, tmp_path):
    """The ImageNet S4ND config's options on the named model (depths and dims from the name), d_state 4."""
    from omegaconf import OmegaConf
    from src.models.baselines import convnext_timm

    depths, dims = {"timm/convnext_micro": ((3, 3, 3, 3), (64, 128, 256, 512)),
                    "timm/convnext_tiny": ((3, 3, 9, 3), (96, 192, 384, 768))}[registry_name]
    layer = {**mf.LAYER, "d_state": 4}
    options = {"img_size": [64, 64], "patch_size": 4, "stem_channels": 32, "stem_type": "new_s4nd_patch",
               "stem_l_max": [16, 16], "downsample_type": "s4nd", "downsample_act": False, "downsample_glu": True,
               "conv_mlp": False, "custom_ln": False, "drop_path_rate": 0.1, "num_classes": 20}
    torch.manual_seed(0)
    model = convnext_timm.ConvNeXt(in_chans=3, depths=depths, dims=dims, layer=OmegaConf.create(layer),
                                   stem_layer=OmegaConf.create(mf.STEM),
                                   stage_layers=[OmegaConf.create(s) for s in mf.STAGES], **options).eval()
    mf._perturb(model, torch.randn(1, 3, 64, 64), resolution=1)
    hp = {"model": {**options, "layer": layer, "stem_layer": mf.STEM, "stage_layers": mf.STAGES,
                    "_name_": registry_name}, "encoder": None, "decoder": "id", "dataset": {"_name_": "imagenet"}}
    ckpt = load_checkpoint(_save(tmp_path, model, hp, dictconfig=True))
    assert ckpt.config["depths"] == list(depths) and ckpt.config["dims"] == list(dims)
    inputs = [(torch.randn(1, 3, s, s), {"resolution": 64 / s}) for s in (32, 64, 128)]
    assert _worst(registry_name, ckpt.build_model(), model, inputs) < 1e-4
