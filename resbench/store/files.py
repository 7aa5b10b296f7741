"""Files of a sweep folder written safely: atomic writes, output folders checked before use."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from resbench.errors import ResbenchError

__all__ = ["atomic_write_bytes", "writable_folder", "check_out_dir"]

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write-then-rename in the same folder: readers see the old file or the new one, never half."""
    path = Path(path)
    if path.is_dir():
        raise ResbenchError(f"{path}: is a directory, expected a file path to write")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:  # a full disk: no half-written temp file is left behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise ResbenchError(f"{path}: cannot write ({e.strerror or e})") from None


def writable_folder(folder: Path) -> Path:
    """Create `folder` if needed and check that files can be written in it (a user error, not a traceback)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResbenchError(f"{folder}: cannot create the output folder ({e.strerror or e})") from None
    if not os.access(folder, os.W_OK):
        raise ResbenchError(f"{folder}: output folder is not writable")
    return folder


def check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ResbenchError(f"{out}: exists and is not a folder; expected an output folder for the sweep")
    writable_folder(out)
    for log in sorted(out.glob("cells*.jsonl")):
        if log.is_symlink() or not log.is_file():  # rows are appended in place: never to a file elsewhere
            raise ResbenchError(f"{log}: is a link or not a regular file; a sweep appends its rows only to a "
                                f"file of its own folder")
