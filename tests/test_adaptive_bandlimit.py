"""The adaptive bandlimit: the trained alpha scaled by min(1, test/train) per axis (anti-aliased downsampling)."""

import math

import pytest
import torch

from resbench.layers.s4nd import S4ND
from resbench.models import bandlimit, create_model


def layer(kernel="diag", alpha=0.5):
    torch.manual_seed(0)
    return S4ND(4, 16, dim=2, l_max=(12, 20), bidirectional=True, bandlimit=alpha, dt_min=0.05, dt_max=0.5,
                kernel=kernel).eval()


@pytest.mark.parametrize("kernel", ["diag", "dplr"])
@pytest.mark.parametrize("rate", [(1.0, 1.0), (0.5, 0.25), (2.0, 1.5), (3.0, 0.5), (1.25, 1.0)])
def test_adaptive_equals_a_fixed_alpha_scaled_per_axis(kernel, rate):
    s4 = layer(kernel)
    spatial = tuple(max(2, round(n / r)) for n, r in zip(s4.l_max, rate))
    s4.bandlimit_adaptive = True
    adaptive = s4.kernels(spatial, rate)
    for axis, (r, k) in enumerate(zip(rate, adaptive)):
        fixed = s4.kernels(spatial, rate, bandlimit=0.5 * min(1.0, 1.0 / r))[axis]
        assert torch.equal(k, fixed), (axis, r)
    s4.bandlimit_adaptive = False
    plain = s4.kernels(spatial, rate)
    for r, a, p in zip(rate, adaptive, plain):
        assert torch.equal(a, p) == (r <= 1.0)  # at or above the training size nothing changes


def test_adaptive_masks_exactly_the_modes_above_the_scaled_cutoff():
    s4 = layer()
    kern = s4.kernel[0]
    freqs = kern.dt()[:, None] * kern.A().imag.abs() / (2 * math.pi)  # (H, N2) cycles per reference step
    for r in (1.0, 2.0, 4.0):
        kept = kern.bandlimit_mask(0.5 * min(1.0, 1 / r)).bool()
        assert torch.equal(kept, freqs < 0.25 / max(1.0, r))
        assert kept.sum() <= kern.bandlimit_mask(0.5).sum()


def test_the_official_training_rate_is_the_adaptive_reference():
    s4 = layer()
    s4.bandlimit_adaptive, s4.train_rate = True, 2.0  # trained at rate 2: rate 2 is the training grid
    assert s4.axis_alphas((2.0, 2.0)) == [0.5, 0.5]
    assert s4.axis_alphas((4.0, 1.0)) == [0.25, 0.5]


def test_an_explicit_alpha_overrides_the_adaptive_setting():
    s4 = layer()
    s4.bandlimit_adaptive = True
    assert s4.axis_alphas((3.0, 3.0), bandlimit=0.4) == [0.4, 0.4]
    assert s4.axis_alphas((3.0, 3.0), bandlimit=None) == [None, None]


def test_model_context_sets_and_restores_the_adaptive_flag():
    model = create_model("s4nd_iso", d_model=8, n_layers=2, d_state=4, train_res=14, bandlimit=0.5).eval()
    x = torch.randn(2, 1, 7, 7)
    with torch.no_grad():
        fixed = model(x)
        with bandlimit(model, 0.5, adaptive=True):
            adaptive = model(x)
            assert all(m.bandlimit_adaptive for m in model.modules() if isinstance(m, S4ND))
        assert not any(m.bandlimit_adaptive for m in model.modules() if isinstance(m, S4ND))
        assert torch.equal(model(x), fixed)
        with bandlimit(model, 0.25):  # the adaptive cutoff at half the training size is alpha / 2
            halved = model(x)
    assert not torch.equal(adaptive, fixed)
    assert torch.allclose(adaptive, halved)


def test_model_context_makes_ckconv_kernels_adaptive_and_restores_them():
    model = create_model("ckconv", d_model=8, n_layers=2, train_res=14).eval()
    convs = [m.mixer[0] for m in model.blocks]
    x = torch.randn(2, 1, 7, 7)
    with torch.no_grad():
        plain = model(x)
        with bandlimit(model, None, adaptive=True):
            assert all(conv.adaptive for conv in convs)
            adaptive = model(x)
            at_train = model(torch.randn(2, 1, 14, 14))  # runs; at the training size nothing is filtered
        assert not any(conv.adaptive for conv in convs)
        assert torch.equal(model(x), plain)
    assert not torch.allclose(adaptive, plain)
    assert at_train.shape == (2, 10)
