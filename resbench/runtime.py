"""Process settings for long CPU work: keep freed memory for reuse instead of handing it back, and flush
subnormal floats to zero (see flushed_denormals).

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh mmap and
unmaps it on free, so each large activation is page-faulted and zeroed again on every batch. On
this project's VM that was about 40% of a sweep's CPU time (system time), and it made the S4ND FFT
path 3x slower (28x28: 368 against 121 ms). `keep_freed_memory()` asks glibc to serve everything from its heap and to keep up to
1 GiB of freed memory. Measured with benchmarks/bench_models.py (batch 64 at 28x28): s4nd_iso
240 -> 183 ms, conv2d_iso 190 -> 130 ms. The CLI calls it once at start; `RESBENCH_MALLOC=default`
leaves the allocator alone. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import os
import signal
import threading
from typing import Iterator

from resbench.errors import ResbenchError

__all__ = ["keep_freed_memory", "flushed_denormals", "TimeLimitExceeded", "check_time_limit", "time_limit"]

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
_KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Serve large allocations from the reusable heap; True when glibc took the settings."""
    if os.environ.get("RESBENCH_MALLOC", "") == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


@contextlib.contextmanager
def flushed_denormals() -> Iterator[bool]:
    """Within the block, subnormal floats (below 1.2e-38 in float32) are rounded to zero on the CPU; yields
    whether the CPU took the setting. The process's setting is restored after (off, Python's default), so an
    in-process caller (tests, a notebook) keeps IEEE arithmetic outside the CLI's work.

    Training drives some gradients into that range, where x86 arithmetic is many times slower. Measured on this
    project's 2-core VM, one thread: conv3d_iso at 8x14x14 (d_model 32, batch 32) trained 320 clips in 16 s
    with subnormals and 6 s without. Values that small do not change any result; RESBENCH_DENORMALS=keep
    leaves the CPU's setting alone.
    """
    if os.environ.get("RESBENCH_DENORMALS", "") == "keep":
        yield False
        return
    import torch

    flushed = bool(torch.set_flush_denormal(True))
    try:
        yield flushed
    finally:
        if flushed:
            torch.set_flush_denormal(False)


class TimeLimitExceeded(TimeoutError):
    """Work ran past its time limit (time_limit)."""


def check_time_limit(seconds: float | None, option: str) -> None:
    """A time limit this process can keep: a positive finite number of seconds, on POSIX, from the main thread
    (the limit is a SIGALRM timer, whose handler Python runs in the main thread only)."""
    if seconds is None:
        return
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds <= 0:
        raise ResbenchError(f"{option} {seconds!r}: expected a positive number of seconds")
    if not hasattr(signal, "setitimer"):
        raise ResbenchError(f"{option}: needs POSIX signals (SIGALRM), which this platform lacks")
    if threading.current_thread() is not threading.main_thread():
        raise ResbenchError(f"{option}: works only from the main thread (it is a SIGALRM timer)")


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise TimeLimitExceeded(`what` ...) in the block once `seconds` have passed; None: no limit, no cost.

    A SIGALRM timer: Python raises from its handler at the next bytecode the main thread runs, and a sleep or a
    blocking read is interrupted. Limits: one operation running in C (a large convolution, an op that never
    returns to Python) is stopped only when it returns; nested limits are not supported (the inner one wins).
    """
    if seconds is None:
        yield
        return

    def expire(signum, frame):
        raise TimeLimitExceeded(f"{what} ran past {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
