"""Reading a checkpoint file's bytes safely: archive shapes torch would choke on are refused first, and
pickles load with torch's weights-only reader (tensors and plain containers, no code run)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from resbench.errors import ResbenchError

__all__ = ["MAX_PICKLE_BYTES", "check_archive", "load_plain", "looks_like_lightning", "load_failure"]

MAX_PICKLE_BYTES = 64 << 20  # a checkpoint's pickle holds its config and tensor references: kilobytes, not GiB


def check_archive(path: Path) -> None:
    """Refuse, before torch reads it, an archive torch would choke on: a zip member that inflates past
    MAX_PICKLE_BYTES (a pickle padded with zeros: a zip bomb), or a tar member (torch's legacy format) that is
    not a regular file (a FIFO blocks the reader forever). Other damage is left for torch.load to report."""
    import tarfile
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    inflated = info.compress_type != zipfile.ZIP_STORED and info.file_size > 100 * info.compress_size
                    if info.file_size > MAX_PICKLE_BYTES and (info.filename.endswith(".pkl") or inflated):
                        raise ResbenchError(f"{path}: archive member {info.filename!r} unpacks to {info.file_size:,} "
                                            f"bytes from {info.compress_size:,} (refused: not a checkpoint's shape)")
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as tar:
                for member in tar:
                    if not (member.isreg() or member.isdir()):
                        raise ResbenchError(f"{path}: archive member {member.name!r} is not a regular file "
                                            f"(refused: torch would read it as one)")
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError):
        return  # damaged: torch.load says so


def looks_like_lightning(path: Path) -> bool:
    """Whether a torch zip file's pickle names omegaconf (a Lightning checkpoint's saved config) or numpy
    (a logged metric's scalar): the official reader, which allows those, reads it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
            data = z.read(pkl) if pkl is not None else b""
            return b"omegaconf" in data or b"numpy" in data
    except (OSError, zipfile.BadZipFile):
        return False


def load_plain(path: Path) -> Any:
    """torch.load with weights_only: plain containers and tensors only, a pickle that would run code is
    refused. Raises what torch raises (many types for truncated, foreign or malicious files)."""
    # torch warns about the pickle protocol of files it then refuses; the callers' errors say what matters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def load_failure(e: Exception) -> str:
    """A short reason for a failed torch.load (torch's own messages run to many lines of advice)."""
    if isinstance(e, pickle.UnpicklingError) and "GLOBAL" in str(e):
        return "holds objects that are not plain tensors/containers (refused without running them)"
    return "truncated, corrupt or not a torch file"
