"""Lightning checkpoint files (the official state-spaces/s4 trainer's): read without running code (by
`archive.read_archive`, whose unpickler keeps the omegaconf config as inert stand-ins) and turned into plain
values; the normalisation of an imported model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resbench.checkpoints.archive import read_archive
from resbench.checkpoints.unpickler import ANY, DictConfigStub, ListConfigStub, MetadataStub, NodeStub
from resbench.errors import ResbenchError

__all__ = ["read_official", "is_official", "plain_config", "import_stats"]


def plain_config(obj: Any) -> Any:
    """omegaconf stand-ins (and containers holding them) -> plain dicts, lists and values."""
    if isinstance(obj, DictConfigStub):
        content = obj.state.get("_content")
        return {str(k): plain_config(v) for k, v in content.items()} if isinstance(content, dict) else content
    if isinstance(obj, ListConfigStub):
        content = obj.state.get("_content")
        return [plain_config(v) for v in content] if isinstance(content, (list, tuple)) else content
    if isinstance(obj, NodeStub):
        return plain_config(obj.state.get("_val"))
    if isinstance(obj, dict):
        return {k: plain_config(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_config(v) for v in obj]
    if obj is ANY or isinstance(obj, MetadataStub):
        return None
    return obj


def read_official(path: str | Path) -> dict:
    """The dict an official checkpoint holds, its config as plain values; ResbenchError when unreadable."""
    path = Path(path)
    raw = read_archive(path)
    if not is_official(raw):
        raise ResbenchError(f"{path}: not an official S4 checkpoint (expected 'state_dict' and "
                            f"'hyper_parameters' with a 'model' section)")
    raw = dict(raw)
    raw["hyper_parameters"] = plain_config(raw["hyper_parameters"])
    return raw


def is_official(raw: Any) -> bool:
    """Whether a loaded object looks like an official S4 (Lightning) checkpoint."""
    if not isinstance(raw, dict) or "format" in raw:
        return False
    hp = plain_config(raw.get("hyper_parameters"))
    return isinstance(raw.get("state_dict"), dict) and isinstance(hp, dict) and isinstance(hp.get("model"), dict)


def import_stats(dataset, known: dict | None, in_chans: int, mean, std) -> dict:
    """The normalisation of an imported official model: --mean/--std when given, else `known` (the official
    loader's for `dataset`); refused in one line when neither, or when the count is not the input channels'."""
    stats = known
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ResbenchError("give both --mean and --std (one value per input channel)")
        stats = {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}
    if stats is None:
        raise ResbenchError(f"official checkpoint: the normalisation of dataset {dataset!r} is not known to "
                            f"resbench: pass --mean and --std (the statistics the model was trained with)")
    if len(stats["mean"]) != in_chans or len(stats["std"]) != in_chans:
        raise ResbenchError(f"official checkpoint: normalisation has {len(stats['mean'])} means and "
                            f"{len(stats['std'])} stds, the model takes {in_chans} input channels")
    return stats
