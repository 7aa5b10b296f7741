"""What a model from outside resbench declares and how each value is checked: its weights file, the protocol
attributes (resbench.external lists them), its normalisation, its bandlimit hook, and a probe forward."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn as nn

from resbench import data
from resbench.checkpoints.format import check_data_stats
from resbench.errors import ResbenchError
from resbench.runtime import TimeLimitExceeded
from resbench.models.base import train_hw
from resbench.resolution import check_alpha
from resbench.statedicts import check_state_dict

if TYPE_CHECKING:
    from resbench.external import ModelOptions

__all__ = ["DATASET_STATS_WARNING", "first_line", "state_dict_of", "load_weights", "agreed", "declared",
           "declared_size", "data_stats", "trained_bandlimit", "probe"]

DATASET_STATS_WARNING = "normalisation: the dataset's own statistics, not recorded by the model"


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def state_dict_of(raw: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a loaded file: a plain state dict, or one under 'state_dict' or 'model'."""
    if isinstance(raw, dict):
        nested = next((raw[k] for k in ("state_dict", "model") if isinstance(raw.get(k), dict)), None)
        raw = raw if nested is None else nested
    if not isinstance(raw, dict) or not raw:
        raise ResbenchError(f"{path}: expected a state dict (a dict of tensors, plain or under 'state_dict' or "
                            f"'model'), found {type(raw).__name__}")
    bad = next((k for k, v in raw.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise ResbenchError(f"{path}: state dict entry {bad!r} is a {type(raw[bad]).__name__}, expected a tensor")
    if all(str(k).startswith("module.") for k in raw):  # saved from a DistributedDataParallel wrapper
        raw = {k[len("module."):]: v for k, v in raw.items()}
    return raw


def load_weights(net: nn.Module, path: str | Path, label: str) -> None:
    """Load a state dict file into `net` (every key, every shape); each failure is one line naming the file."""
    path = Path(path)
    if not path.exists():
        raise ResbenchError(f"{path}: weights file not found")
    if not path.is_file():
        raise ResbenchError(f"{path}: is not a file, expected a state dict file for {label}")
    from resbench.checkpoints import load_plain

    try:
        raw = load_plain(path)
    except Exception as e:  # torch raises many types for truncated, foreign or malicious files
        reason = ("holds objects other than tensors, refused without running them; save model.state_dict() alone"
                  if isinstance(e, pickle.UnpicklingError) and "GLOBAL" in str(e)
                  else "truncated, corrupt or not a torch file")
        raise ResbenchError(f"{path}: not a loadable weights file ({reason})") from None
    sd = state_dict_of(raw, path)
    check_state_dict(net.state_dict(), sd, f"{path}: state dict", label)
    net.load_state_dict(sd)


# ----------------------------------------------------------------------------------------------
# what the model declares, what the user gives


def agreed(label: str, attr: str, declared, option: str, given, show: Callable = repr):
    """The value the model declares or the user gives; both there: they must agree. None: neither."""
    if declared is not None and given is not None and declared != given:
        raise ResbenchError(f"{label}: {option} is {show(given)} but the model declares {attr}={show(declared)}; "
                            f"drop {option} or give the same")
    return declared if declared is not None else given


def declared(net: nn.Module, label: str, attr: str, check: Callable):
    """A protocol attribute of the model, checked (None when absent)."""
    value = getattr(net, attr, None)
    if value is None:
        return None
    try:
        return check(attr, value)
    except ResbenchError as e:
        raise ResbenchError(f"{label}: {e}") from None


def declared_size(attr: str, value) -> tuple[int, int]:
    return train_hw(list(value) if isinstance(value, tuple) else value)


def data_stats(net: nn.Module, label: str, opts: ModelOptions, dataset: str, in_chans: int,
               configured: dict | None = None) -> tuple[dict[str, list[float]], list[str]]:
    """(the normalisation of the model's inputs, warnings for its rows): declared, given, the model's configured
    one (a tagged timm model's pretrained config), else the dataset's."""
    declared = getattr(net, "resbench_data_stats", None)
    if declared is not None:
        if not isinstance(declared, dict) or "mean" not in declared or "std" not in declared:
            raise ResbenchError(f"{label}: resbench_data_stats: expected a dict with 'mean' and 'std' lists")
        declared = check_data_stats(label, "resbench_data_stats", declared["mean"], declared["std"], in_chans)
    given = None if opts.mean is None else check_data_stats(label, "--mean/--std", opts.mean, opts.std, in_chans)
    stats = agreed(label, "resbench_data_stats", declared, "--mean/--std", given)
    if stats is not None:
        return stats, []
    if configured is not None:
        return configured, []
    mean, std = data.dataset_stats(dataset, opts.data_dir, opts.seed)
    return {"mean": list(mean), "std": list(std)}, [DATASET_STATS_WARNING]


def trained_bandlimit(net: nn.Module, label: str) -> float | None:
    alpha = getattr(net, "resbench_bandlimit", None)
    if not callable(getattr(net, "resbench_set_bandlimit", None)):
        if alpha is not None:
            raise ResbenchError(f"{label}: declares resbench_bandlimit={alpha!r} but has no "
                                f"resbench_set_bandlimit(alpha) to switch it")
        return None
    try:
        return check_alpha(alpha, "resbench_bandlimit")
    except ResbenchError as e:
        raise ResbenchError(f"{label}: {e}") from None


def probe(net: nn.Module, label: str, in_chans: int, size: tuple[int, int]) -> tuple[int, int]:
    """Run one blank image at the training size: (the number of logits the model returns for it, the elements of
    the largest tensor any of its modules returned, what the sweep sizes batches by)."""
    device = next(iter(net.parameters()), torch.empty(0)).device
    x = torch.zeros(1, in_chans, *size, device=device)  # (1, C, h, w)
    largest = [x.numel()]

    def measure(module, args, output):
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.numel())

    handles = [m.register_forward_hook(measure) for m in net.modules()]
    try:
        out = _run_probe(net, label, x, size)
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        what = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ResbenchError(f"{label}: returns {what} for one image, expected logits of shape (1, classes)")
    return int(out.shape[1]), largest[0]


def _run_probe(net: nn.Module, label: str, x: torch.Tensor, size: tuple[int, int]):
    hook = getattr(net, "resbench_set_test_size", None)
    try:
        with torch.inference_mode():
            if callable(hook):
                hook(tuple(size))
            return net(x)
    except TimeLimitExceeded:
        raise
    except Exception as e:  # the model's own code: any exception means it cannot take this input
        raise ResbenchError(f"{label}: fails on a {tuple(x.shape)} input at its training size "
                            f"({type(e).__name__}: {first_line(e)}); check --in-chans and --train-res") from None
