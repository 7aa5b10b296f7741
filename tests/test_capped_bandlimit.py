"""The capped bandlimit: below the training size no S4ND mode above the test grid's Nyquist,
alpha_eff = min(alpha, test/train) per axis; the sweep's default settings are on and off."""

import pytest
import torch

from conftest import S4ND_TINY
from resbench.models import bandlimit, create_model, set_bandlimit
from resbench.models.base import s4nd_layers
from resbench.resolution import DEFAULT_BANDLIMITS, bandlimit_alpha, kernel_rates, parse_bandlimit
from resbench.sweep import SweepConfig


def _layer(alpha=0.5, train_res=28, **config):
    torch.manual_seed(0)
    model = create_model("s4nd_iso", train_res=train_res, bandlimit=alpha, **{**S4ND_TINY, **config}).eval()
    return model, s4nd_layers(model)[0]


@pytest.mark.parametrize("alpha, test, want", [
    (0.5, (28, 28), [0.5, 0.5]),      # the training size: the trained alpha
    (0.5, (56, 56), [0.5, 0.5]),      # finer: unchanged
    (0.5, (21, 21), [0.5, 0.5]),      # 3/4 of training: the test grid holds alpha 0.5
    (0.5, (14, 14), [0.5, 0.5]),      # half: min(0.5, 0.5)
    (0.5, (7, 7), [0.25, 0.25]),      # a quarter: the cap binds (the older rule gave 0.125)
    (0.5, (7, 28), [0.25, 0.5]),      # per axis
    (0.2, (7, 7), [0.2, 0.2]),        # a small alpha the test grid holds
    (None, (14, 14), [0.5, 0.5]),     # trained without the mask: the cap alone below training
    (None, (28, 56), [None, None]),   # ... and nothing at or above it
])
def test_capped_alpha_per_axis_is_min_of_alpha_and_test_over_train(alpha, test, want):
    model, layer = _layer(alpha)
    with bandlimit(model, alpha, capped=True):
        got = layer.axis_alphas(kernel_rates((28, 28), test))
    assert got == pytest.approx(want) if want[0] is not None else got == want


def test_capped_never_cuts_below_the_scaled_rule_and_differs_from_it_below_training():
    model, layer = _layer(0.5)
    rates = kernel_rates((28, 28), (7, 7))
    with bandlimit(model, 0.5, adaptive=True):
        scaled = layer.axis_alphas(rates)
    with bandlimit(model, 0.5, capped=True):
        capped = layer.axis_alphas(rates)
    assert scaled == [0.125, 0.125] and capped == [0.25, 0.25]


def test_capped_uses_the_reference_grid_of_a_layer_trained_off_it():
    # an official-style layer: l_max is the 32 grid, trained at 16 (train_rate 2), alpha in units of the 32 grid
    model, layer = _layer(0.8, train_res=32)
    layer.train_rate = 2.0
    with bandlimit(model, 0.8, capped=True):
        assert layer.axis_alphas(2.0) == [0.8, 0.8]  # the training grid (16): as trained, even above its Nyquist
        assert layer.axis_alphas(4.0) == [0.25, 0.25]  # 8 px: that grid's Nyquist, 1/4 of the 32 grid's


def test_capped_changes_the_output_only_below_training_and_the_context_restores_the_layer():
    model, layer = _layer(0.5)
    x7, x28 = torch.randn(2, 1, 7, 7), torch.randn(2, 1, 28, 28)
    on7, on28 = model(x7), model(x28)
    with bandlimit(model, 0.5, capped=True):
        assert torch.equal(model(x28), on28)
        assert not torch.allclose(model(x7), on7)
    assert layer.bandlimit_capped is False and torch.equal(model(x7), on7)
    set_bandlimit(model, 0.5, capped=True)
    assert all(l.bandlimit_capped for l in s4nd_layers(model))


def test_a_random_mask_under_the_cap_keeps_only_its_modes_below_the_test_nyquist():
    model, layer = _layer(0.5, mask="random")
    kernel = layer.kernel[0]
    assert torch.equal(kernel.bandlimit_mask(0.5), kernel.random_mask)  # the alpha it stands for: as trained
    assert torch.equal(kernel.bandlimit_mask(0.25), kernel.random_mask * kernel._band(0.25))
    assert kernel.bandlimit_mask(0.25).sum() < kernel.random_mask.sum()


def test_the_sweep_defaults_are_on_and_off_and_capped_is_a_named_setting():
    assert DEFAULT_BANDLIMITS == ("on", "off")
    assert SweepConfig(checkpoints=[], out="").bandlimit == ["on", "off"]
    assert parse_bandlimit(" Capped ") == "capped"
    assert bandlimit_alpha("capped", 0.5) == 0.5 and bandlimit_alpha("capped", None) is None


def test_the_sweep_command_defaults_to_on_and_off():
    from resbench.cli.sweep import sweep_cmd

    option = next(p for p in sweep_cmd.params if p.name == "bandlimit")
    assert option.default == "on,off"


@pytest.mark.parametrize("rate", [0.5, 1.0, 2.0])
def test_s4nd_taps_are_integrals_of_the_continuous_kernel_over_each_cell(rate):
    # what the docs say: zero-order hold = cell averages (times the cell width), so S4ND needs no CKConv-style
    # cell averaging; checked against a midpoint rule over each cell [l step, (l+1) step), step = dt * rate
    from resbench.layers.s4nd import SSMKernel

    torch.manual_seed(0)
    kernel = SSMKernel(4, 8, 1, 1, "diag-lin", 0.1, 1.0).double()
    taps = kernel(6, rate)[0]  # (H, 6)
    step = (kernel.dt() * rate)[:, None, None]  # (H, 1, 1)
    sub = (torch.arange(2000, dtype=torch.float64) + 0.5) / 2000  # midpoints of 2000 sub-cells
    t = (torch.arange(6, dtype=torch.float64)[:, None] + sub) * step  # (H, 6, 2000) times inside each cell
    BC = (torch.view_as_complex(kernel.B)[0, 0] * torch.view_as_complex(kernel.C)[0])  # (H, N2)
    values = 2 * (BC[:, None, None, :] * torch.exp(kernel.A()[:, None, None, :] * t[..., None])).sum(-1).real
    integral = values.mean(-1) * step[..., 0]  # (H, 6): cell width x mean over the cell
    assert torch.allclose(taps, integral, rtol=1e-5, atol=1e-8)
