"""S4ND's evaluation path under bf16 autocast: products and passes in bf16, kernels in float32, the same
function as in float32 up to bf16 rounding."""

import pytest
import torch

from resbench.layers.resolution_aware import cached_kernels
from resbench.layers.s4nd import S4ND
from resbench.models import create_model


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


@pytest.mark.parametrize("dim, linear, channels", [(1, False, 1), (2, False, 1), (2, True, 1), (2, False, 2),
                                                   (3, False, 1)])
def test_grouped_path_runs_in_bf16_and_matches_fp32(dim, linear, channels):
    torch.manual_seed(0)
    sides = {1: (40,), 2: (12, 10), 3: (4, 6, 5)}[dim]
    layer = S4ND(16, d_state=8, dim=dim, l_max=list(sides), bandlimit=0.5, linear=linear, channels=channels).eval()
    x = torch.randn(5, 16, *sides)
    with torch.inference_mode():
        ref = layer(x, rate=0.7)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x, rate=0.7)
            again = layer(x.bfloat16(), rate=0.7)  # a bf16 input (a bf16 residual stream) takes the same path
    assert out.dtype == again.dtype == torch.bfloat16
    assert out.shape == ref.shape
    assert _relative(out, ref) < 3e-2
    assert _relative(again, ref) < 3e-2
    assert not torch.equal(out.float(), ref)  # it did compute in bf16


def test_grouped_path_agrees_with_the_autograd_path_under_autocast():
    torch.manual_seed(1)
    layer = S4ND(16, d_state=8, dim=2, l_max=14, bandlimit=0.5).eval()
    x = torch.randn(3, 16, 14, 14)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.inference_mode():
            grouped = layer(x)
        autograd = layer(x)  # grad enabled: the whole-batch path, autocast casting inside each op
    assert _relative(grouped, autograd.detach()) < 3e-2


def test_fp32_evaluation_is_unchanged_outside_autocast():
    torch.manual_seed(2)
    layer = S4ND(16, d_state=8, dim=2, l_max=14, bandlimit=0.5).eval()
    x = torch.randn(3, 16, 14, 14)
    with torch.inference_mode():
        grouped = layer(x)
    autograd = layer(x)
    assert grouped.dtype == torch.float32
    assert torch.allclose(grouped, autograd.detach(), atol=1e-5)


def test_model_logits_in_bf16_keep_the_fp32_predictions_mostly():
    torch.manual_seed(3)
    model = create_model("s4nd_iso", train_res=14, d_model=32, n_layers=2).eval()
    x = torch.randn(64, 1, 28, 28)
    with torch.inference_mode(), cached_kernels(model):
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert _relative(out, ref) < 5e-2
    assert (out.float().argmax(1) == ref.argmax(1)).float().mean() >= 0.9
