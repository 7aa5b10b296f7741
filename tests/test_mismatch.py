"""The response mismatch (resbench.mismatch) and the within-checkpoint validation of metrics
(resbench.metric_validation), checked against direct computations."""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_checkpoint
from resbench.layers.s4nd import S4ND
from resbench.metric_validation import compare_predictors, within_group_rho, zero_shot_drops
from resbench.mismatch import image_power_spectrum, layer_mismatch, mismatch_table, tap_response


def test_tap_response_is_the_dft_of_the_circular_kernel():
    # causal taps at offsets 0..3, anticausal taps k[1, j] at offset -(j+1), as the layer's Toeplitz matrix has them
    rng = np.random.default_rng(0)
    taps = rng.normal(size=(2, 3, 4))
    n = 16
    circular = np.zeros((3, n))
    circular[:, :4] = taps[0]
    circular[:, n - 4:] = taps[1][:, ::-1]  # offset -1 is the last sample
    freqs = np.arange(n // 2 + 1) / n
    assert np.allclose(tap_response(taps, 1.0, freqs), np.fft.fft(circular, axis=-1)[:, : n // 2 + 1])


def test_tap_response_places_taps_step_pixels_apart():
    taps = np.zeros((1, 1, 3))
    taps[0, 0, 2] = 1.0  # one causal tap at offset 2 * step
    freqs = np.array([0.0, 0.1, 0.25])
    assert np.allclose(tap_response(taps, 1.5, freqs)[0], np.exp(-2j * np.pi * freqs * 3.0))


def test_tap_response_matches_the_layer_convolution():
    # the layer's own output on a cosine is |R(f)| cos(. + arg R(f)) wherever the whole kernel overlaps the input
    torch.manual_seed(0)
    layer = S4ND(d_model=2, d_state=4, l_max=(16,), dim=1, bidirectional=True, linear=True).double()
    with torch.no_grad():
        layer.D.zero_()
        taps = layer.kernels([16], [1.0])[0]  # 16 causal and 16 anticausal taps
    k, n = 8 / 128, 128
    x = torch.cos(2 * np.pi * k * torch.arange(n, dtype=torch.float64)).expand(1, 2, n)
    with torch.no_grad():
        y = layer(x.clone(), rate=1.0, method="fft")
    r = tap_response(taps.numpy(), 1.0, np.array([k]))[:, 0]
    expected = np.abs(r)[:, None] * np.cos(2 * np.pi * k * np.arange(n)[None, :] + np.angle(r)[:, None])
    assert np.allclose(y[0, :, 16:n - 16].numpy(), expected[:, 16:n - 16], atol=1e-6)  # the FFT runs in float32


def test_mismatch_is_zero_at_the_training_size_and_grows_away_from_it():
    ckpt = make_checkpoint("s4nd_iso", d_state=4, bandlimit=0.5, train_res=14)
    table = mismatch_table(ckpt, [(7, 7), (14, 14), (21, 21), (28, 28)], settings=("on", "off"))
    on = table[table.bandlimit == "on"].set_index("test_res")["mismatch_flat"]
    assert on["14"] == 0.0
    assert on["21"] > 0 and on["28"] > on["21"] and on["7"] > 0
    assert set(table.bandlimit) == {"on", "off"}


def test_a_model_without_s4nd_layers_has_no_rows():
    assert mismatch_table(make_checkpoint("conv2d_iso"), [(7, 7)]).empty


def test_layer_mismatch_weights_by_the_power_spectrum():
    torch.manual_seed(1)
    layer = S4ND(d_model=2, d_state=4, l_max=(16,), dim=1, bidirectional=True)
    flat = layer_mismatch(layer, [1.0], [0.5])
    # all the weight on one frequency: the ratio is that frequency's alone
    power = {32: np.zeros(17)}
    power[32][3] = 1.0
    num, den = layer_mismatch(layer, [1.0], [0.5], power)
    taps_t = layer.kernels([16], [1.0])[0].detach().double().numpy()
    taps_s = layer.kernels([32], [0.5])[0].detach().double().numpy()
    f = np.array([3 / 16])
    r_s, r_t = tap_response(taps_s, 0.5, f), tap_response(taps_t, 1.0, f)
    assert num == pytest.approx(float((np.abs(r_s - r_t) ** 2).sum()))
    assert den == pytest.approx(float((np.abs(r_t) ** 2).sum()))
    assert (num, den) != pytest.approx(flat)


def test_image_power_spectrum_finds_a_stripe_frequency():
    x = torch.cos(2 * np.pi * 3 * torch.arange(16) / 16).expand(4, 1, 16, 16)
    p = image_power_spectrum(x)
    assert p.argmax() == 3 and p[0] == pytest.approx(0.0, abs=1e-9)


def results_frame(drop_of, checkpoints=("a", "b", "c", "d", "e", "f")):
    """Native cells of a fake study: trained at 14, sizes 7..56; accuracy 0.9 at 14 minus drop_of(ckpt, size)."""
    rows = []
    for i, c in enumerate(checkpoints):
        for s in (7, 10, 14, 21, 28, 42, 56):
            acc = 0.9 - (0.0 if s == 14 else drop_of(i, s) / 100)
            rows.append({"checkpoint": c, "bandlimit": "on", "policy": "native", "train_res": "14",
                         "test_res": str(s), "accuracy": acc, "seen_in_training": False})
    rows.append({**rows[0], "policy": "resize-input", "accuracy": 0.1})  # not a native cell: left out
    return pd.DataFrame(rows)


def test_zero_shot_drops_are_against_the_same_settings_native_cell():
    drops = zero_shot_drops(results_frame(lambda i, s: abs(s - 14) + i))
    assert len(drops) == 6 * 6
    row = drops[(drops.checkpoint == "b") & (drops.test_res == "28")].iloc[0]
    assert row["drop"] == pytest.approx(15.0) and row["log_ratio"] == pytest.approx(np.log(2))


def test_a_metric_that_orders_the_sizes_beats_the_distance_in_size():
    # every size below training loses more than any above it: |log| ties 7 with 28, the metric not
    def drop(i, s):
        return (20.0 if s < 14 else 0.0) + abs(np.log(s / 14)) * 10 + 0.1 * i
    drops = zero_shot_drops(results_frame(drop))
    drops["metric"] = drops["drop"] ** 2  # a monotone function of the drop: rho 1 in every group
    drops["constant"] = drops["checkpoint"].map({c: i for i, c in enumerate("abcdef")})
    table = compare_predictors(drops, ["metric"], draws=200).set_index("predictor")
    assert table.loc["metric", "rho"] == pytest.approx(1.0)
    assert table.loc["log_ratio", "rho"] < 0.95
    assert table.loc["metric", "verdict"] == "beats"
    # the side-aware trivial predictor knows what this metric knows: no better than it
    side = compare_predictors(drops, ["metric"], trivial="side_then_distance", draws=200).set_index("predictor")
    assert side.loc["side_then_distance", "rho"] == pytest.approx(1.0)
    assert side.loc["metric", "verdict"] == "not distinguishable from"
    # a value constant per checkpoint cannot order sizes: rho 0 in every group, however well it ranks checkpoints
    assert (within_group_rho(drops, ["constant"])["constant"] == 0).all()


def test_the_trivial_predictor_as_a_metric_is_not_distinguishable_from_itself():
    drops = zero_shot_drops(results_frame(lambda i, s: abs(np.log(s / 14)) * (10 + i)))
    drops["same"] = drops["log_ratio"]
    row = compare_predictors(drops, ["same"], draws=200).set_index("predictor").loc["same"]
    assert row["diff"] == pytest.approx(0.0) and row["verdict"] == "not distinguishable from"
