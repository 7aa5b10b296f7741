"""Tests for resbench.data.speech: spoken digits from espeak-ng, per-clip seeds, resampling, the disk cache."""

import shutil

import numpy as np
import pytest
import scipy.signal
import torch

from resbench.data import speech
from resbench.errors import ResbenchError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


@pytest.fixture(autouse=True)
def _fresh_caches():
    for fn in speech.SPOKEN_DIGITS.caches:
        fn.cache_clear()
    yield
    for fn in speech.SPOKEN_DIGITS.caches:
        fn.cache_clear()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache folder for the module: each 100-clip chunk is spoken once."""
    return tmp_path_factory.mktemp("spoken-digits")


def render(split="test", size=8000, seed=0, limit=4, start=0, cache_dir=None):
    return speech.render_spoken_digits(split, size, seed=seed, limit=limit, start=start, cache_dir=cache_dir)


# ---------------------------------------------------------------------------------------------
# settings: no espeak-ng needed


def test_speakers_disjoint_between_splits():
    train, test = set(speech.speakers("train")), set(speech.speakers("test"))
    assert train and test and not train & test
    assert not set(speech.SETTINGS["train_variants"]) & set(speech.SETTINGS["test_variants"])
    for split, allowed in (("train", train), ("test", test)):
        used = {(c["voice"], c["variant"]) for c in speech.clip_settings(split, seed=3, limit=200)}
        assert used <= allowed


def test_labels_balanced_in_every_block_of_ten():
    for split in ("train", "test"):
        labels = np.array([c["label"] for c in speech.clip_settings(split, seed=7, limit=60)])
        for k in (1, 3, 6):
            assert np.bincount(labels[:10 * k], minlength=10).tolist() == [k] * 10
        assert labels[:10].tolist() != list(range(10)) or labels[10:20].tolist() != list(range(10))
    full = [c["label"] for c in speech.clip_settings("train", seed=0)]
    assert len(full) == speech.SPOKEN_DIGITS_SIZES["train"]
    assert np.bincount(full).tolist() == [len(full) // 10] * 10


def test_clip_settings_come_from_seed_split_index_alone():
    full = speech.clip_settings("train", seed=5, limit=40)
    assert speech.clip_settings("train", seed=5, limit=40, start=30) == full[30:]
    assert speech.clip_settings("train", seed=5, limit=40) == full
    assert speech.clip_settings("train", seed=6, limit=40) != full
    assert speech.clip_settings("test", seed=5, limit=40) != full


def test_cache_key_changes_with_every_input():
    base = speech.cache_key(0, version="1.51")
    assert speech.cache_key(0, version="1.51") == base
    assert speech.cache_key(1, version="1.51") != base
    assert speech.cache_key(0, version="1.52") != base
    for name, value in (("speed_wpm", (120, 210)), ("snr_db", (5.0, 31.0)), ("duration", 1.5),
                        ("test_variants", speech.SETTINGS["test_variants"][:-1])):
        changed = dict(speech.SETTINGS, **{name: value})
        assert speech.cache_key(0, changed, "1.51") != base, name


@pytest.mark.parametrize("size", [0, -8000, 2 ** 21, 8000.0, True, "8000", (8000, 2), (), None])
def test_bad_size_is_a_user_error(size):
    with pytest.raises(ResbenchError, match="size"):
        render(size=size)


def test_info_native_size_is_the_master_rate():
    info = speech.SPOKEN_DIGITS.info(None)
    assert info.native_size == (speech.MASTER_LENGTH,) == (22050,)
    assert info.classes == ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    assert (info.in_chans, info.num_classes) == (1, 10)


def test_missing_espeak_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setattr(speech, "ESPEAK_BINARY", "espeak-ng-not-installed")
    with pytest.raises(ResbenchError, match="apt-get install espeak-ng") as e:
        render(cache_dir=tmp_path)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# rendering


@needs_espeak
def test_same_seed_same_clips_different_seed_different(tmp_path):
    x0, y0 = render("train", limit=6, cache_dir=tmp_path / "a")
    x1, y1 = render("train", limit=6, cache_dir=tmp_path / "b")  # spoken again, from scratch
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    x2, y2 = render("train", limit=6, seed=1, cache_dir=tmp_path / "a")
    assert not torch.equal(x0, x2)


@needs_espeak
@pytest.mark.parametrize("length", [4000, 8000, 11025, 16000, (8000,)])
def test_shapes_dtypes_and_range(cache, length):
    x, y = render(size=length, limit=5, cache_dir=cache)
    n = length[0] if isinstance(length, tuple) else length
    assert x.shape == (5, 1, n) and x.dtype == torch.float32
    assert y.shape == (5,) and y.dtype == torch.int64
    assert 0.05 < x.abs().max() < 1.5 and torch.isfinite(x).all()


@needs_espeak
def test_rates_resample_the_same_master(cache):
    x8, y8 = render(size=8000, limit=8, cache_dir=cache)
    x16, y16 = render(size=16000, limit=8, cache_dir=cache)
    assert torch.equal(y8, y16)
    down = scipy.signal.resample_poly(x16.double().numpy(), 1, 2, axis=-1)  # (N, 1, 8000)
    err = np.sqrt(np.mean((down - x8.double().numpy()) ** 2) / np.mean(x8.double().numpy() ** 2))
    assert err < 0.01
    xm, _ = render(size=speech.MASTER_LENGTH, limit=8, cache_dir=cache)
    assert torch.allclose(x8, torch.from_numpy(scipy.signal.resample_poly(
        xm.double().numpy(), 160, 441, axis=-1)).float(), atol=1e-5)


@needs_espeak
def test_start_and_limit_select_the_same_clips(cache):
    x, y = render(limit=12, cache_dir=cache)
    xs, ys = render(limit=12, start=5, cache_dir=cache)
    assert torch.equal(xs, x[5:]) and torch.equal(ys, y[5:])
    labels = [c["label"] for c in speech.clip_settings("test", limit=12)]
    assert y.tolist() == labels


@needs_espeak
def test_cache_is_reused_without_espeak(cache, monkeypatch):
    x, y = render(limit=10, cache_dir=cache)
    files = list(cache.rglob("*.npz"))
    assert files and not list(cache.rglob("*.tmp"))
    speech._read_chunk.cache_clear()

    def refuse(*args):
        raise AssertionError("espeak-ng called on a cache hit")

    monkeypatch.setattr(speech, "_speak", refuse)
    x1, y1 = render(limit=10, cache_dir=cache)
    assert torch.equal(x, x1) and torch.equal(y, y1)
    monkeypatch.setattr(speech, "ESPEAK_BINARY", "espeak-ng-not-installed")  # a hit needs no binary at all
    speech._read_chunk.cache_clear()
    x2, _ = render(limit=10, cache_dir=cache)
    assert torch.equal(x, x2)
    assert sorted(cache.rglob("*.npz")) == sorted(files)


@needs_espeak
def test_limit_speaks_only_the_chunks_it_touches(tmp_path, monkeypatch):
    calls = []
    speak = speech._speak
    monkeypatch.setattr(speech, "_speak", lambda binary, clip: calls.append(clip) or speak(binary, clip))
    render("train", limit=3, cache_dir=tmp_path)
    assert len(calls) == speech._CHUNK  # one whole chunk, saved under its own range, never as the split
    names = [p.name for p in tmp_path.rglob("*.npz")]
    assert names == [f"train-00000-{speech._CHUNK:05d}.npz"]
    render("train", limit=speech._CHUNK + 2, start=speech._CHUNK, cache_dir=tmp_path)
    assert len(calls) == 2 * speech._CHUNK


@needs_espeak
def test_reader_load_is_the_native_rate(cache):
    x, y = speech.SPOKEN_DIGITS.load("test", cache, 0, 3)
    xr, yr = render(size=speech.MASTER_LENGTH, limit=3, cache_dir=cache)
    assert x.shape == (3, 1, 22050) and torch.equal(x, xr) and torch.equal(y, yr)


@needs_espeak
@pytest.mark.parametrize("seed, limit", [(0, 5), (2, 9)])
def test_labels_alone_are_the_spoken_clips_labels(cache, seed, limit):
    from resbench import data

    labels = data.load_labels("spoken-digits", "test", data_dir=cache, limit=limit, seed=seed)
    assert labels.dtype == torch.int64
    assert torch.equal(labels, data.load_raw("spoken-digits", "test", data_dir=cache, limit=limit, seed=seed)[1])


def test_labels_alone_need_no_espeak(monkeypatch):
    from resbench import data

    monkeypatch.setattr(speech, "_espeak", None)  # labels come from the clips' settings: nothing is spoken
    labels = data.load_labels("spoken-digits", "test", limit=30)
    assert labels.tolist() == [c["label"] for c in speech.clip_settings("test", limit=30)]
