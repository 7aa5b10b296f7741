"""The random-mask control arm of the bandlimit ablation: as many modes as the band mask, kept in the checkpoint."""

import pytest
import torch

from conftest import S4ND_TINY, assert_user_error, tiny_config, tiny_train
from resbench.checkpoints import load_checkpoint
from resbench.errors import ResbenchError
from resbench.models import bandlimit, create_model
from resbench.models.base import s4nd_layers

TINY = [arg for key, value in S4ND_TINY.items() for arg in ("--set", f"{key}={value}")]


def _kernels(model):
    return [k for layer in s4nd_layers(model) for k in layer.kernel]


def test_the_random_mask_keeps_as_many_modes_per_channel_as_the_band_mask():
    torch.manual_seed(0)
    model = create_model("s4nd_iso", train_res=14, mask="random", bandlimit=0.5)
    for kernel in _kernels(model):
        band = kernel._band(0.5)  # (H, N2)
        assert torch.equal(kernel.random_mask.sum(-1), band.sum(-1))
        assert torch.equal(kernel.bandlimit_mask(0.5), kernel.random_mask)
        assert torch.equal(kernel.bandlimit_mask(None), torch.ones_like(band))  # off: no mask at all
    # not the band mask in disguise: over the model, most kept modes are others than the band's
    overlap = sum((k.random_mask * k._band(0.5)).sum() for k in _kernels(model))
    assert overlap < 0.6 * sum(k.random_mask.sum() for k in _kernels(model))


def test_the_random_mask_is_fixed_by_the_seed_and_reproduced_from_the_state_dict():
    def build(seed):
        torch.manual_seed(seed)
        return create_model("s4nd_iso", train_res=7, mask="random", **S4ND_TINY).eval()

    a, b, c = build(0), build(0), build(1)
    masks = [[k.random_mask for k in _kernels(m)] for m in (a, b, c)]
    assert all(torch.equal(x, y) for x, y in zip(masks[0], masks[1]))
    assert any(not torch.equal(x, y) for x, y in zip(masks[0], masks[2]))
    c.load_state_dict(a.state_dict())  # the buffer travels with the weights
    x = torch.randn(3, 1, 7, 7)
    assert torch.equal(a(x), c(x))
    with bandlimit(a, None):  # off: the mask no longer applies
        assert not torch.allclose(a(x), c(x))


def test_a_band_mask_model_has_no_random_buffer():
    model = create_model("s4nd_iso", train_res=7, **S4ND_TINY)
    assert not any("random_mask" in key for key in model.state_dict())


@pytest.mark.parametrize("overrides, words", [({"mask": "random", "bandlimit": None}, ["mask='random'", "bandlimit"]),
                                              ({"mask": "noise"}, ["mask='noise'", "band, random"])])
def test_a_random_mask_needs_a_bandlimit_and_a_known_name(overrides, words):
    with pytest.raises(ResbenchError) as e:
        create_model("s4nd_iso", train_res=7, **S4ND_TINY, **overrides)
    assert all(w in str(e.value) for w in words)


def test_a_trained_random_mask_checkpoint_says_its_arm_and_evaluates_with_its_mask(tmp_path):
    from resbench.sweep import recipe

    cfg = tiny_config("s4nd_iso", schedule=[(7, 1)], bandlimit=0.5, mask="random")
    trained = tiny_train(cfg, tmp_path / "rand.pt")
    ckpt = load_checkpoint(tmp_path / "rand.pt")
    assert ckpt.config["mask"] == "random" and ckpt.provenance["mask"] == "random"
    assert "mask=random" in recipe(ckpt)
    model = ckpt.build_model()
    for got, want in zip(_kernels(model), _kernels(trained.build_model())):
        assert torch.equal(got.random_mask, want.random_mask)


def test_train_mask_option(tmp_path, cli):
    threads = torch.get_num_threads()
    try:
        out = tmp_path / "m.pt"
        code, _, err = cli("train", "conv2d_iso", "--dataset", "synthetic", "--mask", "random", "-o", out)
        assert_user_error(code, err, "--mask", "conv2d_iso")
        code, _, err = cli("train", "s4nd_iso", "--dataset", "synthetic", "--bandlimit", "off", "--mask", "random",
                           *TINY, "-o", out)
        assert_user_error(code, err, "mask='random'", "bandlimit")
        code, _, err = cli("train", "s4nd_iso", "--dataset", "synthetic", "--train-res", 7, "--epochs", 1,
                           "--limit", 32, "--test-limit", 16, "--bandlimit", 0.5, "--mask", "random", *TINY,
                           "--quiet", "-o", out)
        assert code == 0, err
        assert load_checkpoint(out).config["mask"] == "random"
    finally:
        torch.set_num_threads(threads)
