"""Tests of the model zoo: registry, configs, policies, bandlimit switch and each family's resolution rule."""

import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from resbench.errors import ResbenchError
from resbench.layers.s4nd import S4ND
from resbench.models import (bandlimit, bandlimit_of, count_params, create_model, list_models, model_config_class,
                             set_bandlimit)
from resbench.models import registry
from resbench.models.base import ResModel, s4nd_layers
from resbench.layers.rate_s4nd import RateS4ND

MODELS = ["ckconv", "conv2d_blurpool", "conv2d_iso", "conv2d_strided", "convnext", "s4nd_convnext",
          "s4nd_convnext_official", "s4nd_iso", "s4nd_official", "vit"]
S4ND_MODELS = ["s4nd_iso", "s4nd_convnext", "s4nd_convnext_official", "s4nd_official"]
SIZES = [(7, 7), (14, 14), (21, 21), (28, 28), (28, 20)]


def build(name, seed=0, **overrides):
    torch.manual_seed(seed)
    if name == "s4nd_official":  # the official layer config has no bandlimit by default; resbench's models 0.5
        overrides = {"bandlimit": 0.5, **overrides}
    return create_model(name, **overrides).eval()


def state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_list_models_is_sorted_and_complete():
    # MODELS: the image models that run at 7 to 28 pixels; the imported official ConvNeXts (4 stages: 32 pixels
    # and up) are checked against the official code in test_official_convnext.py
    assert list_models() == sorted(MODELS + ["conv1d_iso", "conv3d_iso", "s4nd_official_convnext",
                                             "s4nd_official_convnext3d"])


@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("name", MODELS)
def test_model_runs_at_every_size(name, in_chans):
    model = build(name, in_chans=in_chans)
    with torch.no_grad():
        for size in SIZES:
            y = model(torch.randn(2, in_chans, *size))
            assert y.shape == (2, 10), (name, size)
            assert torch.isfinite(y).all(), (name, size)


@pytest.mark.parametrize("name", MODELS)
def test_creation_is_deterministic_given_the_seed(name):
    assert state_equal(build(name, seed=3), build(name, seed=3))
    assert not state_equal(build(name, seed=3), build(name, seed=4))


@pytest.mark.parametrize("name", MODELS)
def test_config_dict_round_trips(name):
    model = build(name, train_res=[14, 10], num_classes=5)
    config = model.config_dict()
    assert json.loads(json.dumps(config)) == config
    again = create_model(name, **config)
    assert again.config_dict() == config
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in again.state_dict().items()} == shapes
    assert model.config_class is model_config_class(name)
    assert model(torch.randn(1, 1, 14, 10)).shape == (1, 5)


def test_create_model_rejects_unknown_name():
    with pytest.raises(ResbenchError, match="unknown model 'resnet9'.*s4nd_iso"):
        create_model("resnet9")
    with pytest.raises(ResbenchError, match="s4nd_iso"):
        model_config_class("resnet9")


def test_create_model_rejects_unknown_override():
    with pytest.raises(ResbenchError, match="'d_modle'"):
        create_model("s4nd_iso", d_modle=32)
    with pytest.raises(ResbenchError, match="'kernel_size'"):
        create_model("s4nd_convnext", kernel_size=7)  # a field of convnext, not of its S4ND twin


@pytest.mark.parametrize("overrides, match", [
    (dict(train_res=[14, 14, 14, 14]), "train_res"),
    (dict(train_res=[8, 0]), "train_res"),
    (dict(train_res=0), "train_res"),
    (dict(in_chans=0), "in_chans"),
    (dict(bandlimit=-0.5), "bandlimit"),
    (dict(d_state=0), "d_state"),
])
def test_bad_config_values_raise_user_errors(overrides, match):
    with pytest.raises(ResbenchError, match=match):
        create_model("s4nd_iso", **overrides)


def test_bad_family_specific_values_raise_user_errors():
    with pytest.raises(ResbenchError, match="num_heads"):
        create_model("vit", num_heads=5)
    with pytest.raises(ResbenchError, match="kernel_size"):
        create_model("ckconv", kernel_size=4)
    with pytest.raises(ResbenchError, match="depths"):
        create_model("convnext", depths=[2, 2], dims=[32, 64, 128])
    with pytest.raises(ResbenchError, match="train_res"):
        create_model("convnext", train_res=3)  # three stages need 4 pixels


def test_register_model_warns_on_a_name_clash(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    class Dummy(ResModel):
        pass

    with pytest.warns(UserWarning, match="'s4nd_iso' was already registered"):
        registry.register_model("s4nd_iso")(Dummy)
    assert Dummy.name == "s4nd_iso"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.register_model("dummy")(Dummy)  # a new name: no warning


@pytest.mark.parametrize("name", MODELS)
def test_policies_are_described(name):
    model = build(name)
    assert {"native", "resize-input"} <= set(model.POLICIES)
    for description in model.POLICIES.values():
        assert description and "\n" not in description
    with pytest.raises(ResbenchError, match="'bicubic-input'.*native"):
        model.forward_policy(torch.randn(1, 1, 14, 14), "bicubic-input")


@pytest.mark.parametrize("name", MODELS)
def test_resize_input_policy_resizes_to_the_training_size(name):
    model = build(name)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        resized = F.interpolate(x, size=(14, 14), mode="bilinear", align_corners=False, antialias=True)
        got = model.forward_policy(x, "resize-input")
        torch.testing.assert_close(got, model(resized), rtol=0, atol=0)
        torch.testing.assert_close(model.forward_policy(x, "native"), model(x), rtol=0, atol=0)
        assert not torch.allclose(got, model(x))


def test_wrong_input_channels_raise_user_error():
    model = build("conv2d_iso", in_chans=3)
    with pytest.raises(ResbenchError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 1, 14, 14))


@pytest.mark.parametrize("name", MODELS)
def test_has_bandlimit_matches_s4nd_layers(name):
    model = build(name)
    assert model.has_bandlimit == (name in S4ND_MODELS)
    assert bool(s4nd_layers(model)) == model.has_bandlimit


def test_conv2d_iso_has_no_bandlimit():
    model = build("conv2d_iso")
    assert model.has_bandlimit is False and bandlimit_of(model) is None
    set_bandlimit(model, None)  # switching off what is not there is harmless
    with pytest.raises(ResbenchError, match="no S4ND layers"):
        set_bandlimit(model, 0.5)


@pytest.mark.parametrize("name", S4ND_MODELS)
def test_bandlimit_switch_changes_outputs_not_weights(name):
    # layer scale 1 instead of 1e-6: the S4ND-ConvNeXt blocks then change the output visibly at init
    model = build(name, **({"ls_init_value": 1.0} if name == "s4nd_convnext" else {}))
    assert bandlimit_of(model) == 0.5
    x = torch.randn(2, 1, 28, 28)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        y_on = model(x)
        set_bandlimit(model, None)
        assert bandlimit_of(model) is None
        y_off = model(x)
        set_bandlimit(model, 0.5)
        y_again = model(x)
    assert not torch.allclose(y_on, y_off, atol=1e-4)
    torch.testing.assert_close(y_again, y_on, rtol=0, atol=0)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert model.config.bandlimit == 0.5  # the config records how the model was built


@pytest.mark.parametrize("name", S4ND_MODELS)
def test_bandlimit_context_manager_restores(name):
    model = build(name)
    layers = s4nd_layers(model)
    layers[0].bandlimit = 0.3  # a layer with its own value comes back to it, too
    with bandlimit(model, None):
        assert all(layer.bandlimit is None for layer in layers)
    assert layers[0].bandlimit == 0.3 and all(layer.bandlimit == 0.5 for layer in layers[1:])
    with pytest.raises(RuntimeError), bandlimit(model, 1.0):
        assert bandlimit_of(model) == 1.0
        raise RuntimeError("restored on error too")
    assert layers[0].bandlimit == 0.3


@pytest.mark.parametrize("bad", [-1.0, 0, True, "0.5"])
def test_set_bandlimit_rejects_bad_values(bad):
    with pytest.raises(ResbenchError, match="bandlimit"):
        set_bandlimit(build("s4nd_iso"), bad)


def rates_seen(model, x):
    """(l_max, input spatial size, rate) for every S4ND call during model(x)."""
    seen = []

    def spy(layer, args, kwargs):
        seen.append((layer.l_max, tuple(args[0].shape[2:]), list(kwargs["rate"])))

    hooks = [layer.register_forward_pre_hook(spy, with_kwargs=True) for layer in s4nd_layers(model)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


def test_s4nd_iso_native_rate_is_train_over_test_per_axis():
    model = build("s4nd_iso")
    seen = rates_seen(model, torch.randn(1, 1, 28, 20))
    assert len(seen) == 4
    for l_max, spatial, rate in seen:
        assert l_max == [14, 14] and spatial == (28, 20)
        assert rate == pytest.approx([0.5, 0.7])
    assert all(rate == [1.0, 1.0] for _, _, rate in rates_seen(model, torch.randn(1, 1, 14, 14)))


def test_s4nd_convnext_every_stage_runs_at_the_global_rate():
    model = build("s4nd_convnext")
    assert all(isinstance(b.conv_dw, RateS4ND) for s in model.convnext.stages for b in s.blocks)
    seen = rates_seen(model, torch.randn(1, 1, 28, 28))
    assert len(seen) == sum(model.config.depths)
    assert [tuple(l_max) for l_max, _, _ in seen] == [(14, 14)] * 2 + [(7, 7)] * 2 + [(3, 3)] * 2
    assert [spatial for _, spatial, _ in seen] == [(28, 28)] * 2 + [(14, 14)] * 2 + [(7, 7)] * 2
    # a stage's pixel is 2^i input pixels at every size: train/test, not its own rounded sizes (3/7 at stage 2)
    for size in [(21, 21), (7, 7), (35, 21), (28, 28)]:
        for l_max, spatial, rate in rates_seen(model, torch.randn(1, 1, *size)):
            assert rate == pytest.approx([14 / size[0], 14 / size[1]]), (size, l_max, spatial)


def test_s4nd_convnext_with_s4nd_downsampling_has_no_kernel_fixed_in_pixels():
    """downsample="s4nd": between stages an S4ND layer at the previous stage's grid, then 2x2 mean pooling;
    the only convolutions left are 1x1 (stem with patch 1, channel changes)."""
    model = build("s4nd_convnext", downsample="s4nd")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.kernel_size == (1, 1) and m.stride == (1, 1) for m in convs)
    seen = rates_seen(model, torch.randn(1, 1, 28, 28))
    # per stage: its downsampling layer (stages 1 and 2, on the grid before pooling), then its two blocks
    assert [tuple(l_max) for l_max, _, _ in seen] == ([(14, 14)] * 2 + [(14, 14)] + [(7, 7)] * 2
                                                      + [(7, 7)] + [(3, 3)] * 2)
    assert [spatial for _, spatial, _ in seen] == ([(28, 28)] * 2 + [(28, 28)] + [(14, 14)] * 2
                                                   + [(14, 14)] + [(7, 7)] * 2)
    for size in SIZES:
        assert model(torch.randn(2, 1, *size)).shape == (2, 10)
    with pytest.raises(ResbenchError, match="downsample"):
        create_model("s4nd_convnext", downsample="strided")
    # checkpoints written before the option existed keep timm's strided conv
    assert build("s4nd_convnext").config.downsample == "conv"


def test_s4nd_iso_toeplitz_and_fft_agree_at_the_training_size():
    model = build("s4nd_iso")
    x = torch.randn(4, 1, 14, 14)
    mixers = [m for m in model.modules() if isinstance(m, RateS4ND)]
    assert len(mixers) == 4
    out = {}
    with torch.no_grad():
        for method in ("toeplitz", "fft"):
            for mixer in mixers:
                mixer.method = method
            out[method] = model(x)
    assert not torch.equal(out["toeplitz"], torch.zeros_like(out["toeplitz"]))
    torch.testing.assert_close(out["toeplitz"], out["fft"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("size, grid", [((14, 14), (7, 7)), ((28, 20), (14, 10)), ((7, 7), (4, 4))])
def test_vit_position_grid_follows_the_input(size, grid):
    model = build("vit")
    assert model.pos_embed_grid(size) == grid
    tokens = []
    hook = model.vit.blocks[0].register_forward_pre_hook(lambda m, args: tokens.append(args[0].shape[1]))
    with torch.no_grad():
        model(torch.randn(1, 1, *size))
    hook.remove()
    assert tokens == [model.vit.num_prefix_tokens + grid[0] * grid[1]]
    assert tuple(model.vit.patch_embed.grid_size) == (7, 7)  # the stored embedding stays at train_res


def ckconv_layer():
    model = build("ckconv")
    convs = [m.mixer[0] for m in model.blocks]
    assert len(convs) == 4
    return convs[0]


def _sampled(conv, size):
    """The kernel the layer samples at `size`, rebuilt from its grid: MLP at clipped centres x coverage x scale."""
    positions, coverage, scale = conv.grid(size)
    values = conv.continuous_kernel(positions.clamp(-1, 1)) * coverage[..., None] * scale
    return positions, coverage, scale, values.permute(2, 0, 1).unsqueeze(1)  # (C, 1, kh, kw)


def test_ckconv_kernel_at_twice_the_size():
    conv = ckconv_layer()
    with torch.no_grad():
        k_train = conv.kernel((14, 14))  # (C, 1, 7, 7)
        k_test = conv.kernel((28, 28))  # (C, 1, 15, 15)
        positions, coverage, scale, rebuilt = _sampled(conv, (28, 28))
    assert k_train.shape == (64, 1, 7, 7) and k_test.shape == (64, 1, 15, 15)
    assert scale == 0.25
    torch.testing.assert_close(k_test, rebuilt)
    # the training taps' cells reach 3.5 px: the outer taps sit there, at half coverage, valued at the edge
    assert positions[0, 0].tolist() == pytest.approx([-3.5 / 3, -3.5 / 3])
    assert coverage[0, 7].item() == 0.5 and coverage[7, 7].item() == 1.0
    torch.testing.assert_close(k_test[..., 1:-1:2, 1:-1:2] * 4, k_train)  # every other inner tap on its grid


def test_ckconv_kernel_on_a_rectangular_grid():
    conv = ckconv_layer()
    with torch.no_grad():
        k = conv.kernel((28, 21))
        _, _, scale, rebuilt = _sampled(conv, (28, 21))
    assert k.shape[-2:] == (15, 11)  # taps whose cells overlap the 7-pixel support: 2 x 7 + 1 and 2 x 5 + 1
    assert scale == pytest.approx((14 / 28) * (14 / 21))
    torch.testing.assert_close(k, rebuilt)


@pytest.mark.parametrize("length", [5, 7, 10, 14, 21, 28, 35, 42, 49, 56])
def test_ckconv_taps_cover_the_same_support_at_every_ratio(length):
    """Integer ratio or not, the taps' cells cover the training kernel's 7 pixels exactly (sum of coverage
    times cell width), and none reaches past them; the old rule covered 5.3 of 7 pixels at 21."""
    from resbench.layers.ckconv import kernel_positions

    positions, coverage = kernel_positions(7, 14, length)
    s = length / 14
    assert (coverage.sum() / s).item() == pytest.approx(7.0, abs=1e-5)
    assert (positions.abs() * 3 - 0.5 / s).max().item() < 3.5  # every cell starts inside the support
    assert coverage.min().item() > 0 and torch.equal(coverage, coverage.flip(0))


def test_ckconv_kernel_shrinks_on_a_coarser_grid():
    conv = ckconv_layer()
    with torch.no_grad():
        k = conv.kernel((7, 7))
        k_train = conv.kernel((14, 14))
    assert k.shape[-2:] == (5, 5)  # offsets -4 .. 4 training pixels; the outer cells cover a quarter
    torch.testing.assert_close(k[..., 1:4, 1:4] / 4, k_train[..., 1::2, 1::2])


def test_ckconv_adaptive_kernel_is_the_cell_mean_below_the_training_size():
    conv = ckconv_layer()
    with torch.no_grad():
        assert torch.equal(conv.kernel((28, 28), adaptive=True), conv.kernel((28, 28)))  # finer: unchanged
        k = conv.kernel((7, 7), adaptive=True)
        plain = conv.kernel((7, 7))
        # the centre tap's cell spans training pixels -1 .. 1: the mean of the MLP there, x 4 (the value rule)
        m = conv.SUBSAMPLES
        sub = ((torch.arange(m) + 0.5) / m - 0.5) * 2 / 3  # a 2-pixel cell, in units of R = 3
        grid = torch.stack(torch.meshgrid(sub, sub, indexing="ij"), -1)
        centre = conv.continuous_kernel(grid).mean(dim=(0, 1)) * 4
    assert k.shape == plain.shape
    torch.testing.assert_close(k[:, 0, 2, 2], centre)
    assert not torch.allclose(k, plain)
    # a constant kernel is its own cell mean: the prefilter changes nothing then, on square and rectangular
    # grids alike (7x35: the finer axis's outer tap centre lies past the support edge, covered a quarter)
    const = ckconv_layer()
    with torch.no_grad():
        const.kernel_net[4].weight.zero_()
        const.kernel_net[4].bias.fill_(0.5)
        for size in [(7, 7), (7, 35), (35, 7), (5, 21), (10, 28)]:
            torch.testing.assert_close(const.kernel(size, adaptive=True), const.kernel(size))


def test_count_params():
    model = build("s4nd_iso")
    assert count_params(model) == sum(math.prod(p.shape) for p in model.parameters())
    assert count_params(build("s4nd_iso", d_model=32)) < count_params(model)


def test_s4nd_layers_are_the_real_layer():
    model = build("s4nd_convnext")
    layers = s4nd_layers(model)
    assert len(layers) == 6 and all(isinstance(layer, S4ND) for layer in layers)
    assert [layer.d_model for layer in layers] == [32, 32, 64, 64, 128, 128]


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    model = build(name).train()
    model(torch.randn(4, 1, 14, 14)).logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_fast_dropout_keeps_the_expected_fraction_and_scale():
    from resbench.layers.blocks import FastDropout

    torch.manual_seed(0)
    drop = FastDropout(0.25).train()
    x = torch.ones(200_000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    y.sum().backward()  # the gradient goes through the same mask
    assert torch.equal(x.grad != 0, kept)
    assert torch.equal(drop.eval()(x), x)


def test_vit_pads_odd_sizes_with_the_border_not_zero():
    model = build("vit")
    x = torch.full((2, 1, 7, 7), -0.8)  # a normalised background, as Fashion-MNIST's is about -0.8
    x[:, :, 2:5, 2:5] = 1.5
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1), mode="replicate")  # the 8x8 image the patches see
    with torch.no_grad():
        assert torch.allclose(model(x), model.vit(padded), atol=1e-6)
        assert not torch.allclose(model(x), model.vit(torch.nn.functional.pad(x, (0, 1, 0, 1))), atol=1e-4)
