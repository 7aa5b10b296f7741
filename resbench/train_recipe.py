"""The training recipe as a user gives it: TrainConfig (saved into every checkpoint), schedules, sizes and
multi-scale sets, each checked before any work."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from resbench.device import resolve_device
from resbench.errors import ResbenchError
from resbench.resolution import format_size

__all__ = ["TrainConfig", "SIZES", "EPOCHS", "RUN_SETTINGS", "check_train_size", "parse_schedule", "train_config",
           "parse_multiscale", "train_size_value", "size_label"]

SIZES = range(4, 1025)  # train sizes a schedule accepts
# TrainConfig fields that say where a run goes, not what it computes: a state may resume under others
# TrainConfig fields that say where a run goes, not what it computes: a state may resume under others
RUN_SETTINGS = ("threads", "device")
EPOCHS = range(1, 10001)  # epochs one phase of a schedule accepts


@dataclass
class TrainConfig:
    model: str
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    schedule: list[tuple] = field(default_factory=lambda: [(14, 3)])  # [(size, epochs), ...]; size: int (square
    # image) or a list ([L], [h, w], [t, h, w])
    batch_size: int = 64
    lr: float = 5e-3             # AdamW, all but the SSM parameters
    weight_decay: float = 0.05
    ssm_lr: float = 1e-3         # SSM step, A and B
    ssm_weight_decay: float = 0.0
    warmup_frac: float = 0.05    # linear warm-up, then cosine to zero, over all steps of all phases
    label_smoothing: float = 0.0
    seed: int = 0
    limit: int | None = None     # first N training images (quick runs and tests)
    test_limit: int | None = None  # first N test images for the final test
    threads: int | None = None   # CPU threads; None: torch's default (the cores, or $OMP_NUM_THREADS)
    device: str = "cpu"          # where the model trains and is tested ("cuda", "cuda:1", ...)
    multiscale: list | None = None  # multi-scale training: each batch at a size drawn from these (train_res
    # among them); None: every batch at the schedule's size. train_res stays the model's reference grid
    model_overrides: dict = field(default_factory=dict)  # fields of the model config (width, bandlimit, ...)

    @property
    def train_res(self) -> int | list[int]:
        return self.schedule[-1][0]  # the model's reference grid is the final size

    @property
    def epochs(self) -> int:
        return sum(e for _, e in self.schedule)


def train_size_value(size: tuple[int, ...]):
    """A training size as configs and checkpoints hold it: an int for a square image (as ever), else a list."""
    return size[0] if len(size) == 2 and size[0] == size[1] else list(size)


def size_label(sides: tuple[int, ...]) -> str:
    """How progress lines name a size: 14px, 28x20px, 8000 samples, 8x14x14 (frames x height x width)."""
    text = format_size(sides)
    return {1: f"{text} samples", 2: f"{text}px", 3: text}[len(sides)]


def check_train_size(value, dims: int = 2, what: str = "--train-res"):
    """A training size in any form parse_size takes, for a dataset of `dims` axes -> its config form (an int
    for a square image, else a list). Each side must lie in SIZES (a signal's length: up to MAX_LENGTH)."""
    from resbench.resolution import MAX_LENGTH, parse_size

    try:
        size = parse_size(value, dims)
    except ResbenchError as e:
        if isinstance(value, (int, str)) and str(value).strip().lstrip("-").isdigit():
            size = None  # a plain count out of range: the message below names the range
        else:
            raise ResbenchError(f"{what} {value}: {e}") from None
    top = MAX_LENGTH if dims == 1 else SIZES.stop - 1
    if size is None or not all(SIZES.start <= v <= top for v in size):
        raise ResbenchError(f"{what} {value}: expected a whole number in {SIZES.start}..{top} per side"
                            + ("" if dims == 2 else f" ({'L' if dims == 1 else 'TxHxW'})"))
    return train_size_value(size)


def parse_schedule(text: str, dims: int = 2) -> list[tuple[int | list[int], int]]:
    """'7:2,14:1,28:1' -> [(7, 2), (14, 1), (28, 1)]: train at each size for that many epochs, in order.

    Sizes take every form of the dataset's `dims` ('4000:2,8000:1' for signals, '4x14x14:1,8x14x14:2' for clips).
    """
    items = str(text).split(",")
    out = []
    for item in items:
        m = re.fullmatch(r"\s*(\d+(?:\s*[xX]\s*\d+)*)\s*:\s*(\d+)\s*", item)
        if not m:
            raise ResbenchError(f"schedule {text!r}: item {item!r} is not SIZE:EPOCHS (example: 7:2,14:1,28:1)")
        try:
            size = check_train_size(m.group(1).strip(), dims, "size")
        except ResbenchError as e:
            raise ResbenchError(f"schedule {text!r}: {e}") from None
        try:
            epochs = int(m.group(2))
        except ValueError:  # more digits than int() converts (4300): far outside the range below
            raise ResbenchError(f"schedule {text!r}: item {item!r} holds a number far too large") from None
        if epochs not in EPOCHS:
            raise ResbenchError(f"schedule {text!r}: epochs {epochs} is outside {EPOCHS.start}..{EPOCHS.stop - 1}")
        out.append((size, epochs))
    return out


def train_config(model: str, *, train_res: int | None = None, epochs: int | None = None, schedule: str | None = None,
                 bandlimit: str | None = None, mask: str | None = None, multiscale: str | None = None,
                 model_overrides: dict | None = None, **fields) -> TrainConfig:
    """A checked TrainConfig from what a user gives (the `train` command's options).

    Either `schedule` ('7:2,14:1,28:1') or `train_res` (default 14) with `epochs` (default 3);
    `bandlimit` as text: an alpha in (0, 1], or off / none; `mask` the S4ND mask kind (band, random);
    `multiscale` sizes as text ('4,5,6,7'), train_res among them; `fields` are other TrainConfig fields.
    Every user error is raised here, before any work: bad counts, an unknown model or config field,
    a bandlimit for a model without one.
    """
    from resbench import data
    from resbench.models import create_model
    from resbench.resolution import parse_bandlimit

    if schedule is not None and (train_res is not None or epochs is not None):
        raise ResbenchError("--schedule: give either --schedule or --train-res/--epochs, not both")
    if epochs is not None and epochs not in EPOCHS:
        raise ResbenchError(f"--epochs {epochs}: expected a whole number in {EPOCHS.start}..{EPOCHS.stop - 1}")
    for name in ("batch_size", "limit", "test_limit"):
        if fields.get(name) is not None and fields[name] < 1:
            raise ResbenchError(f"--{name.replace('_', '-')} {fields[name]}: expected a positive number")
    # the dataset's axes say what a size means: 8000 is a signal's length for spoken digits, a square elsewhere
    dims = len(data.dataset_info(fields.get("dataset", "fashion-mnist"), fields.get("data_dir")).native_size)
    if train_res is None and dims != 2 and schedule is None:
        raise ResbenchError(f"--train-res: needed for the {dims}-d dataset {fields.get('dataset')!r} "
                            f"({'a length like 8000' if dims == 1 else 'TxHxW like 8x14x14'})")
    sched = parse_schedule(schedule, dims) if schedule else [
        (14 if train_res is None else check_train_size(train_res, dims), 3 if epochs is None else epochs)]
    overrides = dict(model_overrides or {})
    # unknown model or field, a family that takes no such inputs: user errors before any work
    probe = create_model(model, **{"train_res": sched[-1][0], **overrides})
    if bandlimit is not None:
        setting = parse_bandlimit(bandlimit, names=("off", "none"))
        if not probe.has_bandlimit:
            raise ResbenchError(f"--bandlimit: model {model!r} has no bandlimit")
        overrides["bandlimit"] = None if setting in ("off", "none") else float(setting)
    if mask is not None:
        if not probe.has_bandlimit:
            raise ResbenchError(f"--mask: model {model!r} has no bandlimit mask")
        overrides["mask"] = mask
        create_model(model, **{"train_res": sched[-1][0], **overrides})  # a random mask with the bandlimit off
    if multiscale is not None:
        fields["multiscale"] = parse_multiscale(multiscale, sched, dims)
    if "device" in fields:  # "auto" becomes the device it picks, so the checkpoint records a real one
        fields["device"] = str(resolve_device(fields["device"]))
    return TrainConfig(model=model, schedule=sched, model_overrides=overrides, **fields)


def parse_multiscale(text: str, sched: list[tuple], dims: int) -> list:
    """'4,5,6,7' -> [4, 5, 6, 7]: the sizes of multi-scale training, for a one-phase schedule whose size is
    among them (the model's reference grid, its size in sweeps)."""
    sizes = []
    for item in str(text).split(","):
        size = check_train_size(item.strip(), dims, "--multiscale size")
        if size not in sizes:
            sizes.append(size)
    if len(sched) != 1:
        raise ResbenchError("--multiscale: expected --train-res/--epochs, not a --schedule of several sizes")
    if sched[0][0] not in sizes or len(sizes) < 2:
        raise ResbenchError(f"--multiscale {text}: expected two or more sizes, the training size "
                            f"{sched[0][0]} among them")
    return sizes
