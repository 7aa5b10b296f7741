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
