"""Default test sizes from the training size: a ladder from half to twice it, rounded like the field."""

import pytest

from resbench.resolution import default_test_sizes


def sides(sizes):
    return [s[0] for s in sizes]


def test_224_gets_the_fields_sizes():
    got = default_test_sizes([(224, 224)])
    assert sides(got) == [112, 128, 160, 192, 224, 272, 320, 384, 448]
    assert all(h == w for h, w in got)
    assert all(s % 16 == 0 for s in sides(got) if s >= 128)


def test_cifar_32_small_sizes_stay_whole_and_include_the_training_size():
    got = default_test_sizes([(32, 32)])
    assert sides(got) == [16, 20, 24, 28, 32, 40, 44, 52, 64]
    assert all(s % 4 == 0 for s in sides(got))


def test_rectangular_28x20_keeps_its_shape():
    got = default_test_sizes([(28, 20)])
    assert got[0] == (14, 10) and got[-1] == (56, 40) and (28, 20) in got
    assert len(got) == 9
    for h, w in got:  # one factor on both sides: the aspect ratio stays near 1.4
        assert abs(h / w - 1.4) < 0.2


@pytest.mark.parametrize("train", [7, 13, 28, 50, 64, 100, 224, 299, 384])
def test_ladder_properties(train):
    got = sides(default_test_sizes([(train, train)]))
    assert train in got
    assert 7 <= len(got) <= 10
    assert got == sorted(set(got))
    assert min(got) >= max(4, round(train * 0.5) - 8) and max(got) <= 2 * train + 16
    assert all(isinstance(s, int) for s in got)


def test_signals_and_clips_keep_their_rules():
    assert default_test_sizes([(8000,)]) == [(4000,), (6000,), (8000,), (12000,), (16000,)]
    assert len(default_test_sizes([(8, 14, 14)])) == 9
