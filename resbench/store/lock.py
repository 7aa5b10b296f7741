"""One sweep at a time per shard of a folder: a lock file beside the shard's log, held while the sweep runs.

The lock is an flock on OUT/.cells.lock (.cells-KofN.lock for a shard), so shards of one sweep still run side by
side. The kernel drops it when its process ends, however it ends: a file left by a killed sweep is stale and
simply taken over. The file names the holder (pid, host, start), for the one line a second sweep prints.
POSIX only (fcntl); where fcntl is missing, or the file system refuses locks, sweeps run unlocked.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from resbench.errors import ResbenchError
from resbench.store.logs import log_path

__all__ = ["SweepLock", "lock_path"]


def lock_path(out: Path, shard: tuple[int, int]) -> Path:
    """OUT/.cells.lock, or OUT/.cells-KofN.lock for a shard (hidden: not a result)."""
    log = log_path(Path(out), shard)
    return log.parent / f".{log.stem}.lock"


def _holder(path: Path) -> str:
    """Who holds the lock, from the file: 'pid N on HOST since TIME', or what can be said without it."""
    try:
        info = json.loads(path.read_text())
        return f"pid {int(info['pid'])} on {info['host']} since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"


class SweepLock:
    """Held from acquire() to release() (or this process's end); a second holder gets one line naming the first."""

    def __init__(self, out: Path, shard: tuple[int, int]):
        self.path = lock_path(out, shard)
        self._fd: int | None = None

    def acquire(self) -> SweepLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        try:  # O_NOFOLLOW: a link put in the lock's place is refused, never written through
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as e:
            raise ResbenchError(f"{self.path}: cannot open the sweep's lock file ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held by another process
            os.close(fd)
            raise ResbenchError(f"{self.path.parent}: another sweep is writing this folder ({_holder(self.path)}); "
                                "wait for it to end, or sweep into another folder (or another --shard)") from None
        except OSError:  # a file system without locks (some network mounts): run unlocked, as before locks existed
            os.close(fd)
            return self
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        except OSError as e:  # a full disk: nothing a sweep could write either
            self.release()
            raise ResbenchError(f"{self.path}: cannot write the sweep's lock file ({e.strerror or e})") from None
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (a later sweep reuses it)
            self._fd = None

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
