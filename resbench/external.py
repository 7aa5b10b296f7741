"""Models from outside resbench (timm by name with a weights file, any nn.Module factory) as sweep sources.

A source looks like a resbench Checkpoint to the sweep (model, name, path, sha256, config, provenance,
data_stats, train_res, build_model()), so its rows, resume, merge and report work unchanged.

The protocol: optional attributes and methods of the module a factory returns (or an nn.Module given to
resbench.api.sweep). resbench reads what is declared and reports what is unknown; it never guesses.

  resbench_train_res          int or (h, w): the size it was trained at (else --train-res; neither: an error)
  resbench_in_chans           input channels (else --in-chans, else the dataset's; a probe forward checks)
  resbench_num_classes        logits it returns (else --num-classes, else what the probe forward returns)
  resbench_data_stats         {"mean": [...], "std": [...]} per channel, the normalisation it was trained with
                              (else --mean/--std, else the dataset's training split, with a warning in every row)
  resbench_set_test_size(hw)  called with the (h, w) it is about to receive whenever that changes (under
                              resize-input: the training size), before the first batch of that size
  resbench_set_bandlimit(a)   switches its bandlimit (an alpha, or None for off): the sweep runs on/off cells
  resbench_bandlimit          with it, the alpha it was trained with (None or absent: trained without one)

A value both declared by the model and given as an option must agree. Without hooks a model still gets
"native" (run as it is on the test-size image) and "resize-input".
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from resbench import data
from resbench.errors import ResbenchError
from resbench.external_protocol import (DATASET_STATS_WARNING, agreed, data_stats, declared, declared_size,
                                        first_line, load_weights, probe, trained_bandlimit)
from resbench.factories import resolve_factory
from resbench.models.base import RESIZE_INPUT, ModelConfig, check_positive_int, policies, resize_input
from resbench.resolution import format_size, parse_size
from resbench.runtime import TimeLimitExceeded, check_time_limit, time_limit

__all__ = ["TIMM", "DATASET_STATS_WARNING", "ModelOptions", "ExternalModel", "ExternalSource", "from_spec",
           "from_module", "load_models", "load_weights", "source_sha256"]

TIMM = "timm:"  # spec prefix of a model timm builds by name


@dataclass(frozen=True)
class ModelOptions:
    """What the user says about models from outside resbench; None: not given."""
    dataset: str | None = None               # the test set, whose training split gives default statistics
    data_dir: str | None = None
    seed: int = 0                            # the synthetic set's seed (its statistics)
    weights: str | None = None               # a state dict file; required for timm, optional for a factory
    train_res: int | tuple[int, int] | None = None  # the size it was trained at, int or (h, w)
    in_chans: int | None = None              # default: declared, else the dataset's
    num_classes: int | None = None           # default: declared, else the dataset's (timm) or the probe's
    mean: tuple[float, ...] | None = None    # normalisation per channel, with std
    std: tuple[float, ...] | None = None
    timeout: float | None = None             # --cell-timeout: seconds a factory (and its probe) may take

    def __post_init__(self):
        check_time_limit(self.timeout, "--cell-timeout")
        if (self.mean is None) != (self.std is None):
            raise ResbenchError("--mean and --std: give both (per channel) or neither")
        if self.train_res is not None:
            try:
                object.__setattr__(self, "train_res", parse_size(self.train_res))  # frozen: set once, here
            except ResbenchError as e:
                raise ResbenchError(f"--train-res: {e}") from None
        for what, value in (("--in-chans", self.in_chans), ("--num-classes", self.num_classes)):
            if value is not None:
                check_positive_int(what, value)

    def given(self) -> list[str]:
        """The options that only apply to a model spec, as the CLI names them."""
        named = {"--weights": self.weights, "--train-res": self.train_res, "--in-chans": self.in_chans,
                 "--num-classes": self.num_classes, "--mean": self.mean}
        return [name for name, value in named.items() if value is not None]


# ----------------------------------------------------------------------------------------------
# the model the sweep runs


def _foreign(fn: Callable, *args):
    """Call the model's own code. An exception other than those a sweep records per cell becomes a
    RuntimeError, so a failing cell is a row, not a crash (timm asserts on sizes it cannot take)."""
    try:
        return fn(*args)
    except (RuntimeError, ValueError, MemoryError, ResbenchError):
        raise
    except Exception as e:
        raise RuntimeError(f"{type(e).__name__}: {e}") from e


class ExternalModel(nn.Module):
    """A classifier from outside resbench behind the interface the sweep uses (config.in_chans,
    config.num_classes, POLICIES, has_bandlimit, train_size, forward_policy); its own hooks are called for it."""

    def __init__(self, net: nn.Module, name: str, train_size: tuple[int, int], in_chans: int, num_classes: int,
                 native: str, trained_bandlimit: float | None, largest_at_train: int):
        super().__init__()
        self.net = net.eval()
        self.name = name
        self.config = ModelConfig(in_chans=in_chans, num_classes=num_classes, train_res=list(train_size))
        self.train_size = tuple(train_size)
        self.POLICIES = policies(native)
        self.has_bandlimit = callable(getattr(net, "resbench_set_bandlimit", None))
        self.trained_bandlimit = trained_bandlimit
        self._told = None  # the (h, w) resbench_set_test_size was last given
        self.largest_at_train = largest_at_train  # elements of the largest module output at train_size (probe)

    def activation_elements(self, size) -> int:
        """Elements of the model's largest activation for one image at `size` (what batches are sized by): the
        probe's largest module output at the training size, scaled by the pixels. Maps that grow faster than
        the pixels (attention weights) are not seen by the probe."""
        return math.ceil(self.largest_at_train * math.prod(size) / math.prod(self.train_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, num_classes): the model as it is, told the input size first when it has the hook."""
        size = tuple(x.shape[-2:])
        hook = getattr(self.net, "resbench_set_test_size", None)
        if callable(hook) and size != self._told:
            _foreign(hook, size)
            self._told = size
        return _foreign(self.net, x)

    def forward_policy(self, x: torch.Tensor, policy: str) -> torch.Tensor:
        """Apply the named resolution-change policy to x, then the model."""
        if policy not in self.POLICIES:
            raise ResbenchError(f"policy {policy!r} for model {self.name}: expected one of {', '.join(self.POLICIES)}")
        if policy == RESIZE_INPUT:
            x = resize_input(x, self.train_size)
        return self(x)

    @contextlib.contextmanager
    def bandlimit_context(self, alpha: float | None):
        """Within the block the model's bandlimit is `alpha` (None: off); the trained value is set again after."""
        if not self.has_bandlimit:
            if alpha is None:
                yield self
                return
            raise ResbenchError(f"bandlimit={alpha}: model {self.name} has no resbench_set_bandlimit hook")
        _foreign(self.net.resbench_set_bandlimit, alpha)
        try:
            yield self
        finally:
            _foreign(self.net.resbench_set_bandlimit, self.trained_bandlimit)


@dataclass(eq=False)
class ExternalSource:
    """A model from outside resbench, shaped like a resbench Checkpoint for the sweep."""
    model: str                          # the spec: timm:NAME, package.module:factory or module:ClassName
    name: str                           # the rows' checkpoint name: the spec, @ the weights file's stem
    path: str                           # what messages name: the weights file, else the spec
    sha256: str                         # identity of spec, weights, train size and options (source_sha256)
    config: dict[str, Any]              # in_chans, num_classes, train_res; "bandlimit" only with a bandlimit hook
    provenance: dict[str, Any]          # dataset (of the statistics), train_res, weights, warnings for every row
    data_stats: dict[str, list[float]]  # {"mean": [...], "std": [...]} per input channel
    net: ExternalModel = field(repr=False)

    @property
    def train_res(self) -> tuple[int, int]:
        return self.net.train_size

    @property
    def dims(self) -> int:
        """Axes of the model's input: models from outside resbench take images (2)."""
        return len(self.train_res)

    def build_model(self) -> ExternalModel:
        """The model, weights loaded, in eval mode (built once, when the source was made)."""
        return self.net


def source_sha256(description: dict, state_dict: dict[str, torch.Tensor]) -> str:
    """A stable identity: the description (JSON, sorted keys) and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode())
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes of any dtype (numpy has no bfloat16)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# building sources


def _make_source(net: nn.Module, spec: str, name: str, opts: ModelOptions, dataset: str,
                 sizes: dict[str, Any], native: str, extra: dict | None = None,
                 model_stats: dict | None = None) -> ExternalSource:
    """The source of a module with its weights: sizes resolved (sizes: train_res, in_chans, num_classes as
    known so far, num_classes may be None), checked by a probe forward. `model_stats`: the normalisation the
    model's own configuration names (used when neither the module nor the options give one)."""
    train, in_chans, num_classes = sizes["train_res"], sizes["in_chans"], sizes["num_classes"]
    net.eval()
    returned, largest = probe(net, name, in_chans, train)
    if num_classes is not None and returned != num_classes:
        raise ResbenchError(f"{name}: returns {returned} logits, expected {num_classes} classes "
                            f"(--num-classes or resbench_num_classes)")
    bandlimit = trained_bandlimit(net, name)
    stats, notes = data_stats(net, name, opts, dataset, in_chans, model_stats)
    model = ExternalModel(net, spec, train, in_chans, returned, native, bandlimit, largest)
    config = {"in_chans": in_chans, "num_classes": returned, "train_res": list(train), **(extra or {})}
    if model.has_bandlimit:
        config["bandlimit"] = bandlimit
    sha256 = source_sha256({"spec": spec, "config": config, "data_stats": stats}, net.state_dict())
    provenance = {"dataset": dataset, "train_res": list(train), "weights": opts.weights, "native_accuracy": None,
                  "warnings": notes}
    return ExternalSource(model=spec, name=name, path=str(opts.weights) if opts.weights else spec, sha256=sha256,
                          config=config, provenance=provenance, data_stats=stats, net=model)


def _dataset(label: str, opts: ModelOptions) -> data.DatasetInfo:
    if opts.dataset is None:
        raise ResbenchError(f"{label}: give the dataset to test it on (--dataset); a model from outside "
                            f"resbench does not record one")
    return data.dataset_info(opts.dataset, opts.data_dir)


def _name(spec: str, opts: ModelOptions) -> str:
    return spec + (f"@{Path(opts.weights).stem}" if opts.weights else "")


def _check_timm_name(spec: str) -> str:
    """The architecture of timm:NAME, known to timm (hf-hub: and local-dir: names are refused: nothing is
    ever downloaded or read besides --weights)."""
    import timm

    arch = spec[len(TIMM):].strip()
    if not arch:
        raise ResbenchError(f"--model {spec!r}: expected timm:NAME, for example timm:resnet18")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (see timm.list_models())"
        raise ResbenchError(f"{spec}: unknown timm model {arch!r}{hint}")
    return arch


def _timm_net(arch: str, label: str, train: tuple[int, int], in_chans: int, num_classes: int) -> nn.Module:
    """timm.create_model without pretrained weights; ViT-family models take their training grid and resample
    their position embeddings to each input's (dynamic_img_size)."""
    import timm

    common = {"pretrained": False, "num_classes": num_classes, "in_chans": in_chans}
    try:
        try:
            return timm.create_model(arch, dynamic_img_size=True, img_size=train, **common)
        except TypeError as e:  # not a ViT-family model: built as it is
            if "img_size" not in str(e):
                raise
            return timm.create_model(arch, **common)
    except Exception as e:  # timm's own checks of the arguments
        raise ResbenchError(f"{label}: timm cannot build it ({type(e).__name__}: {first_line(e)})") from None


def _from_timm(spec: str, opts: ModelOptions) -> ExternalSource:
    arch, name = _check_timm_name(spec), _name(spec, opts)
    if opts.weights is None:
        raise ResbenchError(f"{spec}: give --weights FILE (a state dict; resbench never downloads pretrained weights)")
    if opts.train_res is None:
        raise ResbenchError(f"{spec}: training size unknown: give --train-res (the weights file does not record it)")
    info = _dataset(name, opts)
    in_chans, num_classes = opts.in_chans or info.in_chans, opts.num_classes or info.num_classes
    net = _timm_net(arch, name, opts.train_res, in_chans, num_classes)
    load_weights(net, opts.weights, f"{name} built with in_chans={in_chans}, num_classes={num_classes}")
    dynamic = bool(getattr(net, "dynamic_img_size", False))
    evals, stats = _pretrained_eval(net, arch, in_chans)
    native = ("resample the learned position embeddings to the test patch grid (timm dynamic_img_size)" if dynamic
              else "the timm model run as it is on the test-size image")
    sizes = {"train_res": opts.train_res, "in_chans": in_chans, "num_classes": num_classes}
    return _make_source(net, spec, name, opts, info.name, sizes, native, {"timm_dynamic_img_size": dynamic, **evals},
                        stats)


def _pretrained_eval(net: nn.Module, arch: str, in_chans: int) -> tuple[dict, dict | None]:
    """A tagged timm name's (resnet50.a1_in1k) evaluation settings from its pretrained config, read without a
    download: ({eval_crop_pct, eval_interpolation}, its mean/std when they fit in_chans, else None). An untagged
    name's weights are the user's own: nothing is assumed."""
    cfg = getattr(net, "pretrained_cfg", None) or {}
    if "." not in arch or not cfg:
        return {}, None
    evals = {f"eval_{k}": cfg[k] for k in ("crop_pct", "interpolation") if cfg.get(k) is not None}
    mean, std = cfg.get("mean"), cfg.get("std")
    fits = mean is not None and std is not None and len(mean) == len(std) == in_chans
    return evals, ({"mean": [float(v) for v in mean], "std": [float(v) for v in std]} if fits else None)


def _from_factory(spec: str, opts: ModelOptions) -> ExternalSource:
    factory = resolve_factory(spec)
    try:
        with time_limit(opts.timeout, "the factory (--cell-timeout)"):
            net = _call_factory(factory, spec)
            return from_module(net, opts, spec=spec)  # its probe runs the model once: within the limit too
    except TimeLimitExceeded as e:
        raise ResbenchError(f"{spec}: {e}") from None


def _call_factory(factory: Callable, spec: str) -> nn.Module:
    try:
        net = factory()
    except TimeLimitExceeded:
        raise
    except (Exception, SystemExit) as e:  # the user's code: whatever it raises is reported, not a resbench crash
        raise ResbenchError(f"{spec}: the factory raised {type(e).__name__}: {first_line(e)}") from None
    if not isinstance(net, nn.Module):
        raise ResbenchError(f"{spec}: the factory returned a {type(net).__name__}, expected a torch.nn.Module")
    return net


def from_module(net: nn.Module, opts: ModelOptions, spec: str | None = None, name: str | None = None) -> ExternalSource:
    """A source of any nn.Module (the protocol above says what it may declare); `spec` defaults to
    module:ClassName, `name` (the rows' checkpoint name) to the spec @ the weights file's stem."""
    if not isinstance(net, nn.Module):
        raise ResbenchError(f"model {type(net).__name__}: expected a torch.nn.Module")
    spec = spec or f"module:{type(net).__qualname__}"
    name = name or _name(spec, opts)
    info = _dataset(name, opts)
    train = agreed(name, "resbench_train_res", declared(net, name, "resbench_train_res", declared_size),
                    "--train-res", opts.train_res, format_size)
    if train is None:
        raise ResbenchError(f"{name}: training size unknown: give --train-res or declare resbench_train_res "
                            f"on the model")
    in_chans = agreed(name, "resbench_in_chans", declared(net, name, "resbench_in_chans", check_positive_int),
                       "--in-chans", opts.in_chans)
    num_classes = agreed(name, "resbench_num_classes",
                         declared(net, name, "resbench_num_classes", check_positive_int),
                         "--num-classes", opts.num_classes)
    if opts.weights is not None:
        load_weights(net, opts.weights, name)
    sizes = {"train_res": train, "in_chans": in_chans or info.in_chans, "num_classes": num_classes}
    hook = callable(getattr(net, "resbench_set_test_size", None))
    native = "the model as it is on the test-size image" + (", told the size (resbench_set_test_size)" if hook else "")
    return _make_source(net, spec, name, opts, info.name, sizes, native)


def from_spec(spec: str, opts: ModelOptions) -> ExternalSource:
    """timm:NAME (with opts.weights) or package.module:factory -> a source for the sweep."""
    spec = str(spec).strip()
    return _from_timm(spec, opts) if spec.startswith(TIMM) else _from_factory(spec, opts)


def load_models(specs: Iterable[str], opts: ModelOptions) -> list[ExternalSource]:
    """The sources of the `--model` options; their options without any --model are an error."""
    specs = list(specs)
    if not specs and opts.given():
        raise ResbenchError(f"{opts.given()[0]}: applies to --model options; give --model SPEC "
                            f"(timm:NAME or package.module:factory)")
    return [from_spec(spec, opts) for spec in specs]
