"""S4ND's grouped evaluation with its norm and layout change compiled (compiled_passes) against the eager passes."""

import shutil

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.layers import compiled_passes
from resbench.layers.blocks import ChannelNorm
from resbench.layers.s4nd import S4ND, channel_major

needs_compiler = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                    reason="torch.compile's CPU backend needs a C++ compiler")


@pytest.fixture
def compiling(monkeypatch):
    monkeypatch.setenv("RESBENCH_COMPILE", "1")  # conftest turns it off for the rest of the suite
    monkeypatch.setitem(compiled_passes._state, "failed", None)


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_norm_to_channel_major_matches_eager_over_batches_grids_and_axes(compiling, dtype):
    torch.manual_seed(0)
    H = 16
    weight, bias = torch.randn(H), torch.randn(H)
    cases = [(3, (9, 9)), (2, (9, 9)), (5, (6, 11)), (1, (12, 12)), (4, (20,)), (2, (3, 5, 7))]  # grids of 1-3 axes
    for b, sides in cases:
        x = torch.randn(b, *sides, H) * 3 + 1  # (b, *L, H): channels last, as the residual stream
        perm = tuple(channel_major(len(sides)))
        got = compiled_passes.norm_to_channel_major(x, weight, bias, 1e-6, perm, dtype)
        expected = compiled_passes.norm_to_channel_major.eager(x, weight, bias, 1e-6, perm, dtype)
        assert got.dtype == dtype and got.shape == expected.shape and got.is_contiguous()
        tolerance = 1e-5 if dtype == torch.float32 else 2 ** -7 * expected.float().abs().max().item()
        assert (got.float() - expected.float()).abs().max() <= tolerance, (b, sides)
    assert compiled_passes._state["failed"] is None


@needs_compiler
@pytest.mark.parametrize("sides", [(10, 10), (4, 6, 6)])
def test_s4nd_prenorm_residual_in_bf16_compiled_matches_eager(compiling, monkeypatch, sides):
    torch.manual_seed(1)
    layer = S4ND(16, d_state=8, dim=len(sides), l_max=list(sides)).eval()
    norm = ChannelNorm(16)
    nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)
    x = torch.randn(3, *sides, 16).movedim(-1, 1).bfloat16()  # (B, H, *L), channels last, a bf16 stream
    calls = []
    monkeypatch.setattr(compiled_passes, "norm_to_channel_major",
                        _counting(compiled_passes.norm_to_channel_major, calls))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        compiled = layer.prenorm_residual(x, norm)
        assert calls, "the bf16 grouped path took the compiled pass"
        monkeypatch.setenv("RESBENCH_COMPILE", "0")
        eager = layer.prenorm_residual(x, norm)
    assert len(calls) == 1 and compiled.dtype == eager.dtype == torch.bfloat16 and compiled.shape == eager.shape
    assert (compiled.float() - eager.float()).abs().max() <= 2 ** -6 * eager.float().abs().max()


def test_float32_keeps_the_eager_passes(compiling, monkeypatch):
    layer, norm = S4ND(8, d_state=4, dim=2, l_max=[6, 6]).eval(), ChannelNorm(8)
    calls = []
    monkeypatch.setattr(compiled_passes, "norm_to_channel_major",
                        _counting(compiled_passes.norm_to_channel_major, calls))
    with torch.inference_mode():
        layer.prenorm_residual(torch.randn(2, 8, 6, 6), norm)
    assert calls == []


def _counting(fn, calls):
    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return fn(*args, **kwargs)
    return counted


def test_a_failed_compile_falls_back_to_eager_for_good(compiling, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore text")

    fresh = compiled_passes._compile(compiled_passes.norm_to_channel_major.eager, channel_dim=-1)
    monkeypatch.setattr(torch, "compile", broken)
    x, weight, bias = torch.randn(2, 5, 5, 8), torch.ones(8), torch.zeros(8)
    got = fresh(x, weight, bias, 1e-6, (1, 2, 0, 3), torch.float32)
    assert torch.equal(got, compiled_passes.norm_to_channel_major.eager(x, weight, bias, 1e-6, (1, 2, 0, 3),
                                                                         torch.float32))
    assert compiled_passes._state["failed"] == "RuntimeError: no C++ compiler found"
    assert not compiled_passes.enabled(x.device, torch.bfloat16)  # S4ND stops asking for the compiled pass
    assert compiled_passes.status() == "failed, eager passes: RuntimeError: no C++ compiler found"


def test_a_time_limit_inside_the_pass_is_not_taken_for_a_compile_failure(compiling, monkeypatch):
    from resbench.runtime import TimeLimitExceeded

    def stopped(*args, **kwargs):
        raise TimeLimitExceeded("cell time limit")

    fresh = compiled_passes._compile(compiled_passes.norm_to_channel_major.eager, channel_dim=-1)
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: stopped)
    with pytest.raises(TimeLimitExceeded):
        fresh(torch.randn(2, 5, 5, 8), torch.ones(8), torch.zeros(8), 1e-6, (1, 2, 0, 3), torch.bfloat16)
    assert compiled_passes._state["failed"] is None


def test_switch_devices_and_dtypes(monkeypatch):
    monkeypatch.setitem(compiled_passes._state, "failed", None)
    cpu, bf16 = torch.device("cpu"), torch.bfloat16
    monkeypatch.setenv("RESBENCH_COMPILE", "0")
    assert not compiled_passes.enabled(cpu, bf16) and compiled_passes.status() == "off"
    monkeypatch.setenv("RESBENCH_COMPILE", "1")
    assert compiled_passes.enabled(cpu, bf16) and compiled_passes.enabled(cpu, torch.float16)
    assert not compiled_passes.enabled(cpu, torch.float32)
    assert not compiled_passes.enabled(torch.device("meta"), bf16)
    assert compiled_passes.status().startswith("on")


def _conv_block(dims, d=8, k=3, seed=0):
    from resbench.layers.blocks import PreNormBlock, glu_mixer

    torch.manual_seed(seed)
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims](d, d, k, padding=k // 2)
    block = PreNormBlock(d, glu_mixer(conv, d, dims), dropout=0.1).eval()
    for p in block.parameters():  # the mixer's output as large as the stream: a wrong formula shows
        nn.init.normal_(p, std=0.5)
    return block


@needs_compiler
@pytest.mark.parametrize("dims,sides", [(1, (30,)), (2, (9, 9)), (2, (6, 11))])
def test_conv_glu_block_in_bf16_matches_the_eager_block(compiling, monkeypatch, dims, sides):
    block = _conv_block(dims, seed=dims)
    x = torch.randn(3, *sides, 8).movedim(-1, 1).bfloat16()  # (B, D, *L), channels last, a bf16 stream
    calls = []
    monkeypatch.setattr(compiled_passes, "conv_glu_block", _counting(compiled_passes.conv_glu_block, calls))
    with torch.inference_mode():
        reference = block.float()(x.float())  # float32 throughout
        block.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            compiled = block(x)
            monkeypatch.setenv("RESBENCH_COMPILE", "0")
            eager = block(x)
    assert len(calls) == 1 and compiled.dtype == eager.dtype == torch.bfloat16
    assert compiled.shape == eager.shape == x.shape and compiled.stride() == x.stride()
    scale = (reference - x.float()).abs().max()  # the mixer's part
    assert scale >= 0.5 * x.float().abs().max()
    assert (compiled.float() - reference).abs().max() <= 2 ** -5 * scale  # bf16 rounding, not a wrong formula
    assert (compiled.float() - eager.float()).abs().max() <= 2 ** -5 * scale
    assert compiled_passes._state["failed"] is None


@needs_compiler
def test_conv_glu_block_is_skipped_where_it_does_not_apply(compiling, monkeypatch):
    from resbench.layers.blocks import conv_glu_convs

    calls = []
    monkeypatch.setattr(compiled_passes, "conv_glu_block", _counting(compiled_passes.conv_glu_block, calls))
    x2 = torch.randn(2, 8, 6, 6).bfloat16()
    block = _conv_block(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            _conv_block(3)(torch.randn(2, 8, 4, 4, 4).bfloat16())  # 3-d: eager (compiled it ran slower)
            handle = block.mixer[1].register_forward_hook(lambda *a: None)
            block(x2)  # a hook on one of its modules sees its call
            handle.remove()
        block(x2)  # autograd
    with torch.no_grad():
        block(x2.float())  # no autocast
    assert calls == []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        block(x2)
    assert len(calls) == 1  # the same block where it applies
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fp32_stream = block(x2.float())  # a float32 stream too: the sum in float32
        monkeypatch.setenv("RESBENCH_COMPILE", "0")
        eager = block(x2.float())
        monkeypatch.setenv("RESBENCH_COMPILE", "1")
    assert len(calls) == 2 and fp32_stream.dtype == eager.dtype == torch.float32
    assert (fp32_stream - eager).abs().max() <= 2 ** -5 * (eager - x2.float()).abs().max()
    strided = _conv_block(2)
    strided.mixer[0].stride = (2, 2)  # not the plain convolution the pass computes
    assert conv_glu_convs(strided.mixer) is None and conv_glu_convs(block.mixer) is not None
    assert conv_glu_convs(nn.Sequential(nn.Identity(), nn.GELU(), nn.Conv2d(8, 16, 1), nn.GLU(1))) is None


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_norm_mean_matches_eager(compiling, dtype):
    torch.manual_seed(2)
    weight, bias = torch.randn(16), torch.randn(16)
    for shape in [(3, 9, 9, 16), (2, 40, 16), (2, 3, 5, 7, 16)]:
        x = (torch.randn(*shape) * 3 + 1).to(dtype)
        got = compiled_passes.norm_mean(x, weight, bias, 1e-5)
        expected = torch.nn.functional.layer_norm(x.double(), (16,), weight.double(), bias.double(), 1e-5)
        expected = expected.mean(dim=tuple(range(1, x.dim() - 1)))
        assert got.dtype == torch.float32 and got.shape == (shape[0], 16)
        assert torch.allclose(got.double(), expected, atol=1e-5), shape


@needs_compiler
def test_iso_models_head_takes_norm_mean_under_autocast(compiling, monkeypatch):
    from resbench.models import create_model

    calls = []
    monkeypatch.setattr(compiled_passes, "norm_mean", _counting(compiled_passes.norm_mean, calls))
    model = create_model("conv2d_iso", train_res=8, d_model=8, n_layers=1).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.inference_mode():
        fp32 = model(x)
        assert calls == []  # float32: eager
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x)
    assert len(calls) == 1 and half.shape == fp32.shape
    assert (half.float() - fp32).abs().max() <= 0.05 * fp32.abs().max()


@needs_compiler
@pytest.mark.parametrize("sides,method", [((10, 10), "toeplitz"), ((4, 6, 6), "toeplitz"), ((150,), "fft")])
def test_s4nd_prenorm_residual_on_a_float32_stream_sums_in_float32(compiling, monkeypatch, sides, method):
    torch.manual_seed(2)
    layer = S4ND(16, d_state=8, dim=len(sides), l_max=list(sides)).eval()
    norm = ChannelNorm(16)
    nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)
    x = torch.randn(3, *sides, 16).movedim(-1, 1)  # (B, H, *L), channels last, a float32 stream
    calls = []
    monkeypatch.setattr(compiled_passes, "glu_residual_", _counting(compiled_passes.glu_residual_, calls))
    with torch.inference_mode():
        reference = layer.prenorm_residual(x, norm, method=method)  # float32 throughout
        with torch.autocast("cpu", dtype=torch.bfloat16):
            compiled = layer.prenorm_residual(x, norm, method=method)
            monkeypatch.setenv("RESBENCH_COMPILE", "0")
            eager = layer.prenorm_residual(x, norm, method=method)
    assert calls and compiled.dtype == eager.dtype == torch.float32 and compiled.shape == x.shape
    assert compiled.stride() == eager.stride()
    branch = (reference - x).abs().max()  # the layer's part of the sum
    assert (compiled - eager).abs().max() <= 2 ** -7 * branch  # one rounding apart at most
    assert (compiled - reference).abs().max() <= 2 ** -4 * branch  # bf16 products, not a wrong formula


def test_glu_residual_writes_strided_views(monkeypatch):
    monkeypatch.setenv("RESBENCH_COMPILE", "0")  # the eager body; the compiled one is checked above
    torch.manual_seed(3)
    z = torch.zeros(4, 5, 6, 8)  # (B, L1, L2, H)
    res = torch.randn(4, 5, 6, 8)
    view = z.permute(1, 0, 2, 3)[:, 1:3]  # (L1, b, L2, H): a group in a layer's pixel order
    out = torch.randn(5, 2, 6, 16).bfloat16()
    compiled_passes.glu_residual_.eager(out, view, res.permute(1, 0, 2, 3)[:, 1:3])
    expected = res[1:3] + F.glu(out.float(), -1).permute(1, 0, 2, 3)
    assert torch.equal(z[1:3], expected) and not z[0].any() and not z[3].any()


@needs_compiler
@pytest.mark.parametrize("name", ["s4nd_iso", "conv2d_iso"])
def test_iso_models_keep_a_float32_residual_stream_under_autocast(compiling, name):
    from resbench.models import create_model

    model = create_model(name, train_res=8, d_model=8, n_layers=2, d_state=4).eval() if name == "s4nd_iso" else \
        create_model(name, train_res=8, d_model=8, n_layers=2).eval()
    seen = []
    model.blocks[1].register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    x = torch.randn(2, 1, 8, 8)
    with torch.inference_mode():
        fp32 = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x)
    assert seen == [torch.float32, torch.float32]  # the sum after block 0: float32 under autocast too
    assert (half.float() - fp32).abs().max() <= 0.05 * fp32.abs().max()


@needs_compiler
@pytest.mark.parametrize("train_res,test_res", [(8, 10), ([40], [150])])  # Toeplitz 2-d; FFT 1-d
def test_s4nd_iso_sums_over_its_float32_stream_through_the_compiled_pass(compiling, monkeypatch, train_res, test_res):
    from resbench.models import create_model

    torch.manual_seed(5)
    model = create_model("s4nd_iso", train_res=train_res, d_model=8, n_layers=2, d_state=4).eval()
    x = torch.randn(3, 1, *([test_res] * 2 if isinstance(test_res, int) else test_res))
    calls = []
    monkeypatch.setattr(compiled_passes, "glu_add_", _counting(compiled_passes.glu_add_, calls))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        overwritten = model(x)  # each block sums into the stream: glu_add_
        handle = model.blocks.register_forward_hook(lambda *args: None)
        separate = model(x)  # a hook: new tensors, glu_residual_
        handle.remove()
    assert compiled_passes._state["failed"] is None  # both passes compiled
    assert len(calls) == 2  # one per block
    assert torch.equal(overwritten, separate)
