"""Self-describing checkpoints: save atomically, load without running code, validate before use."""

from __future__ import annotations

import hashlib
import io
import pickle
import platform
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resbench.errors import ResbenchError
from resbench.statedicts import check_state_dict

__all__ = ["FORMAT", "VERSION", "Checkpoint", "check_archive", "describe", "file_sha256", "load_checkpoint", "load_plain",
           "save_checkpoint",
           "find_checkpoints", "package_versions"]

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


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate; every failure is a ResbenchError naming the file and what was wrong."""
    path = Path(path)
    if not path.exists():
        raise ResbenchError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise ResbenchError(f"{path}: is not a file, expected a resbench checkpoint (.pt)")
    if path.stat().st_size == 0:
        raise ResbenchError(f"{path}: empty file, expected a resbench checkpoint")
    from resbench.official import is_official, official_checkpoint, plain_config, read_official

    check_archive(path)
    try:
        raw = load_plain(path)
    except Exception as e:  # torch raises many types for truncated, foreign or malicious files
        if not _looks_like_lightning(path):
            raise ResbenchError(f"{path}: not a loadable resbench checkpoint ({_load_failure(e)})") from None
        raw = read_official(path)  # an official trainer's file: its config is an omegaconf object
    if is_official(raw):  # a checkpoint of the official S4ND code, converted as `import-official` does
        return official_checkpoint({**raw, "hyper_parameters": plain_config(raw["hyper_parameters"])}, path,
                                   file_sha256(path))
    ckpt = _validate(raw, path)
    ckpt.sha256 = file_sha256(path)
    return ckpt


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


def _looks_like_lightning(path: Path) -> bool:
    """Whether a torch zip file's pickle names omegaconf (a Lightning checkpoint's saved config)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
            return pkl is not None and b"omegaconf" in z.read(pkl)
    except (OSError, zipfile.BadZipFile):
        return False


def load_plain(path: Path) -> Any:
    """torch.load with weights_only: plain containers and tensors only, a pickle that would run code is
    refused. Raises what torch raises (many types for truncated, foreign or malicious files)."""
    # torch warns about the pickle protocol of files it then refuses; the callers' errors say what matters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def _load_failure(e: Exception) -> str:
    """A short reason for a failed torch.load (torch's own messages run to many lines of advice)."""
    if isinstance(e, pickle.UnpicklingError) and "GLOBAL" in str(e):
        return "holds objects that are not plain tensors/containers (refused without running them)"
    return "truncated, corrupt or not a torch file"


def _validate(raw: Any, path: Path) -> Checkpoint:
    from resbench.models import create_model, list_models

    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ResbenchError(f"{path}: not a resbench checkpoint (no format={FORMAT!r} field)")
    if raw.get("version") != VERSION:
        raise ResbenchError(f"{path}: checkpoint format version {raw.get('version')!r}, expected {VERSION}")
    for key, kind in (("model", str), ("config", dict), ("provenance", dict), ("state_dict", dict),
                      ("data_stats", dict)):
        if not isinstance(raw.get(key), kind):
            raise ResbenchError(f"{path}: field {key!r} missing or not a {kind.__name__}")
    if raw["model"] not in list_models():
        raise ResbenchError(f"{path}: unknown model {raw['model']!r} (`resbench models` lists the known ones)")
    sd = raw["state_dict"]
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise ResbenchError(f"{path}: state_dict holds values that are not tensors")
    _check_config_values(raw["config"], raw["provenance"], sd, path)
    try:
        with torch.device("meta"):  # shapes only: a config whose tensors would not fit in memory allocates nothing
            model = create_model(raw["model"], **raw["config"])
    except ResbenchError as e:
        raise ResbenchError(f"{path}: invalid config: {e}") from None
    except (TypeError, ValueError, ArithmeticError, RuntimeError) as e:  # a value of the wrong type or size
        raise ResbenchError(f"{path}: invalid config ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    check_state_dict(model.state_dict(), sd, f"{path}: state dict", f"model {raw['model']!r}")
    stats = raw["data_stats"]
    if not (isinstance(stats.get("mean"), (list, tuple)) and isinstance(stats.get("std"), (list, tuple))):
        raise ResbenchError(f"{path}: data_stats needs 'mean' and 'std' lists")
    from resbench.external_protocol import norm_stats

    stats = norm_stats(str(path), "data_stats", stats["mean"], stats["std"], model.config.in_chans)
    return Checkpoint(model=raw["model"], config=raw["config"], provenance=raw["provenance"],
                      data_stats=stats,
                      state_dict=sd, path=path, extra=raw.get("extra", {}))


def _check_config_values(config: dict, provenance: dict, sd: dict, path: Path) -> None:
    """Refuse config values no weights of this file could fit, before anything is built: an integer larger
    than the file's weights hold elements (a d_state of 10**12), a non-finite float, a training size past
    the test-size limits, or a provenance train_res that is not the config's (the rates follow the config)."""
    import math

    from resbench.models.base import train_hw
    from resbench.resolution import MAX_LENGTH, MAX_SIZE

    bound = max(4096, sum(v.numel() for v in sd.values()))

    def walk(key, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{key}.{k}" if str(k).isidentifier() else f"{key}.{ascii(k)}", v)  # a key is one line
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(key, v)
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > bound:
            raise ResbenchError(f"{path}: config {key}={value}: larger than the {bound} elements its weights hold")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ResbenchError(f"{path}: config {key}={value}: expected a finite number")

    for key, value in config.items():
        if key != "train_res":
            walk(str(key) if str(key).isidentifier() else ascii(key), value)
    try:
        size = train_hw(config.get("train_res", 14))
    except ResbenchError as e:
        raise ResbenchError(f"{path}: invalid config: {e}") from None
    if max(size) > (MAX_LENGTH if len(size) == 1 else MAX_SIZE):
        raise ResbenchError(f"{path}: config train_res={config['train_res']}: past the largest size, "
                            f"{MAX_LENGTH} samples or {MAX_SIZE} px per side")
    given = provenance.get("train_res")
    if given is not None:
        try:
            same = train_hw(given) == size
        except ResbenchError:
            same = False
        if not same:
            raise ResbenchError(f"{path}: provenance train_res={given!r} differs from config train_res="
                                f"{config.get('train_res')!r} (the model's rates follow the config)")


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
