"""One rate rule: the rates plot-kernels samples kernels at are the rates the models' layers run with."""

import pytest
import torch

from resbench.checkpoints import Checkpoint
from resbench.layers.s4nd import S4ND
from resbench.models import create_model
from resbench.resolution import kernel_rates

TEST_SIZES = [(7, 7), (21, 21), (28, 28), (35, 21), (49, 49)]
CONTINUOUS = [("s4nd_iso", {"d_model": 8, "n_layers": 2, "d_state": 4}),
              ("s4nd_convnext", {"dims": [8, 8, 8], "d_state": 4}),
              ("s4nd_convnext", {"dims": [8, 8, 8], "d_state": 4, "downsample": "s4nd"}),
              ("ckconv", {"d_model": 8, "n_layers": 2})]


def as_checkpoint(name, config):
    torch.manual_seed(0)
    model = create_model(name, train_res=14, **config)
    return Checkpoint(model=name, config=model.config_dict(), provenance={"train_res": 14},
                      data_stats={"mean": [0.5], "std": [0.25]}, state_dict=model.state_dict()), model


def s4nd_rates_in_forward(model, size):
    """The rate each S4ND layer is called with during model(x) at `size`, in module order."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda m, a, kw: seen.append(tuple(kw["rate"])), with_kwargs=True)
             for m in model.modules() if isinstance(m, S4ND)]
    with torch.no_grad():
        model(torch.randn(1, 1, *size))
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("name, config", CONTINUOUS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("size", TEST_SIZES)
def test_plot_kernels_rates_equal_the_rates_layers_run_with(name, config, size):
    from resbench.kernels import resampled_taps

    ckpt, model = as_checkpoint(name, config)
    if name == "ckconv":  # taps sit at the test grid's pixel spacing, in training pixels: the rate
        conv = next(m for m in model.modules() if hasattr(m, "grid"))
        positions, _, _ = conv.grid(size)  # (kh, kw, 2) in units of the half-width (taps - 1) / 2 training pixels
        half = (conv.taps - 1) / 2
        spacing = (positions[1, 0, 0] - positions[0, 0, 0]).item() * half, \
                  (positions[0, 1, 1] - positions[0, 0, 1]).item() * half
        assert spacing == pytest.approx(kernel_rates((14, 14), size))
        return
    run = s4nd_rates_in_forward(model, size)
    assert run and all(r == pytest.approx(kernel_rates((14, 14), size)) for r in run)
    for i, rate in enumerate(run):
        for axis in (0, 1):
            positions, _ = resampled_taps(ckpt, size, layer_index=i, axis=axis)
            if len(positions) > 1:  # the plot's tap spacing is the rate the layer ran with
                assert positions[1] - positions[0] == pytest.approx(rate[axis])
