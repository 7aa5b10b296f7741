"""S4ND's prenorm residual body, x + S4ND(norm(x)): fused into the grouped evaluation path (the norm and the sum
taken per group of images), the same function as the unfused body in float32 and under bf16 autocast."""

import pytest
import torch

from resbench.layers.blocks import ChannelNorm, PreNormBlock
from resbench.layers.s4nd import S4ND
from resbench.models import create_model


def _unfused(layer, norm, x, **kwargs):
    return x + layer(norm(x), **kwargs)


def _norm(width: int) -> ChannelNorm:
    norm = ChannelNorm(width)
    with torch.no_grad():  # not the identity affine map, so that a norm applied wrongly shows
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    return norm


@pytest.mark.parametrize("dim, final_act, channels_last", [(1, "glu", False), (2, "glu", True), (2, "glu", False),
                                                           (2, "id", True), (3, "glu", True)])
def test_fused_body_is_the_unfused_body_in_fp32(dim, final_act, channels_last):
    torch.manual_seed(0)
    sides = {1: (40,), 2: (12, 10), 3: (4, 6, 5)}[dim]
    layer = S4ND(16, d_state=8, dim=dim, l_max=list(sides), bandlimit=0.5, final_act=final_act).eval()
    norm = _norm(16)
    x = torch.randn(7, *sides, 16).movedim(-1, 1) if channels_last else torch.randn(7, 16, *sides)
    with torch.inference_mode():
        fused = layer.prenorm_residual(x, norm, rate=0.8)
        ref = _unfused(layer, norm, x, rate=0.8)
    assert fused.shape == ref.shape and fused.dtype == torch.float32
    torch.testing.assert_close(fused, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("width", [16, 64])  # a GLU over 2 x 16 and over 2 x 64 channels (see NARROW_GLU)
def test_fused_body_under_bf16_autocast_keeps_the_residual_in_fp32(width):
    torch.manual_seed(1)
    layer = S4ND(width, d_state=8, dim=2, l_max=14, bandlimit=0.5).eval()
    norm = _norm(width)
    x = torch.randn(5, 14, 14, width).movedim(-1, 1)
    with torch.inference_mode():
        ref = _unfused(layer, norm, x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused = layer.prenorm_residual(x, norm)
            unfused = _unfused(layer, norm, x)
    assert fused.dtype == unfused.dtype == torch.float32  # x + a bf16 output promotes, fused or not
    scale = ref.abs().max()
    assert (fused - ref).abs().max() < 3e-2 * scale
    assert (fused - unfused).abs().max() < 3e-2 * scale
    assert not torch.equal(fused, ref)  # the layer did compute in bf16


def test_with_autograd_the_body_is_the_plain_one_and_has_gradients():
    torch.manual_seed(2)
    layer = S4ND(8, d_state=4, dim=2, l_max=10, bandlimit=0.5)
    norm = _norm(8)
    x = torch.randn(3, 8, 10, 10, requires_grad=True)
    out = layer.prenorm_residual(x, norm)
    out.square().sum().backward()
    assert x.grad is not None and norm.weight.grad is not None and layer.D.grad is not None
    torch.testing.assert_close(out, _unfused(layer, norm, x))


def test_fft_sides_take_the_plain_body():
    torch.manual_seed(3)
    layer = S4ND(8, d_state=4, dim=1, l_max=300, bandlimit=0.5).eval()
    norm = _norm(8)
    x = torch.randn(2, 8, 300)
    with torch.inference_mode():
        torch.testing.assert_close(layer.prenorm_residual(x, norm), _unfused(layer, norm, x))


@pytest.mark.parametrize("train_res, test", [(14, 28), (14, 7), (8, 12)])
def test_s4nd_iso_logits_are_those_of_the_unfused_blocks(train_res, test, monkeypatch):
    torch.manual_seed(4)
    model = create_model("s4nd_iso", train_res=train_res, d_model=16, n_layers=2, d_state=8).eval()
    x = torch.randn(6, 1, test, test)
    norms = []
    evaluate = S4ND._evaluate
    monkeypatch.setattr(S4ND, "_evaluate", lambda self, x, ops, norm=None, overwrite=False: norms.append(norm) or
                        evaluate(self, x, ops, norm, overwrite))
    with torch.inference_mode():
        fused = model(x)
        assert len(norms) == 2 and all(n is not None for n in norms)  # both blocks took the fused path
        monkeypatch.setattr(PreNormBlock, "forward",
                            lambda self, x, overwrite=False: x + self.dropout(self.mixer(self.norm(x))))
        plain = model(x)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)


def test_training_blocks_with_dropout_stay_unfused(monkeypatch):
    torch.manual_seed(5)
    model = create_model("s4nd_iso", train_res=8, d_model=8, n_layers=1, d_state=4, dropout=0.5).train()
    calls = []
    monkeypatch.setattr(S4ND, "prenorm_residual", lambda *a, **k: calls.append(1))
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    assert calls == []


def test_hooked_layers_see_every_call():
    """A forward hook on an S4ND layer, its norm or the block's mixer sees the calls the unfused block makes."""
    torch.manual_seed(6)
    model = create_model("s4nd_iso", train_res=8, d_model=8, n_layers=2, d_state=4).eval()
    block = model.blocks[0]
    for module in (block.mixer.s4nd, block.norm, block.mixer):
        seen = []
        handle = module.register_forward_hook(lambda m, a, out: seen.append(out.shape))
        with torch.inference_mode():
            model(torch.randn(2, 1, 8, 8))
        handle.remove()
        assert len(seen) == 1


@pytest.mark.parametrize("train_res,test_res", [(8, 10), ([40], [150])])  # Toeplitz 2-d; FFT 1-d
@pytest.mark.parametrize("precision", [None, torch.bfloat16])
def test_iso_model_summing_over_its_stream_computes_what_a_hooked_model_does(train_res, test_res, precision):
    from resbench.models import create_model

    torch.manual_seed(4)
    model = create_model("s4nd_iso", train_res=train_res, d_model=8, n_layers=3, d_state=4).eval()
    x = torch.randn(3, 1, *([test_res] * 2 if isinstance(test_res, int) else test_res))
    seen = []

    def keep_input(module, args):
        seen.append(args[0].clone())

    with torch.inference_mode(), torch.autocast("cpu", dtype=precision or torch.float32, enabled=bool(precision)):
        overwritten = model(x)  # no hooks: each block sums into its input
        handle = model.blocks[1].register_forward_pre_hook(keep_input)
        inputs = []
        model.blocks[1].register_forward_hook(lambda module, args, out: inputs.append(args[0].clone()))
        hooked = model(x)  # a hook: the blocks return new tensors
        handle.remove()
    assert torch.equal(overwritten, hooked)
    assert torch.equal(seen[0], inputs[0])  # the hook saw block 1's input unchanged after the block ran
