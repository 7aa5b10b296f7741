"""resbench's checkpoint: the self-describing record (model, config, provenance, data stats, weights), saved
atomically; listing and hashing checkpoint files."""

from __future__ import annotations

import hashlib
import io
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resbench.errors import ResbenchError

__all__ = ["FORMAT", "VERSION", "PROVENANCE_KEYS", "Checkpoint", "describe", "file_sha256", "save_checkpoint",
           "find_checkpoints", "package_versions", "check_data_stats"]

FORMAT = "resbench-checkpoint"
VERSION = 1
# provenance keys every checkpoint carries (values may be None when unknown)
PROVENANCE_KEYS = ("dataset", "train_res", "schedule", "epochs", "seed", "bandlimit", "native_accuracy",
                   "wall_time_s", "versions")


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "timm", "resbench"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@dataclass
class Checkpoint:
    """A validated checkpoint: which model, how it was configured and trained, and its weights."""

    model: str
    config: dict[str, Any]
    provenance: dict[str, Any]
    data_stats: dict[str, list[float]]  # {"mean": [...], "std": [...]} per input channel
    state_dict: dict[str, torch.Tensor]
    path: Path | None = None
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def build_model(self) -> torch.nn.Module:
        """The model with these weights, in eval mode."""
        from resbench.models import create_model

        model = create_model(self.model, **self.config)
        model.load_state_dict(self.state_dict)
        return model.eval()

    @property
    def train_res(self) -> tuple[int, ...]:
        """The training size: (h, w) for an image model, (L,) for a signal's, (t, h, w) for a clip's."""
        res = self.provenance.get("train_res") or self.config.get("train_res")
        return (int(res), int(res)) if isinstance(res, int) else tuple(int(v) for v in res)

    @property
    def dims(self) -> int:
        """Axes of the model's input: 1 (signals), 2 (images) or 3 (clips)."""
        return len(self.train_res)

    @property
    def name(self) -> str:
        return self.path.stem if self.path else self.model

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "model": self.model, "config": self.config,
                "provenance": self.provenance, "data_stats": self.data_stats, "state_dict": self.state_dict,
                **({"extra": self.extra} if self.extra else {})}


def describe(ckpt: Checkpoint) -> dict[str, Any]:
    """What `resbench info` shows: file, sha256, model, parameters, policies, config, provenance, data stats."""
    from resbench.models import count_params

    model = ckpt.build_model()
    return {"checkpoint": str(ckpt.path), "sha256": ckpt.sha256, "model": ckpt.model,
            "parameters": count_params(model), "policies": model.POLICIES, "has_bandlimit": model.has_bandlimit,
            "config": ckpt.config, "provenance": ckpt.provenance, "data_stats": ckpt.data_stats}


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    from resbench.store import atomic_write_bytes  # the store imports pandas: not on the way of `resbench info`

    buf = io.BytesIO()
    torch.save(ckpt.to_dict(), buf)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_checkpoints(paths) -> list[Path]:
    """Expand files and folders (their *.pt files, sorted) into a list of checkpoint paths."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.glob("*.pt") if q.is_file())
            if not found:
                raise ResbenchError(f"{p}: folder holds no checkpoints (*.pt)")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise ResbenchError(f"{p}: checkpoint not found")
    return out


def check_data_stats(label: str, what: str, mean, std, in_chans: int) -> dict[str, list[float]]:
    """{"mean": [...], "std": [...]}, one finite value per channel, stds positive."""
    try:
        mean, std = [float(v) for v in mean], [float(v) for v in std]
    except (TypeError, ValueError):
        raise ResbenchError(f"{label}: {what}: expected numbers per channel") from None
    if len(mean) != in_chans or len(std) != in_chans:
        raise ResbenchError(f"{label}: {what}: {len(mean)} mean(s) and {len(std)} std(s), expected {in_chans} "
                            f"each, one per input channel")
    if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
        raise ResbenchError(f"{label}: {what}: expected finite means and positive stds")
    return {"mean": mean, "std": std}
