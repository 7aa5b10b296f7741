"""Checkpoints: resbench's own format and the files of other code, read without running code, behind one table.

A checkpoint file's bytes are read once, safely (`archive`: refused shapes, then one load by the restricted
unpickler of `unpickler`; `lightning`: the official trainer's config as plain values). Then the first reader in `_READERS` that claims the loaded object turns it
into a validated `Checkpoint`: the official S4ND-ConvNeXt, the official isotropic S4ND, or resbench's own
format (the default, whose checks say what is wrong with anything else). A new format is a module with a
`claims(raw)` and a converter, and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from resbench.checkpoints import archive, lightning, official_convnext, official_s4nd, own
from resbench.checkpoints.archive import check_archive, load_plain
from resbench.checkpoints.lightning import read_official
from resbench.checkpoints.format import (FORMAT, PROVENANCE_KEYS, VERSION, Checkpoint, describe, file_sha256,
                                         find_checkpoints, package_versions, save_checkpoint)
from resbench.errors import ResbenchError

__all__ = ["FORMAT", "VERSION", "PROVENANCE_KEYS", "Checkpoint", "READERS", "check_archive", "describe",
           "file_sha256", "find_checkpoints", "import_official", "load_checkpoint", "load_plain", "official_checkpoint",
           "package_versions", "read_official", "save_checkpoint"]


@dataclass(frozen=True)
class Reader:
    """One checkpoint format: whether a loaded object is one of its files, and its conversion to a Checkpoint."""

    name: str
    claims: Callable[[Any], bool]
    convert: Callable[..., Checkpoint]  # (raw, path, sha256) -> Checkpoint; official ones take import options
    official: bool  # a file of the official code: `import-official` takes it


def _own(raw, path, sha256, **_unused) -> Checkpoint:
    return own.from_raw(raw, path, sha256)


# The one table of formats, tried in order; the last one takes whatever the others did not claim.
_READERS = (
    Reader("official-s4nd-convnext", official_convnext.claims, official_convnext.convnext_checkpoint, True),
    Reader("official-s4nd", official_s4nd.claims, official_s4nd.official_checkpoint, True),
    Reader("resbench", lambda raw: True, _own, False),
)
READERS = tuple(r.name for r in _READERS)


def _read(path: Path) -> Any:
    """The loaded object of a checkpoint file (official hyper-parameters as plain values), no code run."""
    raw = archive.read_archive(path, "resbench checkpoint")
    if lightning.is_official(raw):
        raw = {**raw, "hyper_parameters": lightning.plain_config(raw["hyper_parameters"])}
    return raw


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate any known format; every failure is a ResbenchError naming the file and what was wrong."""
    path = Path(path)
    if not path.exists():
        raise ResbenchError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise ResbenchError(f"{path}: is not a file, expected a resbench checkpoint (.pt)")
    if path.stat().st_size == 0:
        raise ResbenchError(f"{path}: empty file, expected a resbench checkpoint")
    raw = _read(path)
    reader = next(r for r in _READERS if r.claims(raw))
    return reader.convert(raw, path, file_sha256(path))


def official_checkpoint(raw: dict, path: Path, sha256: str, train_res=None, dataset: str | None = None,
                        mean=None, std=None) -> Checkpoint:
    """An official checkpoint (the dict `read_official` returns) as a resbench Checkpoint, by the reader of its
    family; import options: the training size, dataset name and normalisation when the file does not say."""
    reader = next((r for r in _READERS if r.official and r.claims(raw)), None)
    if reader is None:
        raise ResbenchError(f"{path}: not an official S4 checkpoint (expected 'state_dict' and 'hyper_parameters' "
                            f"with a 'model' section)")
    return reader.convert(raw, path, sha256, train_res, dataset, mean, std)


def import_official(source: str | Path, out: str | Path, train_res=None, dataset: str | None = None,
                    mean=None, std=None) -> Checkpoint:
    """Convert an official checkpoint file into a resbench checkpoint at `out`; returns the Checkpoint."""
    source = Path(source)
    if not source.is_file():
        raise ResbenchError(f"{source}: official checkpoint not found")
    ckpt = official_checkpoint(read_official(source), source, file_sha256(source), train_res, dataset, mean, std)
    save_checkpoint(ckpt, out)
    return load_checkpoint(out)  # what a sweep will read: validated like every resbench checkpoint
