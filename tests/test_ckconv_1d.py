"""CKConv on signals: the N-d continuous depthwise conv, its FFT path, 1-d resampling and the unchanged 2-d model."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from resbench.errors import ResbenchError
from resbench.layers.ckconv import (FFT_TAPS, ContinuousDepthwiseConv, ContinuousDepthwiseConv2d, fft_conv1d,
                                    kernel_positions)
from resbench.models import bandlimit, create_model

REPO = Path(__file__).resolve().parents[1]
# Logits of checkpoints/ckconv_14.pt made by the 2-d-only layer, before it took 1-d signals: for each case in order,
# a (batch, 1, *size) input drawn from torch.Generator().manual_seed(seed), with the adaptive kernels on or off.
REFERENCE = REPO / "tests" / "fixtures" / "ckconv_14_logits.pt"


def layer(taps, train_len, channels=4, seed=0):
    torch.manual_seed(seed)
    return ContinuousDepthwiseConv(channels, taps, (train_len,))


@pytest.mark.parametrize("length", [1, 7, 64, 300, 1001])
@pytest.mark.parametrize("taps", [3, 33, 65, 199, 2001])
def test_fft_conv_equals_the_direct_conv(length, taps):
    torch.manual_seed(0)
    x, k = torch.randn(2, 3, length, dtype=torch.float64), torch.randn(3, 1, taps, dtype=torch.float64)
    direct = F.conv1d(x, k, padding=taps // 2, groups=3)
    torch.testing.assert_close(fft_conv1d(x, k), direct, rtol=1e-10, atol=1e-10)
    got = fft_conv1d(x.float(), k.float())  # float32, the models' precision: a few ulps of the output's scale
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, direct.float(), rtol=1e-4, atol=1e-4 * direct.abs().max().item())


def test_long_1d_kernels_take_the_fft_short_ones_the_direct_conv():
    x = torch.randn(2, 4, 300)
    with torch.no_grad():
        for taps in (FFT_TAPS - 1, FFT_TAPS + 1, 199):
            conv = layer(taps, 300)
            k = conv.kernel((300,))
            direct = F.conv1d(x, k, padding=taps // 2, groups=4)
            if taps < FFT_TAPS:
                assert torch.equal(conv(x), direct)
            else:
                assert torch.equal(conv(x), fft_conv1d(x, k))
                torch.testing.assert_close(conv(x), direct, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 1.5, 0.5, 0.75])
def test_1d_kernel_keeps_its_support_in_training_samples(scale):
    conv = layer(21, 400)
    length = int(400 * scale)
    positions, coverage, value_scale = conv.grid((length,))
    with torch.no_grad():
        k = conv.kernel((length,))  # (C, 1, k)
        rebuilt = conv.continuous_kernel(positions.clamp(-1, 1)) * coverage[:, None] * value_scale  # (k, C)
    assert k.shape[:2] == (4, 1) and k.shape[-1] % 2 == 1 and abs(k.shape[-1] - scale * 21) <= 2
    assert (coverage.sum() / scale).item() == pytest.approx(21.0, abs=1e-5)  # the same 21 training samples
    assert value_scale == pytest.approx(1 / scale)
    torch.testing.assert_close(k[:, 0], rebuilt.T)
    if scale == 2:  # every other inner tap sits on a training tap: the same value, halved
        torch.testing.assert_close(k[..., 1:-1:2] * 2, conv.kernel((400,)))


def test_a_constant_signal_gives_the_same_response_at_every_length():
    conv = layer(201, 400)  # the default taps at L=400: long, so through the FFT
    with torch.no_grad():
        at_train = conv(torch.ones(1, 4, 400))[0, :, 200]
        for length in (800, 600):
            y = conv(torch.ones(1, 4, length))  # (1, C, L)
            torch.testing.assert_close(y[0, :, length // 2], at_train, rtol=1e-3, atol=1e-4)


def test_1d_adaptive_kernel_is_the_mlp_mean_over_each_taps_cell():
    conv = layer(21, 400)
    R = 10  # (taps - 1) / 2 training samples
    with torch.no_grad():
        assert torch.equal(conv.kernel((800,), adaptive=True), conv.kernel((800,)))  # finer: unchanged
        for length in (200, 300):  # cells of 2 and 4/3 training samples
            k = conv.kernel((length,), adaptive=True)[:, 0]  # (C, k)
            assert not torch.allclose(k, conv.kernel((length,))[:, 0])
            centres = kernel_positions(21, 400, length)[0].double() * R  # (k,) training samples
            for m, tol in ((conv.SUBSAMPLES, 1e-6), (512, 1e-3)):  # the layer's quadrature, and a dense one
                # m midpoints across each tap's cell of 400 / length training samples; 0 outside the support
                points = centres[:, None] + ((torch.arange(m, dtype=torch.float64) + 0.5) / m - 0.5) * 400 / length
                inside = (points.abs() <= R + 0.5).float()  # (k, m)
                values = conv.continuous_kernel((points / R).clamp(-1, 1).float()[..., None])  # (k, m, C)
                brute = (values * inside[..., None]).mean(1).T * (400 / length)  # (C, k)
                torch.testing.assert_close(k, brute, rtol=0, atol=tol * brute.abs().max().item())


def test_the_layer_takes_three_axes_and_keeps_its_old_name():
    assert ContinuousDepthwiseConv2d is ContinuousDepthwiseConv
    torch.manual_seed(0)
    conv = ContinuousDepthwiseConv(3, 5, (4, 8, 8))
    assert conv.kernel_net[0].in_features == 3
    with torch.no_grad():
        assert conv(torch.randn(2, 3, 8, 16, 16)).shape == (2, 3, 8, 16, 16)
        assert conv.kernel((8, 16, 16)).shape == (3, 1, 11, 11, 11)
        assert conv.grid((8, 16, 16))[2] == pytest.approx(1 / 8)  # 1/2 per axis
    with pytest.raises(ResbenchError, match="1, 2 or 3"):
        ContinuousDepthwiseConv(3, 5, (4, 4, 4, 4))


def test_ckconv_model_runs_on_signals_at_any_length():
    torch.manual_seed(0)
    model = create_model("ckconv", train_res=[400], d_model=8, n_layers=2).eval()
    convs = [m for m in model.modules() if isinstance(m, ContinuousDepthwiseConv)]
    assert model.dims == 1 and len(convs) == 2 and convs[0].taps == 201
    x = torch.randn(3, 1, 800)
    with torch.no_grad():
        for length in (200, 300, 400, 800):
            out = model(x[..., :length])
            assert out.shape == (3, 10) and torch.isfinite(out).all(), length
        coarse, fine = model(x[..., :200]), model(x)
        with bandlimit(model, None, adaptive=True):  # the sweep's adaptive setting reaches the 1-d layers
            assert not torch.allclose(model(x[..., :200]), coarse)
            assert torch.equal(model(x), fine)  # above the training length nothing is filtered
    model.train()(x[..., :300]).logsumexp(-1).sum().backward()  # gradients pass the FFT
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_ckconv_refuses_inputs_of_other_axes():
    signal = create_model("ckconv", train_res=[400], d_model=4, n_layers=1)
    image = create_model("ckconv", train_res=14, d_model=4, n_layers=1)
    with pytest.raises(ResbenchError, match=r"\(B, 1, L\)"):
        signal(torch.randn(2, 1, 14, 14))
    with pytest.raises(ResbenchError, match=r"\(B, 1, H, W\)"):
        image(torch.randn(2, 1, 400))
    with pytest.raises(ResbenchError, match="3-d"):
        create_model("ckconv", train_res=[4, 8, 8])


def test_the_2d_checkpoint_computes_as_before():
    from resbench.checkpoints import load_checkpoint

    ref = torch.load(REFERENCE, weights_only=True)
    model = load_checkpoint(REPO / "checkpoints" / "ckconv_14.pt").build_model().eval()
    g = torch.Generator().manual_seed(ref["seed"])
    inputs = {}
    with torch.no_grad():
        for case in ref["cases"]:
            size = tuple(case["size"])
            if size not in inputs:
                inputs[size] = torch.randn(ref["batch"], 1, *size, generator=g)
            with bandlimit(model, None, adaptive=case["adaptive"]):
                got = model(inputs[size])
            torch.testing.assert_close(got, case["logits"], rtol=1e-6, atol=1e-6, msg=str(case["size"]))
