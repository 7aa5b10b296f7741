"""Float32 linears through oneDNN (resbench.layers.onednn) and the GELU writer S4ND's paths share."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.layers import onednn
from resbench.layers.s4nd import S4ND
from resbench.layers.s4nd_ops import gelu_into

needs_operator = pytest.mark.skipif(onednn._operator() is None, reason="this PyTorch build has no oneDNN linear")


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    monkeypatch.setitem(onednn._state, "failed", None)
    monkeypatch.delenv("RESBENCH_ONEDNN", raising=False)


@pytest.mark.parametrize("rows,inp,out,bias", [(1, 3, 5, True), (7840, 128, 256, True), (100, 64, 10, False)])
def test_linear_matches_f_linear(rows, inp, out, bias):
    g = torch.Generator().manual_seed(rows)
    x, w = torch.randn(rows, inp, generator=g), torch.randn(out, inp, generator=g)
    b = torch.randn(out, generator=g) if bias else None
    ref = F.linear(x.double(), w.double(), None if b is None else b.double())
    got = onednn.linear(x, w, b)
    assert got.shape == (rows, out) and got.dtype == torch.float32
    assert torch.allclose(got.double(), ref, atol=1e-4, rtol=1e-5)


@needs_operator
def test_usable_only_for_float32_on_the_cpu_outside_autocast(monkeypatch):
    x = torch.randn(4, 8)
    assert onednn.usable(x)
    assert not onednn.usable(x.bfloat16()) and not onednn.usable(x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not onednn.usable(x)  # autocast picks the dtype: F.linear's path
    monkeypatch.setenv("RESBENCH_ONEDNN", "0")
    assert not onednn.usable(x) and onednn.status().startswith("off")


@needs_operator
def test_a_failing_operator_falls_back_and_says_so(monkeypatch):
    calls = []

    def broken(*args):
        calls.append(1)
        raise RuntimeError("could not create a primitive\nmore")

    monkeypatch.setattr(onednn, "_operator", lambda: broken)
    x, w, b = torch.randn(5, 4), torch.randn(3, 4), torch.randn(3)
    assert torch.allclose(onednn.linear(x, w, b), F.linear(x, w, b))
    assert onednn.status() == "failed, MKL: could not create a primitive"
    onednn.linear(x, w, b)
    assert len(calls) == 1  # not tried again in this process


@needs_operator
def test_out_of_memory_is_not_taken_for_a_broken_operator(monkeypatch):
    def oom(*args):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(onednn, "_operator", lambda: oom)
    with pytest.raises(RuntimeError, match="allocate"):
        onednn.linear(torch.randn(5, 4), torch.randn(3, 4), None)
    assert onednn._state["failed"] is None


@needs_operator
def test_linears_routes_a_models_linears_and_restores_them(monkeypatch):
    torch.manual_seed(0)

    class Sub(nn.Linear):  # a subclass keeps its own class and forward
        pass

    model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), Sub(8, 4), nn.Linear(4, 3))
    x = torch.randn(2, 5, 6)
    seen = []
    monkeypatch.setattr(onednn, "linear", lambda x, w, b: seen.append(x.shape) or F.linear(x, w, b))
    with torch.no_grad():
        ref = model(x)
        with onednn.linears(model):
            assert [type(m) for m in model] == [onednn.RowsLinear, nn.GELU, Sub, onednn.RowsLinear]
            got = model(x)
            with torch.enable_grad():
                model(x)  # autograd: nn.Linear's own forward
            model(x.transpose(0, 1))  # rows not contiguous: nn.Linear's own forward (the last layer's are)
    assert [type(m) for m in model] == [nn.Linear, nn.GELU, Sub, nn.Linear]
    assert seen == [(10, 6), (10, 4), (10, 4)]
    assert torch.equal(got, ref)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"]


@needs_operator
def test_linears_restores_the_class_when_the_block_raises():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError):
        with onednn.linears(model):
            raise ValueError("inside")
    assert type(model[0]) is nn.Linear


@pytest.mark.parametrize("dims", [1, 2])
def test_s4nd_evaluation_is_the_same_with_onednn_off(monkeypatch, dims):
    torch.manual_seed(dims)
    layer = S4ND(d_model=16, d_state=8, dim=dims, l_max=[12] * dims, bidirectional=True, transposed=False).eval()
    for side in (12, 300 if dims == 1 else 20):  # Toeplitz and (1-d, 300) FFT paths
        x = torch.randn(3, *[side] * dims, 16)
        with torch.no_grad():
            on = layer(x)
            monkeypatch.setenv("RESBENCH_ONEDNN", "0")
            off = layer(x)
            monkeypatch.delenv("RESBENCH_ONEDNN")
        assert torch.allclose(on, off, atol=1e-5, rtol=1e-5)


@needs_operator
def test_s4nd_grouped_paths_take_onednn(monkeypatch):
    torch.manual_seed(0)
    seen = []
    real = onednn.linear
    monkeypatch.setattr(onednn, "linear", lambda x, w, b: seen.append(x.shape) or real(x, w, b))
    layer = S4ND(d_model=8, d_state=4, dim=1, l_max=16, bidirectional=True, transposed=False).eval()
    with torch.no_grad():
        layer(torch.randn(2, 16, 8))  # Toeplitz, one group of 2 x 16 pixels
        layer(torch.randn(2, 300, 8))  # FFT
    assert seen == [(32, 8), (600, 8)]


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_into_any_layout(approximate):
    g = torch.Generator().manual_seed(0)
    wide = torch.randn(3, 17, 40, generator=g)
    for t in (wide[:, :16].contiguous(), wide[:, :16]):  # input contiguous or not
        ref = F.gelu(t, approximate=approximate)
        for out in (torch.empty(3, 16, 40), torch.empty(3, 17, 40)[:, :16], torch.empty(40, 16, 3).permute(2, 1, 0)):
            gelu_into(t, out, approximate)
            assert torch.allclose(out, ref, atol=1e-6)
