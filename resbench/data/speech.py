"""Spoken digits: "zero".."nine" spoken by espeak-ng over noise, a 1-d set sampled at any rate from one master."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from resbench.data.common import SPLITS, DatasetInfo, Reader, check_limit, check_split
from resbench.errors import ResbenchError

__all__ = ["SETTINGS", "CLASSES", "SPOKEN_DIGITS_SIZES", "MASTER_RATE", "DURATION", "MASTER_LENGTH",
           "speakers", "clip_settings", "cache_key", "cache_root", "render_spoken_digits", "SPOKEN_DIGITS"]

# Every generator setting. The disk cache is keyed by a hash of this dict, the seed and espeak-ng's version,
# so editing any value here renders the set again instead of reusing a stale file.
# A clip is one word, spoken by one speaker = (voice, variant): a voice is an English accent (the
# espeak-ng voices of `espeak-ng --voices=en` that need no mbrola), a variant a vocal tract and pitch
# (`espeak-ng --voices=variant`). The test split's variants are never heard in training, so every test
# speaker is new. Variants left out: slower than the clip allows (AnxiousAndy, Marco, RicishayMax 1-3,
# Alicia, announcer: words up to 1.4 s), same sound as klatt (caleb, klatt6), a space in the name (Mr serious).
_VARIANTS = (  # sorted case-insensitively; every 4th (index 3, 7, ...) goes to the test split
    "adam", "Alex", "Andrea", "Andy", "Annie", "anika", "anikaRobot", "antonio", "aunty", "belinda",
    "benjamin", "boris", "croak", "david", "Demonic", "Denis", "Diogo", "ed", "edward", "edward2", "f1",
    "f2", "f3", "f4", "f5", "fast", "Gene", "Gene2", "grandma", "grandpa", "gustave", "Henrique", "Hugo",
    "iven", "iven2", "iven3", "iven4", "Jacky", "john", "kaukovalta", "klatt", "klatt2", "klatt3", "klatt4",
    "klatt5", "Lee", "linda", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo", "Mario", "max",
    "Michael", "michel", "miguel", "Mike", "Nguyen", "norbert", "pablo", "paul", "pedro", "quincy", "rob",
    "robert", "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7",
    "robosoft8", "sandro", "shelby", "steph", "steph2", "steph3", "Storm", "travis", "Tweaky", "UniRobot",
    "victor", "whisper", "whisperf", "zac",
)
SETTINGS = {
    "words": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "sizes": {"train": 3000, "test": 1000},  # clips per split, classes balanced in every block of 10
    "master_rate": 22050,  # Hz, espeak-ng's own rate: every requested length is resampled from it
    "duration": 1.0,  # s per clip; the longest word measured (f4, speed 130) is 0.93 s
    "voices": ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd",
               "en-029", "en-us-nyc"),
    "train_variants": tuple(v for i, v in enumerate(_VARIANTS) if i % 4 != 3),
    "test_variants": tuple(v for i, v in enumerate(_VARIANTS) if i % 4 == 3),
    "speed_wpm": (130, 210),  # espeak-ng -s, uniform integer, both ends included (default 175)
    "pitch": (25, 75),  # espeak-ng -p, uniform integer, both ends included (0..99, default 50)
    "espeak_amplitude": 30,  # espeak-ng -a: low enough that espeak-ng's own limiter never clips (100 does)
    "trim_level": 32,  # int16 units: leading and trailing samples quieter than this are cut before placing
    "gain_db": (-14.0, -2.0),  # the word's peak after gain, uniform in dB (0.20 .. 0.79)
    "offset": "uniform",  # the word's first sample: uniform over every start that keeps it inside the clip
    "noise": "Gaussian, drawn as a complex spectrum scaled by f^(-b/2), no DC term, over the whole clip",
    "noise_exponent": (0.0, 2.0),  # power spectrum ~ 1/f^b, b uniform: 0 white, 1 pink, 2 brown
    "snr_db": (5.0, 30.0),  # word RMS (over the word) over noise RMS (over the clip), uniform in dB
    "resampler": "scipy.signal.resample_poly(up, down) with up/down = L/master length reduced by gcd",
    "seed_rule": "v1: label = permutation(seed, split, i // 10)[i % 10]; the rest from rng(seed, split, i)",
}
CLASSES = SETTINGS["words"]
SPOKEN_DIGITS_SIZES = dict(SETTINGS["sizes"])
MASTER_RATE = SETTINGS["master_rate"]
DURATION = SETTINGS["duration"]
MASTER_LENGTH = round(MASTER_RATE * DURATION)  # 22050 samples; L = rate x DURATION (8 kHz: 8000)
ESPEAK_BINARY = "espeak-ng"  # a module attribute so tests can point it at a missing binary
_MAX_LENGTH = 2 ** 20  # longest clip accepted: 1 s at ~1 MHz
_CHUNK = 100  # clips per cache file: a limit renders only the chunks it touches, each chunk file is whole
_BATCH = 256  # clips mixed and resampled at once: bounds the temporaries (~90 MB of float64 and complex)
_TAG_LABEL, _TAG_CLIP = 0x1AB, 0xC11  # separate the two random streams of a clip


def _parse_length(size) -> int:
    """A clip length from L or (L,) -> L (samples over DURATION)."""
    if isinstance(size, (tuple, list)) and len(size) == 1:
        size = size[0]
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= _MAX_LENGTH:
        raise ResbenchError(f"size {size!r}: expected a clip length L or (L,) with 1 <= L <= {_MAX_LENGTH}, "
                            f"e.g. 8000 (8 kHz over {DURATION:g} s)")
    return int(size)


def speakers(split: str) -> tuple[tuple[str, str], ...]:
    """The (voice, variant) pairs that speak a split's clips; train and test share none."""
    variants = SETTINGS[f"{check_split(split)}_variants"]
    return tuple((voice, variant) for voice in SETTINGS["voices"] for variant in variants)


def _seed_words(seed) -> list[int]:
    return [int(seed) & 0xFFFFFFFF]  # numpy seeds must be non-negative; the same rule as the synthetic set


def _one_clip(split: str, seed: int, i: int) -> dict:
    """A clip's settings from (seed, split, index) alone, so the first N clips never need the rest."""
    lo, hi = SETTINGS["speed_wpm"]
    p_lo, p_hi = SETTINGS["pitch"]
    s = SPLITS.index(split)
    perm = np.random.default_rng(_seed_words(seed) + [s, i // 10, _TAG_LABEL]).permutation(10)
    rng = np.random.default_rng(_seed_words(seed) + [s, i, _TAG_CLIP])
    spk = speakers(split)
    voice, variant = spk[int(rng.integers(len(spk)))]
    return {
        "label": int(perm[i % 10]),
        "voice": voice,
        "variant": variant,
        "speed": int(rng.integers(lo, hi + 1)),
        "pitch": int(rng.integers(p_lo, p_hi + 1)),
        "gain_db": float(rng.uniform(*SETTINGS["gain_db"])),
        "offset": float(rng.random()),  # fraction of the free room before the word
        "noise_exponent": float(rng.uniform(*SETTINGS["noise_exponent"])),
        "snr_db": float(rng.uniform(*SETTINGS["snr_db"])),
        "noise_seed": int(rng.integers(2 ** 63)),
    }


def _split_range(split: str, limit: int | None, start) -> tuple[int, int]:
    n = SPOKEN_DIGITS_SIZES[split] if limit is None else min(limit, SPOKEN_DIGITS_SIZES[split])
    return min(max(0, int(start)), n), n


def clip_settings(split, seed=0, limit=None, start=0) -> list[dict]:
    """Settings (label, voice, variant, speed, pitch, gain_db, offset, noise_exponent, snr_db, noise_seed)
    of clips `start` to `limit` (exclusive) of a split."""
    split = check_split(split)
    start, n = _split_range(split, check_limit(limit), start)
    return [_one_clip(split, seed, i) for i in range(start, n)]


# ----------------------------------------------------------------------------------------------
# espeak-ng


@functools.lru_cache(maxsize=4)
def _espeak(binary: str) -> tuple[str, str, Path]:
    """(path, version, data dir) of the espeak-ng binary; ResbenchError when it is not installed."""
    path = shutil.which(binary)
    if path is None:
        raise ResbenchError(f"spoken-digits: {binary} not found on PATH; install it with 'apt-get install espeak-ng'")
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"text-to-speech:\s*(\S+)\s+Data at:\s*(.+)", out)
    if m is None:
        raise ResbenchError(f"spoken-digits: {path} --version printed {out.strip()!r}, expected eSpeak NG's banner")
    data = Path(m.group(2).strip())
    missing = [v for v in SETTINGS["train_variants"] + SETTINGS["test_variants"]
               if not (data / "voices" / "!v" / v).is_file()]
    if missing:  # espeak-ng would fall back to its default variant without a word: two speakers would match
        raise ResbenchError(f"spoken-digits: espeak-ng {m.group(1)} has no voice variant {missing[0]!r} in "
                            f"{data / 'voices' / '!v'}; install Debian's espeak-ng-data")
    return path, m.group(1), data


def _speak(binary: str, clip: dict) -> np.ndarray:
    """One word as espeak-ng says it: int16 at MASTER_RATE, leading and trailing silence cut."""
    word = SETTINGS["words"][clip["label"]]
    cmd = [binary, "-v", f"{clip['voice']}+{clip['variant']}", "-s", str(clip["speed"]), "-p", str(clip["pitch"]),
           "-a", str(SETTINGS["espeak_amplitude"]), "--stdout", word]
    done = subprocess.run(cmd, capture_output=True)
    if done.returncode != 0 or not done.stdout:
        msg = done.stderr.decode(errors="replace").strip().splitlines()
        raise ResbenchError(f"spoken-digits: {' '.join(cmd)} failed: {msg[-1] if msg else done.returncode}")
    with wave.open(io.BytesIO(done.stdout)) as f:  # --stdout's header has no length: read to the end
        if (f.getframerate(), f.getnchannels(), f.getsampwidth()) != (MASTER_RATE, 1, 2):
            raise ResbenchError(f"spoken-digits: espeak-ng wrote {f.getframerate()} Hz, {f.getnchannels()} "
                                f"channel(s), {8 * f.getsampwidth()} bit; expected {MASTER_RATE} Hz mono 16 bit")
        audio = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")  # (samples,)
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) >= SETTINGS["trim_level"])  # int32: |-32768| fits
    if len(loud) == 0:
        raise ResbenchError(f"spoken-digits: {' '.join(cmd)} produced silence")
    return audio[loud[0]:loud[-1] + 1].astype(np.int16)


# ----------------------------------------------------------------------------------------------
# disk cache: the espeak-ng words, the one slow step (gain, offset, noise and resampling are redone per call)


def cache_key(seed=0, settings=None, version="") -> str:
    """The hash naming a cache folder: of every generator setting, the seed and the espeak-ng version."""
    text = json.dumps({"settings": SETTINGS if settings is None else settings, "seed": _seed_words(seed)[0],
                       "espeak-ng": version}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_root(cache_dir=None) -> Path:
    """The folder of the cache files: cache_dir, else $RESBENCH_CACHE/spoken-digits, else ~/.cache/resbench/..."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("RESBENCH_CACHE") or "~/.cache/resbench").expanduser() / "spoken-digits"


def _chunk_name(split: str, c: int) -> str:
    s = c * _CHUNK
    return f"{split}-{s:05d}-{min(SPOKEN_DIGITS_SIZES[split], s + _CHUNK):05d}.npz"


def _folder(root: Path, seed: int, version: str) -> Path:
    """The cache folder of one (settings, seed, espeak-ng version), e.g. 56f950e42cd28846-espeak-ng-1.51."""
    return root / f"{cache_key(seed, version=version)}-espeak-ng-{re.sub(r'[^0-9A-Za-z._-]', '_', version)}"


def _find_chunk(root: Path, split: str, seed: int, c: int, version: str | None) -> Path | None:
    """A cached chunk file: of this espeak-ng version, or (version None: espeak-ng is absent) of any."""
    if version is not None:
        path = _folder(root, seed, version) / _chunk_name(split, c)
        return path if path.is_file() else None
    # without espeak-ng the version is unknown: a folder whose meta.json has these settings and seed will do
    for folder in sorted(root.glob("*-espeak-ng-*"), reverse=True):
        path = folder / _chunk_name(split, c)
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        if path.is_file() and folder.name.startswith(cache_key(seed, version=meta.get("espeak-ng", ""))):
            return path
    return None


def _write_atomic(path: Path, write) -> None:
    """write(file) into a temp file beside path, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is as readable as any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_chunk(path: Path, words: list[np.ndarray], version: str, seed: int) -> None:
    meta = path.parent / "meta.json"
    if not meta.is_file():
        text = json.dumps({"settings": SETTINGS, "seed": _seed_words(seed)[0], "espeak-ng": version},
                          indent=1)
        _write_atomic(meta, lambda f: f.write(text.encode()))
    ends = np.cumsum([len(w) for w in words])  # (n,) end of each word in the concatenation
    _write_atomic(path, lambda f: np.savez(f, audio=np.concatenate(words), ends=ends))


@functools.lru_cache(maxsize=64)
def _read_chunk(path: str) -> tuple[np.ndarray, ...]:
    with np.load(path) as z:
        audio, ends = z["audio"], z["ends"]
    return tuple(np.split(audio, ends[:-1]))  # views of one int16 array, one per word


def _render_chunks(binary: str, todo: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], list[np.ndarray]]:
    """Speak every clip of the (split, seed, chunk)s in todo, two espeak-ng processes per core."""
    clips, owners = [], []
    for split, seed, c in todo:
        s = c * _CHUNK
        for i in range(s, min(SPOKEN_DIGITS_SIZES[split], s + _CHUNK)):
            clips.append(_one_clip(split, seed, i))
            owners.append((split, seed, c))
    # threads suffice: each waits on its espeak-ng process, which runs outside the GIL
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
        words = list(pool.map(functools.partial(_speak, binary), clips))
    out = {key: [] for key in todo}
    for key, w in zip(owners, words):
        out[key].append(w)
    return out


def _words(split: str, seed: int, start: int, n: int, cache_dir) -> list[np.ndarray]:
    """The int16 words of clips start..n, from the cache's chunk files; missing chunks are spoken and saved."""
    root = cache_root(cache_dir)
    chunks = range(start // _CHUNK, (n - 1) // _CHUNK + 1) if n > start else range(0)
    try:
        path, version, _ = _espeak(ESPEAK_BINARY)
    except ResbenchError:
        path = version = None  # a full cache needs no espeak-ng; raised below if a chunk is missing
    found = {c: _find_chunk(root, split, seed, c, version) for c in chunks}
    todo = [(split, seed, c) for c, p in found.items() if p is None]
    if todo:
        if path is None:
            _espeak(ESPEAK_BINARY)  # raises the not-installed error
        spoken = _render_chunks(path, todo)
        for (_, _, c), words in spoken.items():
            found[c] = _folder(root, seed, version) / _chunk_name(split, c)
            _save_chunk(found[c], words, version, seed)
    out = []
    for c in chunks:
        words = _read_chunk(str(found[c]))
        s = c * _CHUNK
        out.extend(words[max(start, s) - s:min(n, s + len(words)) - s])
    return out


# ----------------------------------------------------------------------------------------------
# mixing and resampling


def _mix(words: list[np.ndarray], clips: list[dict]) -> np.ndarray:
    """Float64 master clips (B, MASTER_LENGTH): each word, with gain, at its offset, over noise at its SNR."""
    # the noise: complex Gaussian spectra shaped to power ~ 1/f^b, one irfft for the batch; no DC term
    f = np.arange(MASTER_LENGTH // 2 + 1, dtype=np.float64)  # (K,) frequency bins
    f[0] = np.inf
    spec = np.empty((len(clips), len(f)), dtype=np.complex128)  # (B, K)
    for j, clip in enumerate(clips):
        rng = np.random.default_rng(clip["noise_seed"])
        spec[j].real = rng.standard_normal(len(f))
        spec[j].imag = rng.standard_normal(len(f))
        spec[j] *= f ** (-clip["noise_exponent"] / 2)
    x = np.fft.irfft(spec, n=MASTER_LENGTH, axis=1)  # (B, M)
    x /= np.sqrt(np.mean(x ** 2, axis=1, keepdims=True))  # unit RMS per clip
    for j, (word, clip) in enumerate(zip(words, clips)):
        w = word[:MASTER_LENGTH].astype(np.float64)  # float64: int16 has no room for gain and sums
        w *= 10 ** (clip["gain_db"] / 20) / np.abs(w).max()
        x[j] *= np.sqrt(np.mean(w ** 2)) * 10 ** (-clip["snr_db"] / 20)
        at = int(clip["offset"] * (MASTER_LENGTH - len(w) + 1))
        x[j, at:at + len(w)] += w
    return x


def _resample(x: np.ndarray, length: int) -> np.ndarray:
    """(B, MASTER_LENGTH) -> (B, length) with scipy's polyphase band-limited resampler."""
    if length == MASTER_LENGTH:
        return x
    import scipy.signal  # here: importing it takes about 1 s, which an image-only run need not pay

    g = math.gcd(length, MASTER_LENGTH)
    return scipy.signal.resample_poly(x, length // g, MASTER_LENGTH // g, axis=1)  # (B, length)


def render_spoken_digits(split, size, seed=0, limit=None, start=0, cache_dir=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips `start` to `limit` (exclusive) of a split with L = size samples over DURATION: (x float32
    (N, 1, L) roughly in [-1, 1], y int64 (N,)). The same clips at every L: each is resampled from its master.

    Only the cache chunks (of 100 clips) that the range touches are spoken by espeak-ng, once; cache_dir
    overrides cache_root().
    """
    split = check_split(split)
    length = _parse_length(size)
    start, n = _split_range(split, check_limit(limit), start)
    words = _words(split, int(seed), start, n, cache_dir)
    clips = [_one_clip(split, int(seed), i) for i in range(start, n)]
    out = np.empty((n - start, 1, length), dtype=np.float32)  # (N, 1, L)
    for s in range(0, n - start, _BATCH):
        e = min(n - start, s + _BATCH)
        out[s:e, 0] = _resample(_mix(words[s:e], clips[s:e]), length)  # float32: the dtype models take
    y = np.array([c["label"] for c in clips], dtype=np.int64)  # int64: the label dtype cross_entropy expects
    return torch.from_numpy(out), torch.from_numpy(y)


def _info(data_dir) -> DatasetInfo:
    return DatasetInfo("spoken-digits", 1, len(CLASSES), (MASTER_LENGTH,), CLASSES)


def _load(split: str, data_dir, seed: int, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    # native size: the master rate, nothing resampled; data_dir, when given, is the cache folder
    return render_spoken_digits(split, MASTER_LENGTH, seed=seed, limit=limit, cache_dir=data_dir)


def _stats_key(data_dir, seed: int) -> tuple:
    return (int(seed), cache_key(seed))  # the settings and seed make the set; where it is cached does not


def _render(split, size, seed=0, limit=None, start=0, data_dir=None) -> tuple[torch.Tensor, torch.Tensor]:
    return render_spoken_digits(split, size, seed, limit, start, cache_dir=data_dir)  # data_dir: the cache folder


def _labels(split: str, data_dir, seed: int, limit: int | None) -> torch.Tensor:
    _, n = _split_range(split, limit, 0)  # from the clips' settings: nothing spoken or resampled
    return torch.tensor([_one_clip(split, int(seed), i)["label"] for i in range(n)], dtype=torch.int64)


SPOKEN_DIGITS = Reader(_info, _load, _stats_key, caches=(_espeak, _read_chunk), render=_render, labels=_labels)
