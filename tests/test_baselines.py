"""Baselines built or trained for resolution change: blur-pooled downsampling (and its strided control),
multi-scale training of Conv2D-ISO."""

import pytest
import torch

from conftest import CONV_TINY, assert_user_error, tiny_config, tiny_train
from resbench.checkpoints import load_checkpoint
from resbench.errors import ResbenchError
from resbench.layers.blurpool import BlurPool2d, binomial_filter
from resbench.models import create_model, list_models
from resbench.train import parse_multiscale


def test_binomial_filter_is_pascals_row_normalised():
    assert torch.allclose(binomial_filter(3), torch.tensor([1.0, 2, 1])[:, None] * torch.tensor([1.0, 2, 1]) / 16)
    assert torch.allclose(binomial_filter(5)[2], torch.tensor([1.0, 4, 6, 4, 1]) * 6 / 256)


@pytest.mark.parametrize("side", [1, 2, 7, 14, 15])
def test_blurpool_halves_each_side_rounding_up_and_keeps_a_constant(side):
    x = torch.full((2, 3, side, side), 0.7)
    y = BlurPool2d(3)(x)
    assert y.shape == (2, 3, (side + 1) // 2, (side + 1) // 2)
    assert torch.allclose(y, torch.full_like(y, 0.7))


def test_blurpool_removes_the_nyquist_stripe_a_plain_stride_aliases():
    # a stripe at the grid's Nyquist frequency: a plain stride-2 subsample turns it into a constant whose sign
    # depends on the shift by one pixel (aliasing); the [1, 2, 1] blur cancels it whatever the shift
    stripe = torch.tensor([1.0, -1.0] * 8).expand(1, 1, 16, 16)
    shifted = stripe.roll(1, dims=-1)
    assert torch.equal(stripe[..., ::2, ::2], -shifted[..., ::2, ::2])
    blur = BlurPool2d(1)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # away from the replicated edges
    assert blur(stripe)[inner].abs().max() < 1e-6 and blur(shifted)[inner].abs().max() < 1e-6


def test_the_blurpool_family_and_its_strided_control_differ_only_in_the_blur():
    assert {"conv2d_blurpool", "conv2d_strided"} <= set(list_models())
    torch.manual_seed(0)
    blur = create_model("conv2d_blurpool", train_res=7).eval()
    strided = create_model("conv2d_strided", train_res=7).eval()
    shapes = {k: v.shape for k, v in blur.state_dict().items()}
    assert shapes == {k: v.shape for k, v in strided.state_dict().items()}  # the filter is no weight
    strided.load_state_dict(blur.state_dict())
    x = torch.randn(2, 1, 14, 14)
    assert not torch.allclose(blur(x), strided(x))
    for side in (1, 4, 7, 21, 28):
        assert blur(torch.randn(2, 1, side, side)).shape == (2, 10)
    with pytest.raises(ResbenchError, match="kernel_size=4"):
        create_model("conv2d_blurpool", train_res=7, kernel_size=4)


@pytest.mark.parametrize("text, sched, words", [
    ("4,5", [(7, 3)], ["--multiscale 4,5", "7"]),
    ("7", [(7, 3)], ["two or more"]),
    ("4,7", [(4, 1), (7, 1)], ["--schedule"]),
    ("2,7", [(7, 3)], ["--multiscale size 2"]),
])
def test_multiscale_sizes_are_checked(text, sched, words):
    with pytest.raises(ResbenchError) as e:
        parse_multiscale(text, sched, 2)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_multiscale_parses_and_keeps_the_given_order():
    assert parse_multiscale("4, 5,7,5", [(7, 3)], 2) == [4, 5, 7]


def test_multiscale_training_draws_each_batch_at_one_of_the_sizes_and_records_them(tmp_path):
    from resbench.models.base import ResModel
    from resbench.sweep import recipe, training_sizes

    seen = []

    def record(module, args):
        if isinstance(module, ResModel) and module.training:
            seen.append(tuple(args[0].shape[2:]))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        cfg = tiny_config("conv2d_iso", schedule=[(7, 2)], limit=256)
        cfg.multiscale, cfg.batch_size = [4, 7], 16
        tiny_train(cfg, tmp_path / "ms.pt")
    finally:
        handle.remove()
    assert len(seen) == 2 * 16 and set(seen) == {(4, 4), (7, 7)}
    ckpt = load_checkpoint(tmp_path / "ms.pt")
    assert ckpt.provenance["multiscale"] == [4, 7] and ckpt.train_res == (7, 7)
    assert training_sizes(ckpt) == {(4, 4), (7, 7)}
    assert recipe(ckpt).endswith("multiscale=4,7")


def test_one_size_training_draws_as_before(tmp_path):
    # the size draw has its own generator: a run without --multiscale trains exactly as it did without it
    a = tiny_train(tiny_config("conv2d_iso", schedule=[(7, 1)]), tmp_path / "a.pt")
    cfg = tiny_config("conv2d_iso", schedule=[(7, 1)])
    cfg.multiscale = [7, 7]  # two draws of the same size: the same batches, another generator consumed
    b = tiny_train(cfg, tmp_path / "b.pt")
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_train_multiscale_option(tmp_path, cli):
    threads = torch.get_num_threads()
    tiny = [arg for key, value in CONV_TINY.items() for arg in ("--set", f"{key}={value}")]
    try:
        out = tmp_path / "m.pt"
        code, _, err = cli("train", "conv2d_iso", "--dataset", "synthetic", "--train-res", 7, "--multiscale", "4,5",
                           *tiny, "-o", out)
        assert_user_error(code, err, "--multiscale 4,5", "7")
        code, _, err = cli("train", "conv2d_iso", "--dataset", "synthetic", "--train-res", 7, "--epochs", 1,
                           "--multiscale", "4,7", "--limit", 32, "--test-limit", 16, *tiny, "--quiet", "-o", out)
        assert code == 0, err
        assert load_checkpoint(out).provenance["train_config"]["multiscale"] == [4, 7]
    finally:
        torch.set_num_threads(threads)
