"""Response mismatch: how far the filter an S4ND layer applies on a test grid is from the one it trained with.

The aliasing metric (resbench.kernels) looks at a continuous kernel's spectrum and a Nyquist limit. This
measure looks at what the layer really runs. At a test size the layer's taps along an axis are cell
integrals of its continuous kernel over test pixels (S4ND's zero-order hold), placed at offsets d x w
training pixels (w = train/test on that axis, causal taps at d >= 0, anticausal ones at d <= -1). Their
frequency response, in cycles per training pixel, is

    R_s(f) = sum_d taps_s[d] exp(-2 pi i f d w)

and R_t(f) the same on the training grid (w = 1; zero above the training grid's Nyquist, 0.5, where the
network never had a response). On the test grid's frequencies f_k = k / L_train (k = 1 .. L_test/2; the
test grid's DFT bins, in cycles per training pixel; DC left out), weighted by a power spectrum P(k):

    mismatch(s) = sum_k P(k) sum_h |R_s,h(f_k) - R_t,h(f_k)|^2 / sum_k P(k) sum_h |R_t,h(f_k)|^2

summed over the layer's channels h and axes, then averaged over the layers. It is 0 when the layer applies
at the test size exactly the filter it trained with, on the frequencies the test grid holds. It counts
what the aliasing metric misses: the cell averaging itself (coarser cells low-pass the kernel and move its
taps by half a cell) and, above the training size, the response to frequencies training never held.
`P` is flat (`weighting="flat"`) or the test images' own power spectrum along the axis at the layer's test
length (`weighting="images"`: every layer is weighted by the images' spectrum, an approximation for the
deeper layers, whose inputs are features).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from resbench.checkpoints import Checkpoint
from resbench.layers.s4nd import S4ND
from resbench.models.base import s4nd_layers, set_bandlimit
from resbench.resolution import bandlimit_alpha, format_size, kernel_rates, resize_images

__all__ = ["tap_response", "layer_mismatch", "mismatch_table", "image_power_spectrum"]


def tap_response(taps: np.ndarray, step: float, freqs: np.ndarray) -> np.ndarray:
    """(ch, H, Lk) taps (channel 0 causal, channel 1 anticausal) at `step` training pixels apart ->
    (H, F) complex response at `freqs` (cycles per training pixel)."""
    lk = taps.shape[-1]
    phase = -2j * math.pi * np.outer(np.arange(lk) * step, freqs)  # (Lk, F)
    response = taps[0] @ np.exp(phase)  # causal tap d at offset +d*step
    if taps.shape[0] == 2:
        response = response + taps[1] @ np.exp(-phase + 2j * math.pi * step * freqs)  # tap d at -(d+1)*step
    return response


def layer_mismatch(layer: S4ND, rate_train: list[float], rate_test: list[float],
                   power: dict[int, np.ndarray] | None = None) -> tuple[float, float]:
    """(numerator, denominator) of the mismatch of one S4ND layer, its axes summed; `power` maps a test
    length to P(k), k = 0 .. length // 2 (None: flat)."""
    lengths_t = [max(1, round(n / r)) for n, r in zip(layer.l_max, rate_train)]
    lengths_s = [max(1, round(n / r)) for n, r in zip(layer.l_max, rate_test)]
    taps_t = [k.detach().double().cpu().numpy() for k in layer.kernels(lengths_t, rate_train)]
    taps_s = [k.detach().double().cpu().numpy() for k in layer.kernels(lengths_s, rate_test)]
    num = den = 0.0
    for axis, (lt, ls) in enumerate(zip(lengths_t, lengths_s)):
        k = np.arange(1, ls // 2 + 1)
        if len(k) == 0:
            continue
        freqs = k / lt
        step = rate_test[axis] / rate_train[axis]
        r_s = tap_response(taps_s[axis], step, freqs)
        r_t = tap_response(taps_t[axis], 1.0, freqs) * (freqs <= 0.5 + 1e-12)  # no response past its Nyquist
        p = np.ones(len(k)) if power is None else power[ls][1:ls // 2 + 1]
        num += float((p * (np.abs(r_s - r_t) ** 2).sum(0)).sum())
        den += float((p * (np.abs(r_t) ** 2).sum(0)).sum())
    return num, den


def image_power_spectrum(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) images -> P(k), k = 0 .. W // 2: the mean power along the width after removing each
    row's mean (rows of every image and channel averaged; the height axis gives the same for square grids)."""
    rows = images.double().flatten(0, -2)  # (N*C*H, W)
    rows = rows - rows.mean(-1, keepdim=True)
    return (torch.fft.rfft(rows, dim=-1).abs() ** 2).mean(0).numpy()


def _power_spectra(layers: list[S4ND], rates, images: torch.Tensor) -> dict[int, np.ndarray]:
    """P(k) of the images at every length a layer runs at over `rates` (each length computed once)."""
    lengths = {max(1, round(n / r)) for rate in rates for layer in layers for n, r in zip(layer.l_max, rate)}
    return {n: image_power_spectrum(resize_images(images, (n, n))) for n in sorted(lengths)}


def _setting_flags(setting: str) -> dict:
    return {"adaptive": setting == "adaptive", "capped": setting == "capped"}


@torch.no_grad()
def mismatch_table(ckpt: Checkpoint, test_sizes, settings=("on", "off"), images: torch.Tensor | None = None,
                   ) -> pd.DataFrame:
    """One row per (test size, bandlimit setting): the mismatch, flat and (with `images`, raw test images
    (N, C, H, W) at any size) weighted by the images' spectrum. Models without S4ND layers give no rows."""
    model = ckpt.build_model().eval()
    layers = s4nd_layers(model)
    trained = ckpt.config.get("bandlimit")
    train_rate = ckpt.config.get("train_rate", 1.0)
    rate_train = [train_rate] * ckpt.dims
    rates = {size: [train_rate * r for r in kernel_rates(ckpt.train_res, size)] for size in test_sizes}
    power = _power_spectra(layers, rates.values(), images) if images is not None and layers else None
    rows = []
    for setting in settings if layers else ():
        if setting in ("on", "capped", "adaptive") and trained is None:
            continue
        set_bandlimit(model, bandlimit_alpha(setting, trained), **_setting_flags(setting))
        for size, rate_test in rates.items():
            row = {"checkpoint": ckpt.name, "train_res": format_size(ckpt.train_res), "test_res": format_size(size),
                   "bandlimit": setting}
            for label, weights in (("flat", None), ("images", power)):
                if label == "images" and power is None:
                    continue
                parts = [layer_mismatch(layer, rate_train, rate_test, weights) for layer in layers]
                row[f"mismatch_{label}"] = float(np.mean([n / d if d > 0 else 0.0 for n, d in parts]))
            rows.append(row)
    return pd.DataFrame(rows)
