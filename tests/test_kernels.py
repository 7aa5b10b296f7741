"""Tests for resbench.kernels: the aliasing metric, kernel spectra of S4ND and ckconv models, and plot-kernels."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_user_error
from resbench.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from resbench.errors import ResbenchError
from resbench.kernels import aliasing_fraction, aliasing_table, kernel_spectra, resampled_taps
from resbench.layers.s4nd import S4ND
from resbench.models import create_model
from resbench.report import kernel_analysis

TRAIN = 14
SIZES = [(7, 7), (14, 14), (21, 21), (28, 28), (56, 56)]
KEY = ["layer", "axis", "group", "test_res", "bandlimit"]


def checkpoint(model) -> Checkpoint:
    """An in-memory checkpoint of `model` as it is now (no file, no training)."""
    return Checkpoint(model=model.name, config=model.config_dict(), provenance={"train_res": TRAIN},
                      data_stats={"mean": [0.5], "std": [0.5]}, state_dict=model.state_dict())


def s4nd_with_modes(cycles_per_px: float, dt: float, decay: float = 0.5, **config) -> Checkpoint:
    """A tiny s4nd_iso whose every SSM mode oscillates at `cycles_per_px` (per training pixel), bandlimit off.

    A mode's frequency on the reference grid is dt * A_imag / (2 pi) cycles per step; `decay` is -Re A.
    """
    torch.manual_seed(0)
    model = create_model("s4nd_iso", **{"d_model": 8, "n_layers": 1, "d_state": 4, "train_res": TRAIN,
                                        "bandlimit": None, **config})
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, S4ND):
                for kern in layer.kernel:
                    kern.inv_dt.fill_(math.log(dt))
                    kern.A_imag.fill_(2 * math.pi * cycles_per_px / dt)
                    kern.A_real.fill_(math.log(decay))
    return checkpoint(model)


def by_size(table: pd.DataFrame, size) -> pd.DataFrame:
    return table[table["test_res"] == str(size[0])]


# ---------------------------------------------------------------------------------------------
# the metric on synthetic spectra


def test_all_energy_below_nyquist_is_no_aliasing():
    freqs = np.arange(41) / 10  # 0, 0.1, ..., 4 cycles per training pixel
    energy = np.where(freqs <= 0.4, 1.0, 0.0)
    assert aliasing_fraction(freqs, energy, 0.5) == 0.0
    assert aliasing_fraction(freqs, energy, 0.4) == 0.0  # energy exactly at the Nyquist frequency is kept


def test_half_the_energy_above_nyquist_is_half():
    freqs = np.arange(8) / 8  # 0, 1/8, ..., 7/8
    energy = np.ones(8)
    assert aliasing_fraction(freqs, energy, 0.45) == pytest.approx(0.5)
    energy = np.array([3.0, 0, 0, 0, 0, 0, 0, 3.0])
    assert aliasing_fraction(freqs, energy, 0.5) == pytest.approx(0.5)


def test_all_energy_above_nyquist_and_no_energy():
    freqs = np.linspace(0, 1, 11)
    assert aliasing_fraction(freqs, np.where(freqs > 0.6, 2.0, 0.0), 0.5) == pytest.approx(1.0)
    assert aliasing_fraction(freqs, np.zeros(11), 0.5) == 0.0  # a kernel masked away aliases nothing


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 10), min_size=2, max_size=40), st.floats(0, 1), st.floats(0, 1))
def test_fraction_is_in_unit_interval_and_falls_as_nyquist_rises(energy, a, b):
    energy = np.array(energy)
    freqs = np.linspace(0, 1, len(energy))
    low, high = sorted((a, b))
    f_low, f_high = aliasing_fraction(freqs, energy, low), aliasing_fraction(freqs, energy, high)
    assert 0.0 <= f_high <= f_low + 1e-12
    assert 0.0 <= f_low <= 1.0 and 0.0 <= f_high <= 1.0  # exactly: no rounding past 1


def test_fraction_never_rounds_above_one():
    # energies a property run found: summing all bins and the bins above Nyquist in two orders made
    # the ratio 1.0000000000000002
    energy = np.array([0.0, 0.0, 0.0, 1e-12, 0.0, 0.16527635528529094, 8.132702392002724, 9.127555772777217])
    assert aliasing_fraction(np.linspace(0, 1, 8), energy, 0.0) <= 1.0


# ---------------------------------------------------------------------------------------------
# S4ND layers with known modes


def test_low_frequency_modes_barely_alias():
    # modes at 0.01 cycles per training pixel, slow decay: far below the Nyquist of every test grid here
    table = aliasing_table(s4nd_with_modes(0.01, dt=0.01), SIZES)
    assert set(table["bandlimit"]) == {"off"}  # trained without a bandlimit: nothing to switch on
    assert (table["aliasing"] < 0.05).all(), table


def test_high_frequency_modes_alias_on_a_coarse_grid():
    # modes at 0.4 cycles per training pixel: above the 0.25 Nyquist of a 7 px grid, below 14 px's 0.5
    table = aliasing_table(s4nd_with_modes(0.4, dt=1.0, decay=0.05), SIZES)
    assert (by_size(table, (7, 7))["aliasing"] > 0.3).all(), table
    assert (by_size(table, (28, 28))["aliasing"] < 0.05).all(), table


def test_each_axis_uses_its_own_nyquist_on_a_rectangular_grid():
    # 28 rows (Nyquist 1.0 cycles per training pixel) by 7 columns (0.25): only axis 1 misses the 0.4 modes
    table = aliasing_table(s4nd_with_modes(0.4, dt=1.0, decay=0.05), [(28, 7)])
    assert set(table["test_res"]) == {"28x7"}
    rows, cols = table[table["axis"] == 0], table[table["axis"] == 1]
    assert np.allclose(rows["nyquist_cycles_per_train_px"], 1.0)
    assert np.allclose(cols["nyquist_cycles_per_train_px"], 0.25)
    assert (rows["aliasing"] < 0.05).all() and (cols["aliasing"] > 0.3).all(), table


def test_spectrum_peaks_at_the_mode_frequency():
    spectra = kernel_spectra(s4nd_with_modes(0.4, dt=1.0, decay=0.05))
    assert spectra
    for sp in spectra:
        assert sp.train_len == TRAIN
        resolution = sp.freqs[1] - sp.freqs[0]
        assert sp.freqs[np.argmax(sp.energy)] == pytest.approx(0.4, abs=resolution), (sp.layer, sp.axis, sp.group)


def test_bandlimit_removes_the_high_modes():
    # with alpha = 0.5 every mode at or above 0.25 cycles per step is masked: the "on" kernels are empty
    spectra = kernel_spectra(s4nd_with_modes(0.4, dt=1.0, decay=0.05, bandlimit=0.5))
    assert {sp.bandlimit for sp in spectra} == {"on", "off"}
    for sp in spectra:
        assert (sp.energy.sum() == 0) == (sp.bandlimit == "on")


# ---------------------------------------------------------------------------------------------
# the trained tiny S4ND checkpoint


@pytest.fixture(scope="module")
def s4nd_table(trained):
    return aliasing_table(load_checkpoint(trained["s4nd"]), SIZES)


def test_table_has_one_row_per_layer_axis_group_size_and_bandlimit(s4nd_table, trained):
    # 1 layer x 2 axes x 2 directions x (5 sizes x bandlimit on/off, plus adaptive at the one size below 14)
    assert len(s4nd_table) == 1 * 2 * 2 * (len(SIZES) * 2 + 1)
    assert not s4nd_table.duplicated(KEY).any()
    assert set(s4nd_table["group"]) == {"forward", "backward"}
    assert set(s4nd_table["bandlimit"]) == {"on", "off", "adaptive"}
    assert set(s4nd_table.loc[s4nd_table["bandlimit"] == "adaptive", "test_res"]) == {"7"}
    assert set(s4nd_table["checkpoint"]) == {trained["s4nd"].stem} and set(s4nd_table["train_res"]) == {"14"}
    assert s4nd_table["aliasing"].between(0, 1).all()
    nyquist = s4nd_table["test_res"].astype(int) / (2 * TRAIN)
    assert np.allclose(s4nd_table["nyquist_cycles_per_train_px"], nyquist)


def test_bandlimit_on_aliases_less_than_off_at_every_test_size(s4nd_table):
    mean = s4nd_table.groupby(["test_res", "bandlimit"])["aliasing"].mean().unstack()
    assert len(mean) == len(SIZES)
    assert (mean["on"] < mean["off"]).all(), mean


def test_energy_above_the_test_nyquist_does_not_rise_with_the_test_size(s4nd_table):
    fixed = s4nd_table[s4nd_table["bandlimit"] != "adaptive"]  # adaptive: a different kernel at each size
    for key, g in fixed.groupby(["layer", "axis", "group", "bandlimit"]):
        values = g.assign(side=g["test_res"].astype(int)).sort_values("side")["above_test_nyquist"].to_numpy()
        assert (np.diff(values) <= 1e-12).all(), (key, values)
        assert values[0] > values[-1], key  # the 7 px grid misses energy the 56 px grid keeps


def test_aliasing_uses_the_coarser_of_the_test_and_training_grids(s4nd_table):
    side = s4nd_table["test_res"].astype(int)
    below, above = s4nd_table[side <= TRAIN], s4nd_table[side >= TRAIN]
    assert np.allclose(below["aliasing"], below["above_test_nyquist"])  # the test grid is the coarser
    assert np.allclose(s4nd_table["nyquist_min_cycles_per_train_px"], np.minimum(side, TRAIN) / (2 * TRAIN))
    for key, g in above.groupby(["layer", "axis", "group", "bandlimit"]):
        assert np.ptp(g["aliasing"].to_numpy()) < 1e-12, key  # the training grid's folding, at every finer size
    finer = s4nd_table[side > TRAIN]
    assert (finer["aliasing"] >= finer["above_test_nyquist"] - 1e-12).all()


def test_untrained_modes_are_flagged_when_the_mask_trained_is_removed(s4nd_table, trained):
    assert load_checkpoint(trained["s4nd"]).config["bandlimit"] is not None  # trained with the mask
    assert (s4nd_table["untrained_modes"] == (s4nd_table["bandlimit"] == "off")).all()


def test_resampled_taps_at_the_training_size_are_the_layers_taps(trained):
    ckpt = load_checkpoint(trained["s4nd"])
    layer = next(m for m in ckpt.build_model().modules() if isinstance(m, S4ND))
    for axis, bl, alpha in ((0, "on", 0.5), (1, "off", None)):
        pos, taps = resampled_taps(ckpt, (TRAIN, TRAIN), 0, axis, 1, bl)
        with torch.no_grad():
            want = layer.kernels([TRAIN, TRAIN], 1.0, alpha)[axis][0, 1].double().numpy()  # (14,) causal taps
        assert np.array_equal(pos, np.arange(TRAIN))
        assert np.allclose(taps, want)
    pos, taps = resampled_taps(ckpt, (28, 28))
    assert len(taps) == 2 * TRAIN and np.allclose(pos, np.arange(28) / 2)  # same extent, twice the taps


def test_kernel_figure_rows_match_their_layers(tmp_path):
    # 11 layers: sorting the names as text would put blocks.10 before blocks.2
    torch.manual_seed(0)
    model = create_model("s4nd_iso", d_model=2, n_layers=11, d_state=2, train_res=TRAIN)
    path = save_checkpoint(checkpoint(model), tmp_path / "deep.pt")
    fig, _, _ = kernel_analysis(str(path), [(TRAIN, TRAIN)])
    ckpt = load_checkpoint(path)
    names = [name for name, m in ckpt.build_model().named_modules() if isinstance(m, S4ND)]
    kernel_axes = fig.axes[0::2]  # (taps, spectrum) per row
    assert len(kernel_axes) == len(names)
    for ax in kernel_axes:
        name = ax.get_title().split(":")[0]
        _, want = resampled_taps(ckpt, (TRAIN, TRAIN), names.index(name))
        assert np.allclose(ax.lines[0].get_ydata(), want), name


# ---------------------------------------------------------------------------------------------
# ckconv and conv2d checkpoints


@pytest.fixture(scope="module")
def ckconv_path(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("ckconv", d_model=8, n_layers=1, train_res=TRAIN)
    return save_checkpoint(checkpoint(model), tmp_path_factory.mktemp("ckconv") / "ckconv_14.pt")


def test_ckconv_rows_have_bandlimit_none(ckconv_path):
    table = aliasing_table(load_checkpoint(ckconv_path), SIZES)
    # 1 layer x 2 axes x sizes, one group, no bandlimit switch; plus the adaptive cell mean at the size below 14
    assert len(table) == 1 * 2 * (len(SIZES) + 1)
    assert not table.duplicated(KEY).any()
    assert set(table["group"]) == {"all"} and set(table["bandlimit"]) == {"none", "adaptive"}
    assert set(table.loc[table["bandlimit"] == "adaptive", "test_res"]) == {"7"}
    table = table[table["bandlimit"] == "none"]
    assert table["aliasing"].between(0, 1).all()
    for _, g in table.groupby("axis"):
        values = g.assign(side=g["test_res"].astype(int)).sort_values("side")["aliasing"].to_numpy()
        assert (np.diff(values) <= 1e-12).all() and values[0] > 0


def test_conv2d_has_no_continuous_kernels(trained):
    with pytest.raises(ResbenchError, match="no continuous kernels"):
        kernel_spectra(load_checkpoint(trained["conv"]))


# ---------------------------------------------------------------------------------------------
# the plot-kernels command


@pytest.mark.parametrize("which", ["s4nd", "ckconv"])
def test_plot_kernels_writes_figures_and_csv(trained, ckconv_path, tmp_path, cli, which):
    path = trained["s4nd"] if which == "s4nd" else ckconv_path
    out = tmp_path / "kernels"
    code, stdout, err = cli("plot-kernels", path, "--test-res", "7,14,28", "-o", out)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"kernels.png", "kernels.svg", "aliasing.png", "aliasing.svg",
                                               "aliasing.csv"}
    for name in ("kernels.png", "aliasing.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    csv = pd.read_csv(out / "aliasing.csv", dtype={"test_res": str}, keep_default_na=False)
    want = aliasing_table(load_checkpoint(path), [(7, 7), (14, 14), (28, 28)])
    pd.testing.assert_frame_equal(csv[KEY + ["aliasing"]], want[KEY + ["aliasing"]], check_dtype=False)
    assert f"in {out}" in stdout
    # the printed summary lists the sizes in numeric order, not as text (14, 28, 7)
    rows = [line.split()[0] for line in stdout.splitlines() if line.split() and line.split()[0].isdigit()]
    assert rows == ["7", "14", "28"], stdout


def test_plot_kernels_refuses_a_conv2d_checkpoint(trained, tmp_path, cli):
    code, _, err = cli("plot-kernels", trained["conv"], "-o", tmp_path / "k")
    assert_user_error(code, err, trained["conv"], "conv2d_iso")
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("bad", ["7,,14", "abc", "0", "14x"])
def test_plot_kernels_bad_test_res(trained, tmp_path, cli, bad):
    code, _, err = cli("plot-kernels", trained["s4nd"], "--test-res", bad, "-o", tmp_path / "k")
    assert_user_error(code, err, bad)
    assert not (tmp_path / "k").exists()


def test_adaptive_s4nd_spectrum_is_the_kernel_with_alpha_scaled_to_the_test_grid():
    ckpt = s4nd_with_modes(0.1, 0.05, bandlimit=0.5)
    sizes = [(7, 7), (5, 10), (28, 28)]  # 7 and the 5-row axis are below 14; 28 and the 10... too
    adaptive = [s for s in kernel_spectra(ckpt, oversample=16, test_sizes=sizes) if s.bandlimit == "adaptive"]
    assert {(s.test_res, s.axis) for s in adaptive} == {("7", 0), ("7", 1), ("5x10", 0), ("5x10", 1)}
    for s in adaptive:
        scale = {"7": (0.5, 0.5), "5x10": (5 / 14, 10 / 14)}[s.test_res][s.axis]
        ref = Checkpoint(model=ckpt.model, config={**ckpt.config, "bandlimit": 0.5 * scale},
                         provenance=ckpt.provenance, data_stats=ckpt.data_stats, state_dict=ckpt.state_dict)
        same = [r for r in kernel_spectra(ref, oversample=16) if r.bandlimit == "on" and r.layer == s.layer
                and r.axis == s.axis and r.group == s.group]
        assert len(same) == 1 and np.allclose(same[0].energy, s.energy) and np.allclose(same[0].freqs, s.freqs)
    # a mode at 0.1 cycles per training pixel: kept by alpha 0.5 (cutoff 0.25), masked by alpha 0.5 x 5/14
    # (cutoff ~0.089) on the 5-row axis, so that axis's adaptive kernel has no energy at all
    row = next(s for s in adaptive if s.test_res == "5x10" and s.axis == 0)
    assert row.energy.max() == 0
    assert next(s for s in adaptive if s.test_res == "5x10" and s.axis == 1).energy.max() > 0


def test_adaptive_ckconv_spectrum_is_the_cell_mean_of_the_kernel(ckconv_path):
    spectra = kernel_spectra(load_checkpoint(ckconv_path), oversample=8, test_sizes=[(7, 7), (28, 28)])
    for s in [s for s in spectra if s.bandlimit == "adaptive"]:
        plain = next(r for r in spectra if r.bandlimit == "none" and r.axis == s.axis and r.layer == s.layer)
        assert s.test_res == "7"
        width = TRAIN / 7  # a test pixel is two training pixels: a box of width 2, sinc^2 in energy
        assert np.allclose(s.energy, plain.energy * np.sinc(plain.freqs * width) ** 2)
        assert s.energy[0] == pytest.approx(plain.energy[0]) and (s.energy <= plain.energy + 1e-12).all()


@pytest.mark.parametrize("length", [1, 511, 512, 1025, 20000])
def test_blocked_taps_are_the_dense_taps(length):
    """Long kernels (the dense spectra) are evaluated block by block; every tap is the sum of exponentials."""
    from resbench.layers.ssm_kernels import SSMKernel, _taps, _taps_blocked

    torch.manual_seed(0)
    kern = SSMKernel(6, 8, 2, 2, "diag-lin", 1e-3, 1e-1)
    Cz, dtA = kern.modes(1 / 64, 0.5)
    exact = _taps(Cz.to(torch.complex128), dtA.to(torch.complex128), torch.arange(length, dtype=torch.float64))
    blocked = _taps_blocked(Cz, dtA, length).double()
    assert blocked.shape == exact.shape == (2, 6, length)
    assert (blocked - exact).abs().max() <= 1e-5 * exact.abs().max()


def test_a_long_kernel_is_the_same_kernel_blocked_or_not():
    from resbench.layers import ssm_kernels

    torch.manual_seed(1)
    kern = ssm_kernels.SSMKernel(4, 8, 1, 1, "diag-inv", 1e-3, 1e-1)
    n = ssm_kernels.LONG_KERNEL + 100
    long = kern(n, 1 / 16, 0.5)  # blocked
    short = kern(ssm_kernels.LONG_KERNEL, 1 / 16, 0.5)  # one exponential per tap
    assert long.shape == (1, 4, n)
    torch.testing.assert_close(long[..., :ssm_kernels.LONG_KERNEL], short, rtol=0, atol=2e-6 * short.abs().max().item())
