"""timm's evaluation conventions: its eval transform at a test size with crop_pct and interpolation, defaults
from a model's pretrained config; normalisation presets; a val-only folder swept with a preset."""

import pytest
import torch
from PIL import Image

from folders import write_folder
from resbench.data.transforms import NORM_PRESETS, eval_transform
from resbench.errors import ResbenchError


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = write_folder(tmp_path_factory.mktemp("t"), {"wide and tall": 4})
    return [Image.open(p).convert("RGB") for p in sorted((root / "val" / "wide and tall").iterdir())]


def by_hand(img, size, crop_pct, interpolation, mean, std):
    """Shorter side to floor(size / crop_pct), centre crop, to tensor, normalise: timm's validate.py convention."""
    import torchvision.transforms.functional as F
    from torchvision.transforms import InterpolationMode

    img = F.resize(img, int(size / crop_pct), interpolation=InterpolationMode(interpolation))
    x = F.to_tensor(F.center_crop(img, size))  # (3, size, size)
    return F.normalize(x, mean, std)


@pytest.mark.parametrize("crop_pct,interpolation", [(0.875, "bicubic"), (1.0, "bilinear"), (0.95, "bilinear")])
def test_the_transform_is_timms_convention_tensor_for_tensor(images, crop_pct, interpolation):
    mean, std = NORM_PRESETS["imagenet"]
    t = eval_transform((32, 32), crop_pct, interpolation, mean, std)
    for img in images:  # mixed sizes 20-60 px, both orientations, JPEG and PNG
        got = t(img)
        assert got.shape == (3, 32, 32)
        assert torch.equal(got, by_hand(img, 32, crop_pct, interpolation, mean, std))


def test_defaults_without_a_model_are_the_whole_image_bilinear(images):
    mean, std = NORM_PRESETS["inception"]
    got = eval_transform((24, 24), mean=mean, std=std)(images[0])
    assert torch.equal(got, by_hand(images[0], 24, 1.0, "bilinear", mean, std))


def test_defaults_from_a_timm_models_pretrained_config():
    import timm

    model = timm.create_model("resnet50.a1_in1k", pretrained=False)  # its config, no download
    cfg = model.pretrained_cfg
    text = repr(eval_transform((224, 224), model=model))
    assert f"size={int(224 / cfg['crop_pct'])}" in text and cfg["interpolation"] in text
    text = repr(eval_transform((160, 160), crop_pct=1.0, interpolation="bilinear", model=model))
    assert "size=160" in text and "bilinear" in text  # given settings win over the model's


@pytest.mark.parametrize("kw,name", [({"crop_pct": 1.5}, "--crop-pct"), ({"interpolation": "cubic"}, "--interpolation")])
def test_bad_settings_are_user_errors(kw, name):
    with pytest.raises(ResbenchError, match=name):
        eval_transform((32, 32), **kw)


def test_a_val_only_folder_sweeps_with_a_preset(cli, tmp_path):
    import timm

    root = write_folder(tmp_path / "f", {"a b": 3, "ç": 3})
    assert not (root / "train").exists()
    weights = tmp_path / "w.pt"
    torch.save(timm.create_model("test_resnet", in_chans=3, num_classes=2).state_dict(), weights)
    code, _, err = cli("sweep", "--model", "timm:test_resnet", "--weights", weights, "--train-res", 32,
                       "--dataset", "imagefolder", "--data-dir", root, "--mean", "imagenet", "--test-res", "32",
                       "--policy", "native", "--quiet", "-o", tmp_path / "s")
    assert code == 0, err
    from resbench.store import read_results

    df = read_results(tmp_path / "s")
    assert len(df) == 1 and df["n"].iloc[0] == 6 and df["error"].iloc[0] == ""
    assert df["warning"].iloc[0] == ""  # the statistics were given: no dataset statistics were computed


def test_a_preset_std_alone_is_a_user_error(cli, tmp_path):
    code, _, err = cli("sweep", "--model", "timm:test_resnet", "--std", "imagenet", "--dataset", "synthetic",
                       "-o", tmp_path / "s")
    assert code == 2 and "--std" in err
