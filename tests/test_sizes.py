"""Tests for the sizes section of resbench.resolution: parsing, formatting, the one sort order, resizing."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from resbench import data, resolution
from resbench.errors import ResbenchError


# ---------------------------------------------------------------------------------------------
# sizes


@pytest.mark.parametrize("text,expected", [
    (28, (28, 28)), ((28, 20), (28, 20)), ("28", (28, 28)), ("28x20", (28, 20)), (" 7 X 9 ", (7, 9)),
    ("4096", (4096, 4096)), ([3, 5], (3, 5)),
])
def test_parse_size_accepts(text, expected):
    assert resolution.parse_size(text) == expected


@pytest.mark.parametrize("text", [
    0, -3, 4097, "0", "4097", "7x", "abc", "", "x", "x7", "7x7x7", "-7", "2.5", True, (1,), (0, 5), 7.0, "²", None,
])
def test_parse_size_refuses(text):
    with pytest.raises(ResbenchError, match="size"):
        resolution.parse_size(text)


def test_parse_sizes():
    assert resolution.parse_sizes("7,14,28x20") == [(7, 7), (14, 14), (28, 20)]
    assert resolution.parse_sizes(" 7 , 14 ") == [(7, 7), (14, 14)]
    for bad in ("14,,28", "", " ", ",", "7,", "7,abc"):
        with pytest.raises(ResbenchError, match=repr(bad).replace("(", r"\(")):
            resolution.parse_sizes(bad)
    with pytest.raises(ResbenchError, match="empty items"):
        resolution.parse_sizes("14,,28")


def test_format_size():
    assert resolution.format_size((28, 28)) == "28"
    assert resolution.format_size((28, 20)) == "28x20"


@settings(max_examples=200, deadline=None)
@given(st.integers(1, resolution.MAX_SIZE), st.integers(1, resolution.MAX_SIZE))
def test_size_round_trip(h, w):
    assert resolution.parse_size(resolution.format_size((h, w))) == (h, w)
    assert resolution.parse_sizes(f"{resolution.format_size((h, w))},{h}") == [(h, w), (h, h)]


def test_size_key_orders_by_pixels_then_sides():
    assert resolution.sort_sizes(["56", "28", "28x20", "14", "7"]) == ["7", "14", "28x20", "28", "56"]
    assert resolution.sort_sizes([(28, 28), 7, "20x28", "28x20"]) == [7, "20x28", "28x20", (28, 28)]
    assert resolution.size_key("28x20") == (560, 28, 20) == resolution.size_key((28, 20))
    assert resolution.sort_sizes(iter(["14", "7"])) == ["7", "14"]  # any iterable, a new list
    with pytest.raises(ResbenchError, match="size 'abc'"):
        resolution.sort_sizes(["7", "abc"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 64), st.integers(1, 64))))
def test_sort_sizes_agrees_in_every_form(sizes):
    as_text = [resolution.format_size(s) for s in sizes]
    assert [resolution.parse_size(s) for s in resolution.sort_sizes(as_text)] == resolution.sort_sizes(sizes)
    keys = [resolution.size_key(s) for s in resolution.sort_sizes(sizes)]
    assert keys == sorted(keys) and all(k[0] == k[1] * k[2] for k in keys)


def test_data_does_not_export_sizes():
    for name in ("parse_size", "parse_sizes", "format_size", "resize_images", "MAX_SIZE", "size_key", "sort_sizes"):
        assert not hasattr(data, name), name


# ---------------------------------------------------------------------------------------------
# resizing


def test_resize_images():
    x = torch.randint(0, 256, (5, 3, 28, 28), dtype=torch.uint8)
    same = resolution.resize_images(x, 28)
    assert same.dtype == torch.float32 and same.shape == x.shape
    torch.testing.assert_close(same, x.float() / 255)
    f = torch.rand(4, 1, 10, 12)
    assert resolution.resize_images(f, (10, 12)) is f  # float32 at the same size: nothing to do
    for size, shape in ((14, (5, 3, 14, 14)), ((56, 20), (5, 3, 56, 20)), ("7", (5, 3, 7, 7))):
        out = resolution.resize_images(x, size)
        assert out.shape == shape and out.dtype == torch.float32
        assert 0 <= out.min() and out.max() <= 1
    # antialiased: a downsampled checkerboard averages to grey instead of aliasing
    board = ((torch.arange(28)[:, None] + torch.arange(28)) % 2).float()[None, None]  # (1, 1, 28, 28)
    small = resolution.resize_images(board, 7)
    assert (small - 0.5).abs().max() < 0.05
    assert resolution.resize_images(torch.zeros(0, 1, 8, 8), 4).shape == (0, 1, 4, 4)


def test_resize_chunked_matches_one_call(monkeypatch):
    x = torch.rand(10, 2, 9, 9)
    whole = F.interpolate(x, size=(5, 6), mode="bilinear", antialias=True, align_corners=False)
    monkeypatch.setattr(resolution, "_CHUNK", 3)
    torch.testing.assert_close(resolution.resize_images(x, (5, 6)), whole)


# ---------------------------------------------------------------------------------------------
# sizes of signals (1-d) and clips (3-d)


@pytest.mark.parametrize("text,dims,expected", [
    (8000, 1, (8000,)), ("16000", 1, (16000,)), ((4000,), 1, (4000,)), ("8x14x14", 3, (8, 14, 14)),
    ((16, 28, 20), 3, (16, 28, 20)), (" 4 X 7x7 ", 3, (4, 7, 7)), ("28", None, (28, 28)),
    ("8x14x14", None, (8, 14, 14)), ((11025,), None, (11025,)), (resolution.MAX_LENGTH, 1, (resolution.MAX_LENGTH,)),
])
def test_parse_size_in_any_dimensions(text, dims, expected):
    assert resolution.parse_size(text, dims) == expected


@pytest.mark.parametrize("text,dims", [
    ("8", 3), (8, 3), ("14x14", 3), ("14x14", 1), ("8x14x14", 1), ("8x14x14", 2), (resolution.MAX_LENGTH + 1, 1),
    ("8x4097x4", 3), ((0,), 1), ((1, 2, 3, 4), None), ("1x2x3x4", None), ("7xx7", 3), ("5000", None),
])
def test_parse_size_refuses_in_any_dimensions(text, dims):
    with pytest.raises(ResbenchError, match="size"):
        resolution.parse_size(text, dims)


def test_format_size_in_any_dimensions():
    assert resolution.format_size((8000,)) == "8000" and resolution.format_size("16000") == "16000"
    assert resolution.format_size((8, 14, 14)) == "8x14x14" and resolution.format_size((7, 7, 7)) == "7x7x7"
    assert resolution.parse_size(resolution.format_size((11025,)), 1) == (11025,)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=3))
def test_size_round_trip_in_any_dimensions(sides):
    dims = len(sides)
    text = resolution.format_size(tuple(sides))
    assert resolution.parse_size(text, dims) == tuple(sides)
    assert resolution.size_key(text, dims) == resolution.size_key(tuple(sides))


def test_size_specs_fit_each_dimension():
    specs = resolution.parse_size_specs("14,28x20,8x14x14,8000")
    assert specs == [14, (28, 20), (8, 14, 14), 8000]
    assert [resolution.fit_size(s, 1) for s in specs] == [(14,), None, None, (8000,)]
    assert [resolution.fit_size(s, 3) for s in specs] == [None, None, (8, 14, 14), None]
    with pytest.raises(ResbenchError, match="8000"):
        resolution.fit_size(8000, 2)  # a square of 8000 pixels a side is out of range
    with pytest.raises(ResbenchError, match="sizes"):
        resolution.parse_size_specs("14,,8")


def test_sort_sizes_of_signals_and_clips():
    assert resolution.sort_sizes(["16000", "4000", "11025", "8000"], dims=1) == ["4000", "8000", "11025", "16000"]
    assert resolution.sort_sizes(["16x14x14", "8x28x28", "4x7x7", "8x14x14"]) == \
        ["4x7x7", "8x14x14", "16x14x14", "8x28x28"]


def test_default_test_sizes_of_signals_and_clips():
    assert resolution.default_test_sizes([(8000,)]) == [(4000,), (6000,), (8000,), (12000,), (16000,)]
    clips = resolution.default_test_sizes([(8, 14, 14)])
    assert len(clips) == 9 and (8, 14, 14) in clips and (4, 7, 7) in clips and (16, 28, 28) in clips
    assert (16, 14, 14) in clips and (8, 28, 28) in clips  # frame rate alone, size alone
    with pytest.raises(ValueError):
        resolution.default_test_sizes([(8000,), (14, 14)])


def test_resize_signals_and_clips():
    t = torch.arange(800) / 800  # sample times on [0, 1), as the signal datasets render them (resample_poly's grid)
    x = torch.sin(2 * torch.pi * 5 * t)[None, None]  # (1, 1, 800): 5 cycles, far below every Nyquist here
    y = resolution.resize_images(x, (400,))
    assert y.shape == (1, 1, 400)
    coarse = torch.sin(2 * torch.pi * 5 * torch.arange(400) / 400)  # the same tone on the coarse grid
    assert (y[0, 0, 4:-4] - coarse[4:-4]).abs().max() < 0.01
    # a tone above the coarse grid's Nyquist is removed, not folded back (antialias)
    hi = torch.sin(2 * torch.pi * 300 * t)[None, None]  # 300 cycles: above 100 cycles, the Nyquist of 200 samples
    assert resolution.resize_images(hi, (200,)).abs().max() < 0.2
    clip = torch.rand(2, 1, 8, 14, 14)
    out = resolution.resize_images(clip, (4, 14, 14))  # frame rate alone: each pixel's series is resampled
    assert out.shape == (2, 1, 4, 14, 14)
    expect = resolution._resample_axis(clip.permute(0, 1, 3, 4, 2).reshape(2, 196, 8), 2, 4)  # (2, 196, 4), linear
    assert torch.allclose(out.permute(0, 1, 3, 4, 2).reshape(2, 196, 4), expect, atol=1e-6)
    frames = resolution.resize_images(clip, (8, 7, 7))  # frame size alone: each frame as an image
    expect = resolution.resize_images(clip.transpose(1, 2).reshape(16, 1, 14, 14), (7, 7)).reshape(2, 8, 1, 7, 7)
    assert torch.allclose(frames, expect.transpose(1, 2), atol=1e-5)
    assert resolution.resize_images(clip, (8, 14, 14)) is clip  # nothing to do
    with pytest.raises(ResbenchError, match="size"):
        resolution.resize_images(clip, (14, 14))
