"""Reading a checkpoint file's bytes safely: archive shapes torch would choke on are refused first, then the
file is loaded once by the restricted unpickler (tensors, plain containers, official configs; no code run).
A user's own state dict (`load_plain`) goes through torch's weights-only reader."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from resbench.checkpoints.unpickler import load_restricted
from resbench.errors import ResbenchError

__all__ = ["MAX_PICKLE_BYTES", "check_archive", "read_archive", "load_plain"]

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


def read_archive(path: Path, kind: str = "checkpoint") -> Any:
    """The object a checkpoint file holds, its pickle read once (after `check_archive`), no code run; a
    ResbenchError naming the file and `kind` (what was expected) when it is refused, truncated or foreign."""
    check_archive(path)
    try:
        return load_restricted(path)
    except pickle.UnpicklingError as e:
        raise ResbenchError(f"{path}: not a loadable {kind} (refused without running it: {e})") from None
    except Exception:  # noqa: BLE001 (torch raises many types for truncated, foreign or malicious files)
        raise ResbenchError(f"{path}: not a loadable {kind} (truncated, corrupt or not a torch file)") from None


def load_plain(path: Path) -> Any:
    """torch.load with weights_only: plain containers and tensors only, a pickle that would run code is
    refused. Raises what torch raises (many types for truncated, foreign or malicious files)."""
    # torch warns about the pickle protocol of files it then refuses; the callers' errors say what matters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)
