"""The DPLR (S4) kernel of the S4ND layer against independent float64 recurrences, and the official import."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resbench.errors import ResbenchError
from resbench.layers.s4nd import S4ND, DPLRKernel, SSMKernel

FIXTURE = Path(__file__).parent / "fixtures/official_s4/iso2d_dplr.pt"  # committed: these tests run in every clone


def random_kernel(rank=1, n_ssm=1, channels=2, H=3, d_state=8, l_max=16, low_rank=0.4, seed=0,
                  dt=(0.05, 0.3)):
    torch.manual_seed(seed)
    kern = DPLRKernel(H, d_state, n_ssm, channels, "diag-lin", dt[0], dt[1], rank=rank, l_max=l_max)
    with torch.no_grad():  # move every weight off its init
        kern.A_real.add_(torch.randn_like(kern.A_real) * 0.3)
        kern.A_imag.add_(torch.randn_like(kern.A_imag) * 0.5)
        kern.B.add_(torch.randn_like(kern.B) * 0.3)
        kern.P.copy_(torch.randn_like(kern.P) * low_rank)
    return kern


def dense_system(kern):
    """Continuous (M, B) on the full state (modes, then conjugates), float64: M (H, 2N, 2N), B (H, 2N)."""
    H, S = kern.H, kern.S
    rows = [h % S for h in range(H)]
    A = (-np.exp(kern.A_real.detach().double().numpy()) - 1j * kern.A_imag.detach().double().numpy())[rows]
    B = kern.B.detach().double().numpy()[0, rows]
    B = B[..., 0] + 1j * B[..., 1]  # (H, N2)
    P = kern.P.detach().double().numpy()[:, rows]
    P = P[..., 0] + 1j * P[..., 1]  # (R, H, N2)
    A_full = np.concatenate([A, A.conj()], -1)
    P_full = np.concatenate([P, P.conj()], -1)
    M = np.stack([np.diag(a) for a in A_full]) - np.einsum("rhn,rhm->hnm", P_full, P_full.conj())
    return M, np.concatenate([B, B.conj()], -1)


def bilinear(M, B, dt):
    """Abar = (I - dt/2 M)^-1 (I + dt/2 M), Bbar = (I - dt/2 M)^-1 dt B, per channel; dt (H,)."""
    eye = np.eye(M.shape[-1])
    left = eye - dt[:, None, None] / 2 * M
    Abar = np.linalg.solve(left, eye + dt[:, None, None] / 2 * M)
    Bbar = np.linalg.solve(left, (dt[:, None] * B)[..., None])[..., 0]
    return Abar, Bbar


def recurrence(Abar, Bbar, C_full, length):
    """Impulse response of x_k = Abar x_{k-1} + Bbar u_k, y_k = C x_k: (ch, H, length), real."""
    x = Bbar.copy()  # (H, 2N): the state after the impulse u_0 = 1
    out = []
    for _ in range(length):
        out.append(np.einsum("chn,hn->ch", C_full, x))
        x = np.einsum("hnm,hm->hn", Abar, x)
    y = np.stack(out, -1)
    assert np.abs(y.imag).max() < 1e-9 * max(1.0, np.abs(y).max())  # conjugate pairs make it real
    return y.real


def full(C):
    return np.concatenate([C, C.conj()], -1)


def power(A, n):
    return np.stack([np.linalg.matrix_power(a, n) for a in A])


def store_c(kern, C_full, l_kernel):
    N2 = kern.C.shape[2]
    with torch.no_grad():
        kern.C.copy_(torch.view_as_real(torch.from_numpy(C_full[..., :N2]).to(torch.complex64)))
        kern.l_kernel.fill_(l_kernel)


def dts(kern):
    return kern.dt().detach().double().numpy()


@pytest.mark.parametrize("channels", [1, 2])
def test_zero_low_rank_is_bilinear_diagonal_ssm(channels):
    """P = 0: the kernel is the bilinear diagonal SSM's impulse response, C stored as C~ = C (1 - abar^L)."""
    kern = random_kernel(channels=channels, low_rank=0.0, l_max=16)
    rng = np.random.default_rng(0)
    C = rng.standard_normal((channels, kern.H, 4)) + 1j * rng.standard_normal((channels, kern.H, 4))
    M, B = dense_system(kern)
    a = np.diagonal(M, axis1=-2, axis2=-1)  # (H, 2N): M is diagonal here
    dt = dts(kern)
    abar = (1 + dt[:, None] * a / 2) / (1 - dt[:, None] * a / 2)
    bbar = dt[:, None] * B / (1 - dt[:, None] * a / 2)
    y = np.zeros((channels, kern.H, 16))
    x = bbar.copy()
    for k in range(16):  # the scalar recurrence, mode by mode
        y[..., k] = (full(C) * x).sum(-1).real
        x = abar * x
    store_c(kern, full(C) * (1 - abar ** 16), 16)
    with torch.no_grad():
        got = kern(16, 1.0, None).double().numpy()
    assert np.abs(got - y).max() < 2e-5 * np.abs(y).max()


@pytest.mark.parametrize("rank,n_ssm", [(1, 1), (2, 1), (1, 3), (3, 3)])
@pytest.mark.parametrize("rate,length", [(1.0, 16), (0.5, 32), (0.75, 21), (2.0, 8), (3.5, 5), (7.0, 5), (1.0, 9)])
def test_low_rank_kernel_equals_dense_recurrence(rank, n_ssm, rate, length):
    """At rate r the kernel is the bilinear system on the step dt*r, truncated to n = round(l/r) taps
    (l = l_kernel, doubled while r * length > l), whose C is the stored C~ made exact for n taps:
    C_r = C~_l (I - Abar_r^n)^-1, and C~_2l = C~_l (I + Abar_1^l)."""
    kern = random_kernel(rank=rank, n_ssm=n_ssm, l_max=16, seed=rank + n_ssm)
    M, B = dense_system(kern)
    rng = np.random.default_rng(1)
    C = rng.standard_normal((2, kern.H, 4)) + 1j * rng.standard_normal((2, kern.H, 4))
    Abar1, _ = bilinear(M, B, dts(kern))
    C_tilde = np.einsum("chn,hnm->chm", full(C), np.eye(8) - power(Abar1, 16))
    store_c(kern, C_tilde, 16)
    l_kernel = 16
    while round(rate * length) > l_kernel:  # rate 3.5: round(3.5 * 5) = 18 > 16; rate 7: 35 > 32 > 16
        C_tilde = C_tilde + np.einsum("chn,hnm->chm", C_tilde, power(Abar1, l_kernel))
        l_kernel *= 2
    n = round(l_kernel / rate)
    Abar, Bbar = bilinear(M, B, dts(kern) * rate)
    C_r = np.linalg.solve(np.transpose(np.eye(8) - power(Abar, n), (0, 2, 1))[None],
                          C_tilde[..., None])[..., 0]  # row vectors: C_r (I - Abar^n) = C~
    want = recurrence(Abar, Bbar, C_r, length)
    with torch.no_grad():
        got = kern(length, rate, None).double().numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()


def test_plain_c_is_converted_when_l_kernel_is_zero():
    """l_kernel = 0 (an official layer never run): C is the plain C; the kernel is its exact truncation."""
    kern = random_kernel(rank=2, l_max=12)
    M, B = dense_system(kern)
    rng = np.random.default_rng(2)
    C = rng.standard_normal((2, kern.H, 4)) + 1j * rng.standard_normal((2, kern.H, 4))
    store_c(kern, full(C), 0)
    Abar, Bbar = bilinear(M, B, dts(kern))
    want = recurrence(Abar, Bbar, full(C), 12)
    with torch.no_grad():
        got = kern(12, 1.0, None).double().numpy()
    assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()
    assert int(kern.l_kernel) == 0  # nothing written back


@pytest.mark.parametrize("rate", [1.0, 0.5, 0.25])
def test_finer_grid_samples_the_continuous_kernel(rate):
    """K_r[l] / (dt r) approximates h(t) = C e^{Mt} B at t = (l + 1/2) dt r (bilinear: midpoint rule)."""
    kern = random_kernel(rank=1, l_max=16, dt=(0.005, 0.01), low_rank=0.3)  # bilinear error ~ (dt |A|)^2
    M, B = dense_system(kern)
    rng = np.random.default_rng(3)
    C = rng.standard_normal((2, kern.H, 4)) + 1j * rng.standard_normal((2, kern.H, 4))
    Abar1, _ = bilinear(M, B, dts(kern))
    store_c(kern, np.einsum("chn,hnm->chm", full(C), np.eye(8) - power(Abar1, 16)), 16)
    length = round(16 / rate)
    dt = dts(kern) * rate
    t = (np.arange(length) + 0.5)[None, :] * dt[:, None]  # (H, Lk)
    expm = torch.linalg.matrix_exp(torch.from_numpy(M[:, None] * t[..., None, None])).numpy()  # (H, Lk, 2N, 2N)
    h = np.einsum("chn,hlnm,hm->chl", full(C), expm, B).real  # (ch, H, Lk)
    with torch.no_grad():
        got = kern(length, rate, None).double().numpy() / dt[None, :, None]
    assert np.abs(got - h).max() < 2e-3 * np.abs(h).max()  # 3e-4 measured


def test_bandlimit_masks_c_tilde_only_and_not_by_rate():
    """The mask zeroes C~'s masked modes (from the reference step, whatever the rate); P stays whole."""
    kern = random_kernel(rank=2, l_max=12, dt=(0.1, 1.0))
    mask = kern.bandlimit_mask(0.5)
    assert 0 < mask.sum() < mask.numel()
    with torch.no_grad():
        masked = {r: kern(round(12 / r), r, 0.5) for r in (1.0, 0.5, 2.0)}
        assert all(not torch.allclose(k, kern(k.shape[-1], r, None), atol=1e-3) for r, k in masked.items())
        kern.C.mul_(mask[None, :, :, None])
        for r, k in masked.items():
            assert torch.allclose(k, kern(k.shape[-1], r, None), atol=1e-6)


def dplr_layer(dim=2, rank=1, bidirectional=True, bandlimit=0.5, l_max=(12, 10), seed=0):
    torch.manual_seed(seed)
    layer = S4ND(4, d_state=8, dim=dim, l_max=list(l_max), bidirectional=bidirectional, bandlimit=bandlimit,
                 dt_min=0.05, dt_max=0.5, kernel="dplr", rank=rank).eval()
    with torch.no_grad():
        for k in layer.kernel:
            k.A_real.add_(torch.randn_like(k.A_real) * 0.3)
            k.P.copy_(torch.randn_like(k.P) * 0.4)
    return layer


def test_layer_options_and_default():
    assert S4ND(4, d_state=8).kernel_type == "diag"
    assert all(type(k) is SSMKernel for k in S4ND(4, d_state=8).kernel)
    layer = dplr_layer(rank=2)
    assert layer.kernel_type == "dplr" and all(isinstance(k, DPLRKernel) and k.kind == "dplr" for k in layer.kernel)
    names = set(layer.state_dict())
    assert {"kernel.0.P", "kernel.0.l_kernel", "kernel.1.C", "D"} <= names
    assert layer.kernel[0].P.shape == (2, 1, 4, 2) and int(layer.kernel[1].l_kernel) == 10
    for bad in (dict(kernel="s4"), dict(kernel="dplr", rank=0)):
        with pytest.raises(ResbenchError, match="kernel|rank"):
            S4ND(4, d_state=8, **bad)


@pytest.mark.parametrize("dim,shape,rate", [(1, (13,), 0.8), (2, (9, 14), (1.3, 0.7)), (2, (4, 3), 3.5),
                                            (3, (5, 4, 6), 1.0)])
def test_toeplitz_equals_fft_and_weights_stay(dim, shape, rate):
    layer = dplr_layer(dim=dim, l_max=(12, 10, 5)[:dim])
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    x = torch.randn(2, 4, *shape)
    with torch.no_grad():
        a = layer(x, rate=rate, method="toeplitz")
        b = layer(x, rate=rate, method="fft")
    assert torch.isfinite(a).all() and (a - b).abs().max() < 1e-4
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())  # rate 3.5 doubles l_kernel


def test_every_weight_gets_a_gradient():
    layer = dplr_layer(rank=2).train()
    layer(torch.randn(2, 4, 8, 9), rate=0.9).pow(2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def official_config(layer, **extra):
    return {"d_model": layer.d_model, "d_state": 8, "dim": layer.dim, "l_max": layer.l_max,
            "bidirectional": layer.bidirectional, "bandlimit": layer.bandlimit, "n_ssm": 1,
            "transposed": True, "linear": False, "final_act": "glu", **extra}


@pytest.mark.parametrize("names", [{}, {"kernel": "dplr"}, {"mode": "nplr"}, {"kernel": "s4", "mode": "diag"},
                                   {"kernel": "nplr", "disc": "bilinear", "init": "legs"},
                                   {"mode": "dplr", "init": "dplr-lin", "disc": "zoh", "rank": 2}])
def test_official_dplr_names_load_by_name(names):
    layer = dplr_layer(rank=2)
    x = torch.randn(2, 4, 12, 10)
    loaded = S4ND.from_state_spaces(official_config(layer, **names), layer.state_dict()).eval()
    assert loaded.kernel_type == "dplr" and loaded.kernel[0].rank == 2  # rank from P's shape
    with torch.no_grad():
        for rate in (1.0, 0.5):
            assert torch.equal(loaded(x, rate=rate), layer(x, rate=rate))


@pytest.mark.parametrize("change,needle", [
    ({"kernel": "conv"}, "kernel"), ({"kernel": "ema"}, "kernel"), ({"mode": None}, "kernel"),
    ({"disc": "foh"}, "disc"), ({"rank": 1}, "shape"), ({"l_max": None}, "l_max"),
    ({"kernel": "diag"}, "unexpected 'kernel.0.P'"), ({"kernel": "s4d", "init": "diag-lin"}, "kernel"),
    ({"dt_tie": False}, "dt_tie"), ({"channels": 0}, "channels"),
])
def test_unsupported_official_dplr_options_are_one_line_errors(change, needle):
    layer = dplr_layer(rank=2)
    with pytest.raises(ResbenchError, match=needle) as err:
        S4ND.from_state_spaces(official_config(layer, **change), layer.state_dict())
    assert "\n" not in str(err.value)


def test_diag_kernel_refuses_bilinear_and_dplr_state_dict_needs_p():
    torch.manual_seed(0)
    diag = S4ND(4, d_state=8, l_max=[6, 6])
    cfg = official_config(diag, kernel="diag")
    assert S4ND.from_state_spaces({**cfg, "kernel": "s4d"}, diag.state_dict()).kernel_type == "diag"
    with pytest.raises(ResbenchError, match="disc"):
        S4ND.from_state_spaces({**cfg, "disc": "bilinear"}, diag.state_dict())
    with pytest.raises(ResbenchError, match="missing 'kernel.0.P'"):
        S4ND.from_state_spaces({**cfg, "kernel": "dplr"}, diag.state_dict())


# ---- the official checkpoint fixture (default kernel, i.e. DPLR) ----------------------------------------

def fixture_layers():
    data = torch.load(FIXTURE, weights_only=True)
    model = data["hyper_parameters"]["model"]
    config = {**model["layer"], "d_model": model["d_model"]}
    layers = []
    for i in range(model["n_layers"]):
        prefix = f"model.layers.{i}.layer."
        sd = {k[len(prefix):]: v for k, v in data["state_dict"].items() if k.startswith(prefix)}
        layers.append(S4ND.from_state_spaces(config, sd).eval())
    return data, layers


def test_fixture_layers_load_and_give_finite_kernels():
    data, layers = fixture_layers()
    assert [layer.kernel_type for layer in layers] == ["dplr", "dplr"]
    for layer in layers:
        assert layer.l_max == [16, 16] and not layer.transposed
        for rate, size in ((1.0, 16), (0.5, 32)):
            with torch.no_grad():
                for k in layer.kernels([size, size], rate):
                    assert k.shape == (2, 8, size) and torch.isfinite(k).all()


def test_fixture_backbone_reproduces_official_features_and_logits():
    """The official backbone around the imported layers (linear encoder, pre-norm residual blocks with
    LayerNorm, final norm, mean-pool decoder) gives the official features and logits at rates 1 and 0.5."""
    data, layers = fixture_layers()
    sd = data["state_dict"]

    def norm(x, name):
        return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"])

    assert len(data["cases"]) == 2
    for case in data["cases"]:
        x = case["input"] @ sd["encoder.0.weight"].T + sd["encoder.0.bias"]  # (B, H, W, D)
        with torch.no_grad():
            for i, layer in enumerate(layers):
                x = x + layer(norm(x, f"model.layers.{i}.norm.norm"), rate=case["rate"])
            x = norm(x, "model.norm.norm")
        logits = x.mean(dim=(1, 2)) @ sd["decoder.0.output_transform.weight"].T + sd["decoder.0.output_transform.bias"]
        assert (x - case["features"]).abs().max() < 1e-4, case["loader"]
        assert (logits - case["logits"]).abs().max() < 1e-4, case["loader"]
