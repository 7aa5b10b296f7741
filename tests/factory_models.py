"""Factories of tiny models for tests/test_external.py: the ways a user's own nn.Module joins a sweep.

`--model factory_models:NAME` imports this module (tests/ is on sys.path under pytest). Models that
record what resbench tells them append to the module-level lists below.
"""

import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

TOLD_SIZES: list[tuple[int, int]] = []   # every resbench_set_test_size call of size_aware models
SEEN_SIZES: list[tuple[tuple[int, int], tuple[int, int]]] = []  # (input size, size last told) per forward
BANDLIMITS: list = []                     # every resbench_set_bandlimit call of bandlimited models

NOT_CALLABLE = 3


class TinyCNN(nn.Module):
    """(B, 1, H, W) -> (B, 4): one 3x3 convolution, global average pooling, a linear head; any size."""

    def __init__(self, in_chans: int = 1, num_classes: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 8, 3, padding=1)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = F.relu(self.conv(x))  # (B, 8, H, W)
        return self.head(x.mean(dim=(2, 3)))  # (B, num_classes)


def _seeded(cls, *args, **kwargs) -> nn.Module:
    torch.manual_seed(0)  # the same weights every call: the same model, so a rerun resumes
    return cls(*args, **kwargs)


def tiny_cnn() -> nn.Module:
    """Declares its training size and nothing else."""
    model = _seeded(TinyCNN)
    model.resbench_train_res = 16
    return model


def undeclared() -> nn.Module:
    """Declares nothing: the sweep needs --train-res."""
    return _seeded(TinyCNN)


def three_channels() -> nn.Module:
    """Declares 3 input channels, 10 classes and its normalisation."""
    model = _seeded(TinyCNN, in_chans=3, num_classes=10)
    model.resbench_train_res = (16, 12)
    model.resbench_in_chans, model.resbench_num_classes = 3, 10
    model.resbench_data_stats = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    return model


class SizeAware(TinyCNN):
    """Told each input size before it sees it; records the calls and what each forward got."""

    resbench_train_res = 16

    def __init__(self):
        super().__init__()
        self.told = None

    def resbench_set_test_size(self, size):
        self.told = tuple(size)
        TOLD_SIZES.append(self.told)

    def forward(self, x):
        SEEN_SIZES.append((tuple(x.shape[-2:]), self.told))
        return super().forward(x)


def size_aware() -> nn.Module:
    return _seeded(SizeAware)


class Bandlimited(TinyCNN):
    """A bandlimit hook: with alpha set, the features are smoothed (a 3x3 mean) before pooling."""

    resbench_train_res = 16
    resbench_bandlimit = 0.5

    def __init__(self):
        super().__init__()
        self.alpha = self.resbench_bandlimit

    def resbench_set_bandlimit(self, alpha):
        self.alpha = alpha
        BANDLIMITS.append(alpha)

    def forward(self, x):
        x = F.relu(self.conv(x))  # (B, 8, H, W)
        if self.alpha is not None:
            x = F.avg_pool2d(x, 3, stride=1, padding=1) * (1 + self.alpha)  # (B, 8, H, W)
        return self.head(x.mean(dim=(2, 3)))  # (B, 4)


def bandlimited() -> nn.Module:
    return _seeded(Bandlimited)


def wrong_classes() -> nn.Module:
    """Returns 10 logits on a 4-class dataset."""
    model = _seeded(TinyCNN, num_classes=10)
    model.resbench_train_res = 16
    return model


def raises() -> nn.Module:
    raise RuntimeError("no GPU found")


def not_a_module():
    return "a string"


def exits() -> nn.Module:
    raise SystemExit(0)


aborts = os.abort  # a function of the standard library under this module's name: never called as a factory


class NaNLogits(TinyCNN):
    """Logits that are all NaN: a model whose weights went bad."""

    def forward(self, x):
        return super().forward(x) * float("nan")


def nan_logits() -> nn.Module:
    model = _seeded(NaNLogits)
    model.resbench_train_res = 16
    return model


class SleepsAt24(TinyCNN):
    """Hangs (a long sleep) on 24-pixel inputs only: a forward that blocks at one size."""

    def forward(self, x):
        if x.shape[-1] == 24:
            time.sleep(60)
        return super().forward(x)


def sleeps_at_24() -> nn.Module:
    model = _seeded(SleepsAt24)
    model.resbench_train_res = 16
    return model


def sleeps() -> nn.Module:
    """A factory that hangs (a long sleep) before returning its model."""
    time.sleep(60)
    return tiny_cnn()
