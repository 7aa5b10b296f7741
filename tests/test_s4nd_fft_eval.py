"""The FFT path without autograd (s4nd_ops.fft_evaluate): the same layer as the autograd FFT path (conv_fft, D
apart), in every layout, group size and precision it is taken in, and only where it is taken."""

import pytest
import torch

from resbench.layers import s4nd as s4nd_module
from resbench.layers import s4nd_ops
from resbench.layers.blocks import ChannelNorm
from resbench.layers.resolution_aware import cached_kernels
from resbench.layers.s4nd import S4ND

SPATIAL = {1: (150,), 2: (12, 17), 3: (5, 6, 7)}


def layer(dim, transposed=True, **kwargs):
    torch.manual_seed(dim)
    spatial = SPATIAL[dim]
    l = S4ND(12, 8, dim=dim, l_max=[s // 2 + 1 for s in spatial], bandlimit=0.5, transposed=transposed, **kwargs)
    with torch.no_grad():
        l.D.normal_()  # a skip term well away from zero, so folding it in is checked
    return l.eval()


def norm_of(width):
    torch.manual_seed(1)
    norm = ChannelNorm(width)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    return norm


def reference(l, x, rate, norm=None):
    """The autograd FFT path (conv_fft, then D u, the activation and the output linear), as in training."""
    with torch.enable_grad():
        if norm is None:
            return l(x, rate=rate, method="fft").detach()
        return (x + l(norm(x), rate=rate, method="fft")).detach()


def counting(monkeypatch):
    calls = []
    real = s4nd_module.fft_evaluate

    def wrapped(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)
    monkeypatch.setattr(s4nd_module, "fft_evaluate", wrapped)
    return calls


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("transposed", [True, False])
@pytest.mark.parametrize("rate", [1.0, 0.6, 1.7])
def test_forward_matches_the_autograd_path(dim, transposed, rate, monkeypatch):
    calls = counting(monkeypatch)
    l = layer(dim, transposed)
    x = torch.randn(3, 12, *SPATIAL[dim])
    x = x if transposed else x.movedim(1, -1)
    want = reference(l, x, rate)
    with torch.inference_mode():
        got = l(x, rate=rate, method="fft")
    assert calls, "the grouped FFT path was not taken"
    assert got.shape == want.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_prenorm_residual_matches_the_unfused_block(dim, monkeypatch):
    calls = counting(monkeypatch)
    l, norm = layer(dim), norm_of(12)
    x = torch.randn(4, *SPATIAL[dim], 12).movedim(-1, 1)  # channels last in memory, as the models keep it
    want = reference(l, x, 0.8, norm)
    with torch.inference_mode():
        got = l.prenorm_residual(x, norm, rate=0.8, method="fft")
    assert calls
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("budget", [1, 700, 5000])
def test_groups_of_images_give_the_whole_batch(budget, monkeypatch):
    l, norm = layer(2), norm_of(12)
    x = torch.randn(7, 12, *SPATIAL[2])
    with torch.inference_mode():
        whole = l.prenorm_residual(x, norm, method="fft")
        monkeypatch.setattr(s4nd_ops, "FFT_CHUNK_ELEMENTS", budget)  # groups of 1 to a few images
        grouped = l.prenorm_residual(x, norm, method="fft")
    torch.testing.assert_close(grouped, whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dim", [1, 2])
def test_bf16_transforms_in_float32_and_output_dtypes(dim):
    l, norm = layer(dim), norm_of(12)
    x = torch.randn(3, 12, *SPATIAL[dim])
    want, want_block = reference(l, x, 1.0), reference(l, x, 1.0, norm)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = l(x, method="fft")
        block = l.prenorm_residual(x, norm, method="fft")
    assert got.dtype == torch.bfloat16  # as the output linear under autocast
    assert block.dtype == torch.float32  # x + output promotes
    scale = want.abs().max().item()
    # bf16 rounding of the linear's inputs and weights: a few 1e-3 of the output's range, not more
    assert (got.float() - want).abs().max().item() < 0.02 * scale
    assert (block - want_block).abs().max().item() < 0.02 * want_block.abs().max().item()
    assert (got.float() - want).abs().max().item() > 0  # it did run in bf16


def test_spectrum_holds_the_kernel_and_d():
    l = layer(1)
    L = SPATIAL[1][0]
    with torch.no_grad():
        ks = l.kernels((L,), 1.0)
        spectrum, sizes = s4nd_ops.kernel_spectrum(ks, (L,), l.D.view(-1))
        kernel, full_sizes = s4nd_ops.full_kernel(ks, (L,))
    assert sizes == full_sizes == [L + ks[0].shape[-1]]
    back = torch.fft.irfft(spectrum, n=sizes[0], dim=-1)  # (H, n)
    expected = kernel.clone()
    expected[:, 0] += l.D.view(-1)
    torch.testing.assert_close(back, expected, rtol=1e-5, atol=1e-6)


def test_spectrum_is_cached_under_cached_kernels(monkeypatch):
    l = layer(1)
    x = torch.randn(2, 12, *SPATIAL[1])
    built = []
    real = s4nd_module.kernel_spectrum
    monkeypatch.setattr(s4nd_module, "kernel_spectrum", lambda *a: built.append(1) or real(*a))
    with torch.inference_mode(), cached_kernels(l):
        first = l(x, method="fft")
        second = l(x, method="fft")
        l(x, rate=0.5, method="fft")  # another rate: another spectrum
    assert len(built) == 2
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_not_taken_with_autograd_several_channels_or_linear(monkeypatch):
    calls = counting(monkeypatch)
    x = torch.randn(2, 12, *SPATIAL[1])
    l = layer(1)
    with torch.enable_grad():
        l(x, method="fft")
    l.train()
    l.dropout = torch.nn.Dropout(0.1)
    with torch.inference_mode():
        l(x, method="fft")  # dropout to draw in training mode
    with torch.inference_mode():
        layer(1, channels=2)(x, method="fft")
        layer(1, linear=True)(x, method="fft")
    assert calls == []


def test_auto_rule_by_axes_and_device():
    from resbench.layers.s4nd import _method, auto_toeplitz_max_len

    cpu = torch.device("cpu")
    assert _method("auto", (128,), cpu) == "toeplitz" and _method("auto", (129,), cpu) == "fft"
    assert _method("auto", (224, 224), cpu) == "toeplitz" and _method("auto", (28, 513), cpu) == "fft"
    assert _method("auto", (16, 192, 192), cpu) == "toeplitz" and _method("auto", (8, 600, 600), cpu) == "fft"
    # another device keeps every axis up to 128 (its crossover is unmeasured)
    assert [auto_toeplitz_max_len(d, "cuda") for d in (1, 2, 3)] == [128, 128, 128]
    assert _method("auto", (224, 224), torch.device("meta")) == "fft"
    assert _method("toeplitz", (4000,), cpu) == "toeplitz"
    with pytest.raises(Exception, match="expected 'toeplitz', 'fft' or 'auto'"):
        _method("fast", (28,), cpu)


@pytest.mark.parametrize("dim, spatial, fft", [(1, (200,), True), (2, (140, 30), False), (1, (128,), False)])
def test_auto_takes_the_rule(dim, spatial, fft, monkeypatch):
    calls = counting(monkeypatch)
    torch.manual_seed(0)
    l = S4ND(8, 4, dim=dim, l_max=[s // 4 for s in spatial], bandlimit=0.5).eval()
    x = torch.randn(2, 8, *spatial)
    with torch.inference_mode():
        auto = l(x)
        chosen = l(x, method="fft" if fft else "toeplitz")
    assert bool(calls) == fft
    torch.testing.assert_close(auto, chosen, rtol=0, atol=0)
