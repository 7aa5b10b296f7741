"""Continuous kernels seen from each test grid: resampled taps, spectra and an aliasing metric.

Aliasing metric. Each continuous kernel (an S4ND layer's SSM impulse response along one axis, or a
CKConv kernel MLP along one axis) is written in units of *training pixels*. Its spectrum is taken
from a dense sampling, `oversample` samples per training pixel over the kernel's whole support
(S4ND: [0, l_max) for the causal and the anticausal kernel; CKConv: the training kernel's extent),
zero-padded to at least twice that length:

    E(f) = sum over the channels of a group of |DFT(k)(f)|^2,   f in cycles per training pixel
    aliasing(s)           = sum_{|f| > f_min} E(f) / sum_f E(f),   f_min  = 0.5 * min(s, train) / train
    above_test_nyquist(s) = sum_{|f| > f_test} E(f) / sum_f E(f),  f_test = 0.5 * s / train

per (layer, axis, channel group, test size s, bandlimit). `aliasing` counts the kernel energy that one
of the two grids cannot represent: below the training size, what the test grid folds back; above it,
what the training grid folded (the network learned the folded kernel) and the finer test grid now
reveals. `above_test_nyquist` is the test grid's share alone (it falls as the test grid grows, while the
accuracy drop can grow). Both are ~0 for a kernel band-limited below f_min and rise toward 1 as more
energy sits above it. `untrained_modes` flags the bandlimit-off rows of a checkpoint trained with the
bandlimit: its masked modes never received a gradient, so their energy is that of their initial values.
The adaptive setting (sweep --bandlimit adaptive) has one spectrum per test size below the training size:
S4ND's kernel with alpha scaled by min(1, test/train) on the axis; CKConv's kernel box-filtered over a test
pixel (energy times sinc^2(f * train/test), the spectrum of the cell mean the layer takes).
Energy above the dense grid's own Nyquist (oversample / 2) is not counted; with the default of 64 samples
per training pixel this is far above any test grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from resbench.checkpoints import Checkpoint
from resbench.errors import ResbenchError
from resbench.layers.ckconv import ContinuousDepthwiseConv
from resbench.layers.s4nd import S4ND
from resbench.resolution import format_size, kernel_rates

__all__ = ["KernelSpectrum", "kernel_spectra", "aliasing_table", "aliasing_fraction", "resampled_taps"]


@dataclass
class KernelSpectrum:
    layer: str            # module name in the model
    axis: int
    group: str            # "forward", "backward" (S4ND directions) or "all" (CKConv channels)
    bandlimit: str        # "on", "off", "none" or "adaptive"
    freqs: np.ndarray     # (F,) cycles per training pixel, >= 0
    energy: np.ndarray    # (F,) summed over the group's channels
    train_len: int        # training feature length along this axis (pixels)
    test_res: str | None = None  # "adaptive": the one test size it holds for (the others: every size)


def aliasing_fraction(freqs: np.ndarray, energy: np.ndarray, nyquist: float) -> float:
    """Fraction of `energy` at frequencies above `nyquist` (one-sided spectra: 0 <= freqs)."""
    above_mask = freqs > nyquist + 1e-12
    above, below = float(energy[above_mask].sum()), float(energy[~above_mask].sum())
    # above / (above + below), not above / energy.sum(): two summation orders can round the
    # numerator past the total (1.0000000000000002); this form is <= 1 in floating point too
    return above / (above + below) if above + below > 0 else 0.0


def _one_sided_energy(k: np.ndarray, oversample: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, n) densely sampled kernels -> frequencies (cycles per training pixel) and summed energy."""
    n = k.shape[-1]
    nfft = 1 << max(1, math.ceil(math.log2(2 * n)))
    spec = np.abs(np.fft.rfft(k, n=nfft, axis=-1)) ** 2  # (C, nfft/2+1)
    weights = np.full(spec.shape[-1], 2.0)  # one-sided: interior bins stand for +f and -f
    weights[0] = 1.0
    if nfft % 2 == 0:
        weights[-1] = 1.0
    return np.fft.rfftfreq(nfft, d=1.0 / oversample), (spec * weights).sum(0)


def _s4nd_layers(model: torch.nn.Module) -> list[tuple[str, S4ND]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, S4ND)]


def _ckconv_layers(model: torch.nn.Module):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ContinuousDepthwiseConv)]


def _layer_rates(ckpt: Checkpoint, size) -> tuple[float, ...]:
    """The rate the S4ND layers get at test `size`: train/test, times the rate the model was trained at
    (not 1 for an official checkpoint trained off its l_max grid, e.g. the 16x16 recipe's rate 2)."""
    return tuple(ckpt.config.get("train_rate", 1.0) * r for r in kernel_rates(ckpt.train_res, size))


def adaptive_alpha(ckpt: Checkpoint, alpha: float, size, axis: int) -> float:
    """The adaptive setting's alpha on `axis` at test `size`: `alpha` x min(1, test/train) on that axis."""
    return alpha * min(1.0, 1.0 / kernel_rates(ckpt.train_res, size)[axis])


def _below_training(ckpt: Checkpoint, test_sizes) -> list[tuple[int, ...]]:
    """The test sizes coarser than training on some axis: where the adaptive setting differs from the fixed one."""
    return [tuple(s) for s in test_sizes if any(r > 1 for r in kernel_rates(ckpt.train_res, s))]


@torch.no_grad()
def kernel_spectra(ckpt: Checkpoint, oversample: int = 64, device: str = "cpu",
                   test_sizes=()) -> list[KernelSpectrum]:
    """Spectra of every continuous kernel of a checkpoint, bandlimit on and off (S4ND) or none (CKConv), and
    adaptive at each of `test_sizes` below the training size."""
    model = ckpt.build_model().to(device)
    check_continuous(ckpt, model)
    out: list[KernelSpectrum] = []
    s4nd = _s4nd_layers(model)
    below = _below_training(ckpt, test_sizes)
    for name, layer in s4nd:
        settings = [("on", layer.bandlimit, None), ("off", None, None)] if layer.bandlimit is not None \
            else [("off", None, None)]
        for axis, (kern, l_max) in enumerate(zip(layer.kernel, layer.l_max)):
            adaptive = [("adaptive", adaptive_alpha(ckpt, layer.bandlimit, size, axis), format_size(size))
                        for size in below] if layer.bandlimit is not None else []
            for label, alpha, size in settings + adaptive:
                # rate 1/M: M samples per reference step over the kernel's full support of l_max steps
                k = kern(l_max * oversample, 1.0 / oversample, alpha).double().cpu().numpy()  # (ch, H, n)
                for c in range(k.shape[0]):
                    freqs, energy = _one_sided_energy(k[c], oversample)  # cycles per step of the l_max grid
                    freqs = freqs * ckpt.config.get("train_rate", 1.0)  # per training pixel (train_rate steps)
                    # forward channels first, then backward ones (a channel-mixing layer has one per output each)
                    direction = ("forward", "backward")[2 * c // k.shape[0]] if layer.bidirectional else "forward"
                    out.append(KernelSpectrum(name, axis, direction, label, freqs, energy, l_max, size))
    for name, conv in _ckconv_layers(model):
        half = (conv.taps - 1) / 2
        offsets = torch.arange(-half * oversample, half * oversample + 1, dtype=torch.float64) / oversample / half
        d = conv.dims
        grid = torch.meshgrid(*[offsets] * d, indexing="ij")
        positions = torch.stack(grid, -1).to(conv.kernel_net[0].weight)  # (*[n] * d, d)
        k = np.moveaxis(conv.continuous_kernel(positions).double().cpu().numpy(), -1, 0)  # (C, *[n] * d)
        full = np.abs(np.fft.fftn(k, s=(2 * k.shape[1],) * d, axes=tuple(range(1, d + 1)))) ** 2  # (C, *[2n] * d)
        for axis in range(d):
            # the other axes are summed out of the energy: E(f_axis) = sum_{f_other} |K(f_axis, f_other)|^2
            spec = full.sum(axis=tuple(1 + a for a in range(d) if a != axis))  # (C, 2n) along the kept axis
            f = np.fft.fftfreq(spec.shape[-1], d=1.0 / oversample)
            fa = np.abs(f)
            uniq = np.unique(fa)
            energy = np.array([spec[:, fa == u].sum() for u in uniq])
            out.append(KernelSpectrum(name, axis, "all", "none", uniq, energy, conv.train_size[axis]))
            for size in below:  # the cell mean over a test pixel of w training pixels: a box, sinc^2 in energy
                w = kernel_rates(ckpt.train_res, size)[axis]
                out.append(KernelSpectrum(name, axis, "all", "adaptive", uniq, energy * np.sinc(uniq * w) ** 2,
                                          conv.train_size[axis], format_size(size)))
    return out


def check_continuous(ckpt: Checkpoint, model: torch.nn.Module | None = None) -> None:
    """A user error unless the checkpoint's model has continuous kernels (S4ND or CKConv layers)."""
    model = ckpt.build_model() if model is None else model
    if not _s4nd_layers(model) and not _ckconv_layers(model):
        raise ResbenchError(f"{ckpt.path}: model {ckpt.model!r} has no continuous kernels "
                            "(plot-kernels takes S4ND and ckconv checkpoints)")


def aliasing_table(ckpt: Checkpoint, test_sizes, spectra: list[KernelSpectrum] | None = None) -> pd.DataFrame:
    """One row per (layer, axis, group, test size, bandlimit): the aliasing fraction defined above."""
    spectra = spectra if spectra is not None else kernel_spectra(ckpt, test_sizes=test_sizes)
    train = ckpt.train_res
    trained_masked = ckpt.config.get("bandlimit") is not None  # "off" then shows modes training never updated
    rows = []
    for sp in spectra:
        for size in test_sizes:
            if sp.test_res is not None and sp.test_res != format_size(size):
                continue
            nyquist = 0.5 / kernel_rates(train, size)[sp.axis]  # half a cycle per test pixel, per training pixel
            nyquist_min = min(nyquist, 0.5)  # the coarser of the test and the training grid
            rows.append({"checkpoint": ckpt.name, "model": ckpt.model, "dims": ckpt.dims, "train_res": format_size(train),
                         "layer": sp.layer, "axis": sp.axis, "group": sp.group, "test_res": format_size(size),
                         "bandlimit": sp.bandlimit, "untrained_modes": trained_masked and sp.bandlimit == "off",
                         "nyquist_cycles_per_train_px": nyquist, "nyquist_min_cycles_per_train_px": nyquist_min,
                         "aliasing": aliasing_fraction(sp.freqs, sp.energy, nyquist_min),
                         "above_test_nyquist": aliasing_fraction(sp.freqs, sp.energy, nyquist)})
    return pd.DataFrame(rows)


@torch.no_grad()
def resampled_taps(ckpt: Checkpoint, size, layer_index: int = 0, axis: int = 0, channel: int = 0,
                   bandlimit: str = "on", device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Positions (training pixels) and taps of one S4ND kernel as the model samples it at test `size`;
    `bandlimit` "on", "off" or "adaptive" (alpha scaled by min(1, test/train) on the axis)."""
    model = ckpt.build_model().to(device)
    layers = _s4nd_layers(model)
    if not layers:
        raise ResbenchError(f"{ckpt.path}: no S4ND layers to resample")
    _, layer = layers[layer_index]
    rate = _layer_rates(ckpt, size)[axis]
    length = max(1, round(layer.l_max[axis] / rate))
    alpha = layer.bandlimit if bandlimit in ("on", "adaptive") else None
    if bandlimit == "adaptive" and alpha is not None:
        alpha = adaptive_alpha(ckpt, alpha, size, axis)
    k = layer.kernel[axis](length, rate, alpha)[0, channel].double().cpu().numpy()  # (Lk,) causal taps
    step = kernel_rates(ckpt.train_res, size)[axis]  # a test pixel in training pixels
    return np.arange(length) * step, k / step  # / step: per unit of training pixel, comparable across sizes
