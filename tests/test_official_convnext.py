"""Official S4ND-ConvNeXt checkpoints: exact logits at the official rates, refusals in one line, sweeps.

The fixtures were made with the official code (tests/fixtures/official_convnext/make_fixtures.py); each
holds the official model's weights, inputs at its training size, half and twice it, and its logits.
"""

import copy
from pathlib import Path

import pytest
import torch

from conftest import assert_user_error
from resbench.checkpoints import file_sha256, load_checkpoint
from resbench.errors import ResbenchError
from resbench.checkpoints import official_checkpoint, read_official
from resbench.checkpoints.official_convnext import CONVNEXT_NAMES

FIXTURES = Path(__file__).parent / "fixtures/official_convnext"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.pt"))
STATS = {"mean": [0.0] * 3, "std": [1.0] * 3}  # celeba-all's statistics are not known to resbench


def imported(path: Path, **kwargs):
    raw = read_official(path)
    kwargs = {**STATS, **kwargs} if raw["hyper_parameters"]["dataset"]["_name_"] == "celeba-all" else kwargs
    return official_checkpoint(raw, path, file_sha256(path), **kwargs)


def logit_diffs(model, path: Path) -> dict[tuple, float]:
    """|logits - official logits| per recorded input size."""
    out = {}
    with torch.inference_mode():
        for case in torch.load(path, weights_only=True)["cases"]:
            x = case["input"].float()  # stored as float16 values; the official model saw them as float32
            assert model.rates(x.shape[2:]) == pytest.approx((case["rate"],) * (x.dim() - 2))
            out[tuple(x.shape[2:])] = (model(x) - case["logits"]).abs().max().item()
    return out


VIDEO = ["hmdb_new_s4nd_patch", "video_patch_custom_ln", "video_plain_convnext"]


def test_every_fixture_is_checked():
    assert len(NAMES) == 9 and "imagenet_new_s4nd_patch" in NAMES and set(VIDEO) <= set(NAMES)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in VIDEO])
def test_logits_match_the_official_model_at_three_sizes(name):
    ckpt = imported(FIXTURES / f"{name}.pt")
    assert ckpt.model == "s4nd_official_convnext" and ckpt.train_res == (64, 64)
    diffs = logit_diffs(ckpt.build_model(), FIXTURES / f"{name}.pt")
    assert sorted(diffs) == [(32, 32), (64, 64), (128, 128)]  # rates 2, 1 and 1/2
    assert max(diffs.values()) < 1e-4, diffs


@pytest.mark.parametrize("name", VIDEO)
def test_video_logits_match_at_other_frame_counts_and_sizes(name):
    ckpt = load_checkpoint(FIXTURES / f"{name}.pt")  # hmdb51's statistics are known
    assert ckpt.model == "s4nd_official_convnext3d" and ckpt.dims == 3
    assert ckpt.train_res == tuple(ckpt.config["video_size"])
    diffs = logit_diffs(ckpt.build_model(), FIXTURES / f"{name}.pt")  # every size at rate 1, as officially
    assert len({size[0] for size in diffs}) >= 3 and len({size[1] for size in diffs}) >= 3
    assert max(diffs.values()) < 1e-4, diffs


def test_a_clip_shorter_than_the_model_takes_is_a_user_error():
    model = load_checkpoint(FIXTURES / "video_patch_custom_ln.pt").build_model()
    with pytest.raises(ResbenchError, match="T, H, W"):
        model(torch.zeros(1, 3, 4, 32, 32))  # 3 temporal halvings need 8 frames


def test_the_rate_reaches_every_layer():
    """Run at rate 1 whatever the size, the model misses the official logits off the training size."""
    path = FIXTURES / "imagenet_new_s4nd_patch.pt"
    model = imported(path).build_model()
    model.rates = lambda size: (1.0, 1.0)
    with torch.inference_mode():
        for case in torch.load(path, weights_only=True)["cases"]:
            diff = (model(case["input"].float()) - case["logits"]).abs().max().item()
            assert (diff < 1e-4) == (case["rate"] == 1.0), (case["rate"], diff)


def test_a_direct_load_is_what_a_sweep_reads():
    ckpt = load_checkpoint(FIXTURES / "imagenet_new_s4nd_patch.pt")
    assert ckpt.model == "s4nd_official_convnext"
    assert ckpt.data_stats == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert ckpt.provenance["official"]["name"] == "timm/convnext_micro"
    assert max(logit_diffs(ckpt.build_model(), ckpt.path).values()) < 1e-4


def test_import_official_writes_a_checkpoint_with_the_same_logits(tmp_path, cli):
    out = tmp_path / "celeba.pt"
    code, stdout, err = cli("import-official", FIXTURES / "celeba_bandlimit.pt", "-o", out, "--mean", "0,0,0",
                            "--std", "1,1,1")
    assert code == 0, err
    assert "s4nd_official_convnext" in stdout and "new_s4nd_patch" in stdout
    ckpt = load_checkpoint(out)
    assert ckpt.config["bandlimit"] == 0.5
    assert max(logit_diffs(ckpt.build_model(), FIXTURES / "celeba_bandlimit.pt").values()) < 1e-4


def test_registry_names_fix_depths_and_dims():
    from resbench.checkpoints.official_convnext import _model_options

    for name, (depths, dims) in CONVNEXT_NAMES.items():
        size = {"video_size": [24, 224, 224]} if name.endswith("_3d") else {"img_size": [224, 224]}
        opts = _model_options({"_name_": name, **size})
        assert (opts["depths"], opts["dims"]) == (depths, dims)
    assert CONVNEXT_NAMES["timm/convnext_tiny"] == ([3, 3, 9, 3], [96, 192, 384, 768])


def _rewrite(tmp_path, edit, name="imagenet_new_s4nd_patch"):
    raw = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    raw = copy.deepcopy(raw)
    edit(raw)
    path = tmp_path / "edited.pt"
    torch.save(raw, path)
    return path


def _model(**changes):
    return lambda raw: raw["hyper_parameters"]["model"].update(changes)


def _layer(**changes):
    return lambda raw: raw["hyper_parameters"]["model"]["layer"].update(changes)


@pytest.mark.parametrize("edit, names", [
    (_model(stem_type="default"), ["stem_type", "default"]),
    (_model(fancy_option=1), ["model.fancy_option"]),
    (_model(output_stride=16), ["model.output_stride", "16"]),
    (_layer(trank=2), ["trank"]),
    (_layer(channels=2), ["channels"]),
    (_layer(_name_="s4"), ["stage_layers[0]", "s4"]),
    (_layer(transposed=False), ["transposed"]),
    (_layer(kernel="fancy"), ["kernel", "fancy"]),
    (_model(stem_layer={"bandlimit": 0.3}), ["bandlimit", "0.3"]),
    (_model(stage_layers=None), ["stage_layers"]),
    (_model(img_size=None), ["img_size"]),
    (lambda raw: raw["hyper_parameters"].update(encoder="position"), ["encoder", "position"]),
    (lambda raw: raw["state_dict"].update({"encoder.0.weight": torch.zeros(2, 2)}), ["encoder.0.weight"]),
    (lambda raw: raw["state_dict"].pop("model.head.fc.bias"), ["head.fc.bias"]),
    (_model(stem_channels=4), ["stem.stem", "shape"]),
])
def test_unreproducible_options_are_refused_by_name(edit, names, tmp_path, cli):
    path = _rewrite(tmp_path, edit)
    with pytest.raises(ResbenchError):
        load_checkpoint(path)
    code, _, err = cli("import-official", path, "-o", tmp_path / "out.pt")
    assert_user_error(code, err, *names)
    assert not (tmp_path / "out.pt").exists()


def test_training_only_options_are_accepted(tmp_path):
    path = _rewrite(tmp_path, _model(drop_head=0.3, head_init_scale=2.0, drop_path_rate=0.5))
    assert max(logit_diffs(load_checkpoint(path).build_model(), FIXTURES / "imagenet_new_s4nd_patch.pt").values()) \
        < 1e-4


def test_a_sweep_takes_an_official_convnext_file_directly(tmp_path, cli):
    from test_data import write_png

    for split in ("train", "val"):
        for k in range(10):  # the fixture's 10 classes
            write_png(tmp_path / "imgs" / split / f"c{k}" / "0.png", (64, 64), (25 * k, 100, 200 - 20 * k))
    out = tmp_path / "sweep"
    code, _, err = cli("sweep", FIXTURES / "imagenet_new_s4nd_patch.pt", "--dataset", "imagefolder", "--data-dir",
                       tmp_path / "imgs", "--test-res", "32,64,128", "--policy", "native", "--quiet", "-o", out)
    assert code == 0, err
    import pandas as pd

    df = pd.read_csv(out / "results.csv")
    assert set(df["model"]) == {"s4nd_official_convnext"}
    assert set(df["test_res"].astype(str)) == {"32", "64", "128"} and (df["n"] == 10).all()


def test_kernel_spectra_name_the_directions_of_a_channel_mixing_stem():
    from resbench.kernels import kernel_spectra

    ckpt = load_checkpoint(FIXTURES / "imagenet_new_s4nd_patch.pt")
    stem = [sp for sp in kernel_spectra(ckpt, oversample=4) if sp.layer == "stem.stem" and sp.axis == 0]
    # 8 output channels, each with a forward and a backward kernel over the 3 input channels
    assert [sp.group for sp in stem].count("forward") == 8 and [sp.group for sp in stem].count("backward") == 8


def test_a_sweep_sizes_batches_by_the_largest_feature_map():
    from resbench.sweep.batches import batch_size_for

    model = load_checkpoint(FIXTURES / "imagenet_new_s4nd_patch.pt").build_model()
    # the stem's 8 channels at 64x64 (32768) outweigh stage 0's MLP (4 x 8 channels at 16x16) and the rest
    assert model.activation_elements((64, 64)) == 8 * 64 * 64
    assert batch_size_for(model, (64, 64), 64, budget=3 * 12 * 4 * 8 * 64 * 64) == 3
    video = load_checkpoint(FIXTURES / "video_plain_convnext.pt").build_model()
    assert video.activation_elements((4, 32, 32)) == 4 * 8 * 2 * 16 * 16  # stage 0's MLP on the 2x16x16 grid


def test_a_given_training_size_sets_the_recorded_rate(tmp_path, cli):
    out = tmp_path / "o.pt"
    code, _, err = cli("import-official", FIXTURES / "imagenet_new_s4nd_patch.pt", "-o", out, "--train-res", "32")
    assert code == 0, err
    ckpt = load_checkpoint(out)
    assert ckpt.train_res == (32, 32) and ckpt.config["train_rate"] == 2.0  # img_size 64 seen at 32: rate 2
    assert ckpt.build_model().rates((128, 128)) == (0.5, 0.5)  # the rate stays img_size / size
    code, _, err = cli("import-official", FIXTURES / "imagenet_new_s4nd_patch.pt", "-o", out, "--train-res", "32x64")
    assert_user_error(code, err, "--train-res", "one rate")
