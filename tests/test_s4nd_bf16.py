"""S4ND's evaluation path under bf16 autocast: products and passes in bf16, kernels in float32, the same
function as in float32 up to bf16 rounding."""

import pytest
import torch
import torch.nn.functional as F

from resbench.layers.blocks import GLU, NARROW_GLU, ChannelNorm, glu_mixer
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


def test_glu_over_a_narrow_unit_stride_half_dim_is_computed_in_fp32_and_keeps_its_dtype():
    torch.manual_seed(4)
    for dtype in (torch.bfloat16, torch.float16):
        narrow = (torch.randn(50, NARROW_GLU - 2) * 4).to(dtype)
        out = GLU(-1)(narrow)
        assert out.dtype == dtype
        # the float32 result rounded once: exactly what GLU in float32 gives, cast back
        assert torch.equal(out, F.glu(narrow.float(), -1).to(dtype))
    channels_last = (torch.randn(2, 5, 6, 32) * 4).bfloat16().movedim(-1, 1)  # GLU over dim 1, stride 1
    assert torch.equal(GLU(1)(channels_last), F.glu(channels_last.float(), 1).bfloat16())
    wide = torch.randn(50, NARROW_GLU).bfloat16()
    channel_first = torch.randn(2, 32, 5, 6).bfloat16()  # dim 1 strided: the half kernel is fast there
    for x, dim in ((wide, -1), (channel_first, 1), (torch.randn(50, 8), -1)):
        assert torch.equal(GLU(dim)(x), F.glu(x, dim))


def test_models_use_the_glu_module_and_keep_their_state_dict_keys():
    layer = S4ND(16, d_state=8, dim=2, l_max=8)
    mixer = glu_mixer(torch.nn.Conv2d(16, 16, 3, padding=1), 16)
    assert isinstance(layer.output_linear[1], GLU) and isinstance(mixer[3], GLU)
    assert not any(k.startswith("output_linear.1") for k in layer.state_dict())  # no weights: old files load


@pytest.mark.parametrize("d_model", [16, NARROW_GLU // 2])  # a narrow GLU (through fp32) and a wide one
@pytest.mark.parametrize("dim, sides", [(2, (12, 10)), (1, (300,))])  # the grouped Toeplitz path; the FFT path
def test_half_precision_glu_routes_match_fp32(d_model, dim, sides):
    torch.manual_seed(5)
    layer = S4ND(d_model, d_state=8, dim=dim, l_max=list(sides), bandlimit=0.5).eval()
    x = torch.randn(3, d_model, *sides)
    with torch.inference_mode():
        ref = layer(x, rate=0.9)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x, rate=0.9)
    assert out.dtype == torch.bfloat16 and out.shape == ref.shape
    assert _relative(out, ref) < 3e-2
    assert not torch.equal(out.float(), ref)


def test_prenorm_body_with_a_bf16_residual_stream_adds_in_fp32_and_stores_bf16():
    torch.manual_seed(7)
    layer = S4ND(16, d_state=8, dim=2, l_max=14, bandlimit=0.5).eval()
    norm = ChannelNorm(16)
    x = torch.randn(4, 14, 14, 16).movedim(-1, 1).bfloat16()  # a bf16 residual stream, channels last
    with torch.inference_mode():
        ref = x.float() + layer(norm(x.float()))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused = layer.prenorm_residual(x, norm)
    assert fused.dtype == torch.bfloat16
    assert (fused.float() - ref).abs().max() < 3e-2 * ref.abs().max()
