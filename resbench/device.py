"""Where models run and in what precision (--device, --precision): checked before any work, recorded with results."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from resbench.errors import ResbenchError

__all__ = ["PRECISIONS", "CPU_MEMORY_BUDGET", "MIN_FREE_BYTES", "resolve_device", "device_name", "cpu_model",
           "check_precision", "autocast", "float32_classifier", "no_tf32", "free_memory_budget"]

# autocast dtype of each precision; fp32 runs without autocast
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_MEMORY_BUDGET = 2 * 1024 ** 3  # bytes of activations one batch may take on the CPU
MIN_FREE_BYTES = 256 * 1024 ** 2  # a GPU with less free memory cannot run a useful batch


def resolve_device(text: str | torch.device = "auto") -> torch.device:
    """'auto' (the first GPU when there is one, else the CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'.

    A device that does not exist here is a user error, raised before any work.
    """
    word = str(text).strip().lower()
    if word == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        return torch.device("mps") if torch.backends.mps.is_available() else torch.device("cpu")
    try:
        device = torch.device(word)
    except (RuntimeError, TypeError):
        raise ResbenchError(f"--device {text!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ResbenchError(f"--device {text!r}: no CUDA device is available here; use cpu or auto")
        index = 0 if device.index is None else device.index
        if index >= count:
            raise ResbenchError(f"--device {text!r}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ResbenchError(f"--device {text!r}: MPS is not available here; use cpu or auto")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ResbenchError(f"--device {text!r}: expected auto, cpu, cuda, cuda:N or mps")
    return device


def device_name(device: torch.device) -> str:
    """What a results row records: 'cpu (x86_64)', 'cuda:0 (NVIDIA H200)', 'mps'."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({platform.processor() or platform.machine()})"
    return str(device)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the processor platform reports: a run record
    names it, since speeds (and bf16 gains) differ by CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def check_precision(text: str) -> str:
    word = str(text).strip().lower()
    if word not in PRECISIONS:
        raise ResbenchError(f"--precision {text!r}: expected one of {', '.join(PRECISIONS)}")
    return word


def autocast(device: torch.device, precision: str):
    """Autocast to the precision's dtype on the device; fp32 runs as it is, in true float32 on CUDA too."""
    dtype = PRECISIONS[check_precision(precision)]
    if dtype is None:
        return no_tf32() if device.type == "cuda" else contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def float32_classifier(model: nn.Module, num_classes: int):
    """Within the block the model's classifier (its last nn.Linear with num_classes outputs) returns float32
    logits under autocast, from its input as it comes: bf16 logits carry 8 significant bits, so two classes
    within about 0.4% of each other tie and argmax takes the lower class index (at s4nd_iso_28 at 28, 10 of
    10,000 images tie, and 6 of its 12 flips against fp32 are ties). The classifier is a GEMV's worth of work.
    A model without such a layer runs as it is."""
    modules = model.modules() if isinstance(model, nn.Module) else ()
    heads = [m for m in modules if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not heads:
        yield
        return

    def recompute(module: nn.Linear, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if output.dtype == torch.float32 or output.dtype == module.weight.dtype:
            return output  # no autocast at this call: the layer's own dtype stands
        with torch.autocast(output.device.type, enabled=False):  # float32 however the block was entered
            bias = None if module.bias is None else module.bias.float()
            return F.linear(args[0].float(), module.weight.float(), bias)  # (..., num_classes)

    handle = heads[-1].register_forward_hook(recompute)  # a forward hook's return value replaces the output
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def no_tf32():
    """Matmuls and cuDNN convolutions in float32, not TF32 (cuDNN's default on Ampere and later), so that a
    row marked fp32 means float32 arithmetic; the previous settings come back on exit."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def free_memory_budget(device: torch.device) -> int:
    """Bytes of activations one batch may take on a CUDA device: half its free memory (the rest: weights,
    kernels, the allocator's slack). Memory torch's allocator holds but does not use counts as free, so the
    budget does not shrink cell by cell. Too little free memory is a user error."""
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if free < MIN_FREE_BYTES:
        raise ResbenchError(f"--device {device}: {free / 1024 ** 2:.0f} MiB free, at least "
                            f"{MIN_FREE_BYTES / 1024 ** 2:.0f} MiB needed; free the GPU or choose another device")
    return free // 2
