"""Signals are resized by a band-limited resampler (scipy.signal.resample_poly), so resize-input brings a
2 kHz signal back to 4 kHz without spectral images."""

import math

import numpy as np
import pytest
import torch

from resbench.models import create_model
from resbench.models.base import resize_input
from resbench.resolution import _resample_axis, resize_images


def _tone(freq, length):
    t = torch.arange(length, dtype=torch.float64) / length  # one second
    return torch.sin(2 * math.pi * freq * t).to(torch.float32)[None, None]  # (1, 1, L)


def _share_above(y, hz):
    spectrum = np.abs(np.fft.rfft(y[0, 0].numpy())) ** 2  # bin k = k Hz for a one-second signal
    return spectrum[hz + 1:].sum() / spectrum.sum(), np.sqrt(spectrum) / (len(y[0, 0]) / 2)


def test_upsampling_a_signal_leaves_no_spectral_images():
    x = _tone(700, 2000)  # 700 Hz at 2 kHz
    y = resize_images(x, (4000,))
    assert y.shape == (1, 1, 4000) and y.dtype == torch.float32
    images, amplitude = _share_above(y, 1000)
    assert images < 1e-3 and amplitude[700] == pytest.approx(1.0, abs=0.01)
    linear, linear_amp = _share_above(_resample_axis(x, 2, 4000), 1000)  # what linear interpolation leaves
    assert linear > 0.02 and linear_amp[700] < 0.9


def test_downsampling_a_signal_folds_nothing_back():
    y = resize_images(_tone(1500, 4000), (2000,))  # above the 1 kHz Nyquist of the 2 kHz grid
    assert y.shape == (1, 1, 2000) and y.pow(2).mean().sqrt() < 0.01


def test_signal_resize_keeps_batch_and_channels_apart_and_scales_uint8():
    x = torch.stack([_tone(100, 400)[0], 2 * _tone(50, 400)[0]])  # (2, 1, 400)
    y = resize_images(x, (600,))
    assert torch.allclose(y[1], resize_images(x[1:], (600,))[0]) and not torch.allclose(y[0], y[1])
    assert torch.equal(resize_images(x, (400,)), x)  # the same size: untouched
    ones = resize_images(torch.full((1, 1, 200), 255, dtype=torch.uint8), (400,))  # uint8 -> [0, 1]
    assert ones[..., 100:300].allclose(torch.ones(200), atol=0.01)  # away from the zero-padded ends


def test_resize_input_of_a_signal_model_uses_the_resampler():
    model = create_model("s4nd_iso", train_res=[400], d_model=8, n_layers=1, d_state=4).eval()
    x = _tone(90, 200)
    assert torch.equal(resize_input(x, model.train_size), resize_images(x, (400,)))
    with torch.no_grad():
        assert torch.equal(model.forward_policy(x, "resize-input"), model(resize_images(x, (400,))))
