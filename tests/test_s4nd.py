"""The S4ND layer against the official fixtures and an independent float64 reference."""

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from resbench.errors import ResbenchError
from resbench.layers.s4nd import S4ND, conv_fft

# the copies committed here, plus any further official records in the workspace's shared folder
_DIRS = [Path(__file__).parent / "fixtures/s4nd_reference",
         Path(__file__).resolve().parents[2] / "shared/fixtures/s4nd_reference"]
FIXTURES = sorted({p.name: str(p) for d in reversed(_DIRS) for p in d.glob("*.pt")}.values())


def reference_kernel(layer, axis, length, rate, alpha):
    """FACTS section 2 written out with numpy loops in float64: (ch, H, Lk)."""
    kern = layer.kernel[axis]
    H, S = kern.H, kern.S
    dt = np.exp(kern.inv_dt.detach().double().numpy()[:, 0])
    A_re = -np.exp(kern.A_real.detach().double().numpy())
    A_im = -kern.A_imag.detach().double().numpy()
    B = kern.B.detach().double().numpy()
    C = kern.C.detach().double().numpy()
    ch, N2 = C.shape[0], C.shape[2]
    K = np.zeros((ch, H, length))
    for c, h, n in itertools.product(range(ch), range(H), range(N2)):
        a = complex(A_re[h % S, n], A_im[h % S, n])
        if alpha is not None and dt[h] * abs(a.imag) / (2 * math.pi) >= alpha / 2:
            continue
        b = complex(*B[0, h % S, n])
        cz = b * complex(*C[c, h, n]) * (np.exp(dt[h] * rate * a) - 1) / a
        K[c, h] += 2 * (cz * np.exp(dt[h] * rate * a * np.arange(length))).real
    return K


def reference_forward(layer, x, rates, alpha):
    """Direct Toeplitz sums per axis, then skip, GELU, linear and GLU, all in float64."""
    y = x.double().numpy()
    u = y.copy()
    for axis, (L, r) in enumerate(zip(x.shape[2:], rates)):
        Lk = min(L, round(layer.l_max[axis] / r))
        K = reference_kernel(layer, axis, Lk, r, alpha)
        T = np.zeros((layer.d_model, L, L))
        for i, j in itertools.product(range(L), range(L)):
            if 0 <= i - j < Lk:
                T[:, i, j] = K[0, :, i - j]
            elif K.shape[0] == 2 and 1 <= j - i <= Lk:
                T[:, i, j] = K[1, :, j - i - 1]
        y = np.moveaxis(np.einsum("hij,bh...j->bh...i", T, np.moveaxis(y, 2 + axis, -1)), -1, 2 + axis)
    D = layer.D.detach().double().numpy().reshape(1, -1, *([1] * layer.dim))
    y = torch.from_numpy(y + D * u)
    y = torch.nn.functional.gelu(y).movedim(1, -1)
    lin = layer.output_linear[0]
    y = y @ lin.weight.detach().double().T + lin.bias.detach().double()
    return torch.nn.functional.glu(y, -1).movedim(-1, 1)


def random_layer(dim, H=4, d_state=8, bidirectional=True, bandlimit=None, n_ssm=1, l_max=8, seed=0):
    torch.manual_seed(seed)
    layer = S4ND(H, d_state=d_state, dim=dim, l_max=l_max, bidirectional=bidirectional, bandlimit=bandlimit,
                 n_ssm=n_ssm, dt_min=0.05, dt_max=0.5).eval()
    with torch.no_grad():  # spread the modes so the bandlimit masks some and not others
        for k in layer.kernel:
            k.A_real.add_(torch.randn_like(k.A_real) * 0.3)
            k.B.add_(torch.randn_like(k.B) * 0.3)
    return layer


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: Path(p).stem)
@pytest.mark.parametrize("method", ["toeplitz", "fft", "auto"])
def test_matches_official_fixtures(path, method):
    data = torch.load(path, weights_only=True)
    layer = S4ND.from_state_spaces(data["config"], data["state_dict"]).eval()
    assert data["records"]
    for rec in data["records"]:
        with torch.no_grad():
            out = layer(rec["input"], rate=rec["rate"], method=method)
        assert (out - rec["output"]).abs().max().item() < 1e-4


def test_fixtures_are_present():
    assert len(FIXTURES) >= 2


@pytest.mark.parametrize("case", [
    dict(dim=1, shape=(11,), rates=(0.7,)),
    dict(dim=2, shape=(9, 6), rates=(12 / 18, 8 / 6), bidirectional=False),
    dict(dim=2, shape=(8, 8), rates=(1.0, 1.0), n_ssm=None, bandlimit=0.5),
    dict(dim=3, shape=(5, 4, 6), rates=(1.6, 2.0, 4 / 3), bandlimit=0.6),
])
def test_matches_float64_reference(case):
    case = dict(case)
    shape, rates = case.pop("shape"), case.pop("rates")
    layer = random_layer(**case)
    x = torch.randn(2, layer.d_model, *shape)
    want = reference_forward(layer, x, rates, layer.bandlimit)
    for method in ("toeplitz", "fft"):
        with torch.no_grad():
            got = layer(x, rate=rates, method=method)
        assert got.shape == x.shape
        assert (got.double() - want).abs().max().item() < 1e-4, method


@settings(max_examples=25, deadline=None)
@given(dim=st.sampled_from([1, 2, 3]), bidirectional=st.booleans(),
       bandlimit=st.sampled_from([None, 0.3, 1.0]), seed=st.integers(0, 1000), data=st.data())
def test_toeplitz_equals_fft(dim, bidirectional, bandlimit, seed, data):
    sizes = data.draw(st.lists(st.integers(1, 12 if dim < 3 else 6), min_size=dim, max_size=dim))
    rates = data.draw(st.lists(st.floats(0.25, 4.0), min_size=dim, max_size=dim))
    layer = random_layer(dim, bidirectional=bidirectional, bandlimit=bandlimit, seed=seed, l_max=6)
    x = torch.randn(2, layer.d_model, *sizes)
    with torch.no_grad():
        a = layer(x, rate=rates, method="toeplitz")
        b = layer(x, rate=rates, method="fft")
    assert (a - b).abs().max().item() < 1e-4


@pytest.mark.parametrize("dim,shape", [(1, (13,)), (2, (7, 10)), (3, (4, 5, 3))])
def test_gradients_agree_between_methods(dim, shape):
    layer = random_layer(dim, bandlimit=0.8)
    x = torch.randn(2, layer.d_model, *shape)
    grads = []
    for method in ("toeplitz", "fft"):
        layer.zero_grad()
        xi = x.clone().requires_grad_(True)
        layer(xi, rate=[0.8] * dim, method=method).pow(2).sum().backward()
        grads.append([xi.grad] + [p.grad.clone() for p in layer.parameters()])
    for g_t, g_f in zip(*grads):
        assert torch.allclose(g_t, g_f, atol=1e-3, rtol=1e-3)


def test_bandlimit_mask_does_not_depend_on_rate():
    layer = random_layer(2, bandlimit=0.4)
    kern = layer.kernel[0]
    mask = kern.bandlimit_mask(0.4)
    assert 0 < mask.sum() < mask.numel()  # the mask really masks something here
    # a mode removed at one rate is removed at every rate: kernels at two rates share the zero pattern
    for rate in (0.25, 1.0, 3.0):
        k_on = kern(6, rate, 0.4)
        k_only_masked = kern(6, rate, None) - k_on
        assert k_only_masked.abs().max() > 0
    with torch.no_grad():
        kern.C.mul_(mask[None, :, :, None])  # zero the masked modes: now on and off agree at any rate
    for rate in (0.25, 1.0, 3.0):
        assert torch.allclose(kern(6, rate, 0.4), kern(6, rate, None), atol=1e-6)


@pytest.mark.parametrize("L,l_max,rate,want", [(32, 16, 0.5, 32), (32, 16, 1.0, 16), (8, 16, 2.0, 8),
                                               (8, 16, 1.0, 8), (18, 12, 12 / 18, 18), (30, 10, 0.4, 25)])
def test_kernel_length(L, l_max, rate, want):
    layer = random_layer(1, l_max=l_max)
    (k,) = layer.kernels([L], rate)
    assert k.shape[-1] == want == min(L, round(l_max / rate))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_rate_one_at_l_max_equals_reference_kernel(bidirectional):
    layer = random_layer(1, bidirectional=bidirectional, bandlimit=0.7, l_max=10)
    (k,) = layer.kernels([10], 1.0)
    want = reference_kernel(layer, 0, 10, 1.0, 0.7)
    assert k.shape == want.shape
    assert np.abs(k.detach().double().numpy() - want).max() < 1e-5


def test_bandlimit_switch_at_evaluation():
    layer = random_layer(2, bandlimit=0.4)
    x = torch.randn(1, 4, 12, 12)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with torch.no_grad():
        on, other, off = (layer(x, rate=0.5, bandlimit=b) for b in (..., 0.9, None))
        assert torch.equal(on, layer(x, rate=0.5, bandlimit=0.4))
    assert not torch.allclose(on, off) and not torch.allclose(on, other)
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())


# options as a real official run config carries them (official_s4 fixture's model.layer, S4ND-ConvNeXt's
# contract_version) that leave an evaluated layer's output unchanged
NO_EFFECT_OPTIONS = {"contract_version": 1, "trank": 1, "rank": 1, "initializer": None, "weight_norm": False,
                     "tie_dropout": True, "deterministic": False, "verbose": True, "linear": False,
                     "lr": {"dt": 0.001, "A": 0.001, "B": 0.001}, "_name_": "s4nd", "return_state": True,
                     "ln": False, "hyper_act": None, "out_channels": None}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: Path(p).stem)
def test_official_options_without_effect_are_accepted_and_change_nothing(path):
    data = torch.load(path, weights_only=True)
    plain = S4ND.from_state_spaces(data["config"], data["state_dict"]).eval()
    for options in ({"contract_version": 1}, {"contract_version": 0}, NO_EFFECT_OPTIONS,
                    {"mode": "diag", **{k: v for k, v in data["config"].items() if k != "kernel"}}):
        layer = S4ND.from_state_spaces({**data["config"], **options}, data["state_dict"]).eval()
        for rec in data["records"]:
            with torch.no_grad():
                assert torch.equal(layer(rec["input"], rate=rec["rate"]), plain(rec["input"], rate=rec["rate"]))


@pytest.mark.parametrize("change,needle", [
    ({"kernel": "dplr"}, "kernel"), ({"disc": "bilinear"}, "disc"), ({"channels": 0}, "channels"),
    ({"channels": 2, "linear": True}, "channels"), ({"channels": 2}, "shape"),  # these weights hold one channel
    ({"init": 3}, "init"), ({"frobnicate": 1}, "frobnicate"), ({"trank": 2}, "trank"),
    ({"weight_norm": True}, "weight_norm"), ({"ln": True}, "ln"), ({"linear": True}, "output_linear"),
    ({"out_channels": 4}, "out_channels"), ({"hyper_act": "id"}, "hyper_act"),
    ({"mode": "dplr", "kernel": None}, "kernel"),
])
def test_unsupported_official_options_are_refused(change, needle):
    data = torch.load(FIXTURES[0], weights_only=True)
    with pytest.raises(ResbenchError, match=needle):
        S4ND.from_state_spaces({**data["config"], **change}, data["state_dict"])


@pytest.mark.parametrize("init", ["legs", "legt", "fourier", "diag-inv", "diag-real"])
def test_any_official_init_loads_the_same_layer(init):
    """Init only sets starting weights; the state dict replaces them, so the outputs cannot depend on it."""
    data = torch.load(FIXTURES[0], weights_only=True)
    ref = S4ND.from_state_spaces(data["config"], data["state_dict"]).eval()
    layer = S4ND.from_state_spaces({**data["config"], "init": init}, data["state_dict"]).eval()
    x = data["records"][0]["input"]
    with torch.no_grad():
        assert torch.equal(layer(x, rate=1.0), ref(x, rate=1.0))


def test_diag_weights_under_the_official_default_kernel_are_refused():
    data = torch.load(FIXTURES[0], weights_only=True)
    config = {k: v for k, v in data["config"].items() if k != "kernel"}  # official default is dplr
    with pytest.raises(ResbenchError, match="kernel"):
        S4ND.from_state_spaces(config, data["state_dict"])


def test_mismatched_official_state_dict_is_refused():
    data = torch.load(FIXTURES[0], weights_only=True)
    sd = dict(data["state_dict"])
    sd.pop("D")
    with pytest.raises(ResbenchError, match="D"):
        S4ND.from_state_spaces(data["config"], sd)
    with pytest.raises(ResbenchError, match="shape"):
        S4ND.from_state_spaces({**data["config"], "d_state": 2 * data["config"]["d_state"]}, data["state_dict"])


@pytest.mark.parametrize("kwargs", [dict(dim=4), dict(d_state=7), dict(l_max=[8]), dict(n_ssm=3),
                                    dict(activation="tanh"), dict(final_act="softmax")])
def test_bad_layer_config_is_user_error(kwargs):
    with pytest.raises(ResbenchError):
        S4ND(4, **{"dim": 2, **kwargs})


def test_bad_rate_and_method_are_user_errors():
    layer = random_layer(2)
    x = torch.randn(1, 4, 6, 6)
    for bad in (0.0, -1.0, [1.0]):
        with pytest.raises(ResbenchError, match="rate"):
            layer(x, rate=bad)
    with pytest.raises(ResbenchError, match="method"):
        layer(x, method="conv")


def test_untransposed_layout():
    layer = random_layer(2)
    x = torch.randn(2, 4, 6, 5)
    with torch.no_grad():
        a = layer(x, rate=0.9)
        layer.transposed = False
        b = layer(x.movedim(1, -1), rate=0.9).movedim(-1, 1)
    assert torch.allclose(a, b, atol=1e-6)


def test_cached_kernels_give_identical_outputs_and_are_dropped():
    from resbench.layers.resolution_aware import cached_kernels

    layer = random_layer(2, bandlimit=0.5)
    x = torch.randn(3, 4, 10, 7)
    with torch.no_grad():
        plain = [layer(x, rate=r, bandlimit=b) for r in (0.5, 1.0) for b in (..., None)]
        with cached_kernels(layer):
            for _ in range(2):  # second pass is served from the cache
                cached = [layer(x, rate=r, bandlimit=b) for r in (0.5, 1.0) for b in (..., None)]
                assert all(torch.equal(a, b) for a, b in zip(plain, cached))
            assert len(layer._kernel_cache) == 4
    assert layer._kernel_cache is None


def test_dropout_in_training_mode_is_drawn_without_grad_too():
    """A layer in training mode with dropout draws its mask under no_grad as with grad (same seed, same
    output): the grouped evaluation path, which has no dropout, is for layers with none active."""
    layer = S4ND(4, d_state=8, dim=2, l_max=9, bandlimit=0.5, dropout=0.5).train()
    x = torch.randn(3, 4, 9, 5)
    torch.manual_seed(1)
    with_grad = layer(x, method="toeplitz").detach()
    torch.manual_seed(1)
    with torch.no_grad():
        without = layer(x, method="toeplitz")
    assert torch.allclose(without, with_grad, atol=1e-6)
    assert not torch.allclose(without, layer.eval()(x, method="toeplitz").detach(), atol=1e-3)


def test_linear_layer_is_the_convolution_plus_skip():
    """linear=True (the official option, used inside S4ND-ConvNeXt): no activation and no output linear."""
    torch.manual_seed(0)
    full = S4ND(4, d_state=8, dim=2, l_max=(6, 7), bandlimit=0.5).eval()
    lin = S4ND(4, d_state=8, dim=2, l_max=(6, 7), bandlimit=0.5, linear=True).eval()
    lin.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("output_linear")})
    assert not any(k.startswith("output_linear") for k in lin.state_dict())
    x = torch.randn(3, 4, 6, 7)
    with torch.no_grad():
        expected = conv_fft(x, full.kernels((6, 7), 1.0)) + x * full.D.view(1, -1, 1, 1)
        for method in ("toeplitz", "fft"):
            assert torch.allclose(lin(x, method=method), expected, atol=1e-5), method


@pytest.mark.parametrize("final_act", ["glu", "id", "linear"])
@pytest.mark.parametrize("dim, shape", [(1, (11,)), (2, (9, 5)), (3, (4, 3, 5))])
@pytest.mark.parametrize("group", [1, 2, 5])
@pytest.mark.parametrize("channels_last", [False, True])
def test_grouped_evaluation_equals_the_autograd_path(monkeypatch, final_act, dim, shape, group, channels_last):
    """Without grad the Toeplitz path runs a group of images at a time into a channels-last output;
    with grad the whole batch in one go. Groups of 2 over 5 images leave an uneven last group."""
    import resbench.layers.s4nd as s4nd

    H, B = 4, 5
    per_image = H * math.prod(shape)
    # the group size is CHUNK_ELEMENTS // per_image, a quarter of the budget for non-contiguous input
    monkeypatch.setattr(s4nd, "CHUNK_ELEMENTS", group * per_image * (4 if channels_last else 1))
    options = {"linear": True} if final_act == "linear" else {"final_act": final_act}
    layer = S4ND(H, d_state=8, dim=dim, l_max=shape, bandlimit=0.5, **options).eval()
    x = torch.randn(B, H, *shape)
    if channels_last:
        x = x.movedim(1, -1).contiguous().movedim(-1, 1)  # (B, H, *L), the channel innermost in memory
    whole = layer(x, rate=0.7, method="toeplitz").detach()
    with torch.inference_mode():
        grouped = layer(x, rate=0.7, method="toeplitz")
    assert grouped.shape == whole.shape
    assert torch.allclose(grouped, whole, atol=1e-6)
    # not-transposed layers take and give (B, *L, H)
    layer.transposed = False
    with torch.inference_mode():
        grouped_last = layer(x.movedim(1, -1), rate=0.7, method="toeplitz")
    assert torch.allclose(grouped_last, whole.movedim(1, -1), atol=1e-6)
