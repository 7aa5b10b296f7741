"""Whole official S4ND classifiers built with the official code, imported through resbench: logits within 1e-4.

Local only: needs a checkout of state-spaces/s4 at $RESBENCH_OFFICIAL_S4 (default /tmp/s4off) and its
packages (einops, hydra-core, pytorch-lightning); skipped otherwise. The models are assembled from the
official pieces exactly as its training module does (linear encoder, SequenceModel of S4ND blocks, `nd`
pooling decoder), their weights moved off initialisation, and written as an official checkpoint dict.
"""

import copy
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from resbench.checkpoints import load_checkpoint

OFFICIAL = Path(os.environ.get("RESBENCH_OFFICIAL_S4", "/tmp/s4off"))


def _official():
    if not (OFFICIAL / "src/models/sequence/modules/s4nd.py").exists():
        pytest.skip(f"no state-spaces/s4 checkout at {OFFICIAL} (set RESBENCH_OFFICIAL_S4)")
    sys.path.insert(0, str(OFFICIAL))
    try:
        from src.models.sequence.backbones.model import SequenceModel
        from src.tasks.decoders import NDDecoder
    except Exception as e:  # noqa: BLE001 (missing einops, hydra, lightning, ...)
        pytest.skip(f"the official code does not import here: {type(e).__name__}: {e}")
    return SequenceModel, NDDecoder


def build_official(dim, in_chans, layer, d_model=8, n_layers=2, prenorm=True, norm="layer", transposed=False,
                   seed=0):
    """(modules dict, hyper_parameters) of an official classifier with perturbed weights."""
    SequenceModel, NDDecoder = _official()
    torch.manual_seed(seed)
    layer = {"_name_": "s4nd", "d_state": 8, "dim": dim, "bidirectional": True, "final_act": "glu",
             "activation": "gelu", "n_ssm": 1, "dt_min": 0.1, "dt_max": 1.0, "init": "diag-lin", "verbose": False,
             "linear": False, "contract_version": 0 if dim == 2 else 1, **layer}  # version 0 is 2-d only
    model_hp = {"_name_": "model", "d_model": d_model, "n_layers": n_layers, "prenorm": prenorm, "norm": norm,
                "transposed": transposed, "residual": "R", "dropout": 0.0,
                "pool": {"_name_": "pool", "stride": 1, "expand": None}, "layer": copy.deepcopy(layer)}
    encoder = nn.Sequential(nn.Linear(in_chans, d_model))
    kwargs = {k: v for k, v in model_hp.items() if k != "_name_"}
    backbone = SequenceModel(**copy.deepcopy(kwargs))
    decoder = nn.Sequential(NDDecoder(d_model, 10, mode="pool"))
    modules = nn.ModuleDict({"encoder": encoder, "model": backbone, "decoder": decoder}).eval()
    with torch.no_grad():  # a first forward: the DPLR kernels turn C into C~ (what a trained checkpoint holds)
        x = torch.randn(1, *layer["l_max"], in_chans)
        modules["model"](modules["encoder"](x), rate=1.0)
        for name, p in modules.named_parameters():  # move every weight off its initial value
            if "A_real" in name or "inv_dt" in name:
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.add_(0.3 * torch.randn_like(p) * (p.abs().mean() + 0.1))
        for m in modules.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    hp = {"model": model_hp, "encoder": "linear", "decoder": {"_name_": "nd", "mode": "pool"},
          "loader": {"img_size": None, "train_resolution": 1},
          "dataset": {"_name_": "synthetic-test", "grayscale": in_chans == 1}}
    return modules, hp


def official_logits(modules, x, rate):
    """x (B, C, *L) -> logits, the official way: channels last through encoder, backbone, decoder."""
    h = modules["encoder"](x.movedim(1, -1))
    h, _ = modules["model"](h, rate=rate)
    return modules["decoder"](h)


CASES = [
    # (id, dim, in_chans, layer options, model options, train size)
    ("2d-diag-rect-3ch", 2, 3, {"kernel": "diag", "l_max": [12, 20], "bandlimit": 0.5}, {}, [12, 20]),
    ("2d-dplr-default", 2, 1, {"l_max": [16, 16], "bandlimit": 0.5}, {}, [16, 16]),
    ("2d-dplr-unidirectional", 2, 1, {"l_max": [12, 12], "bidirectional": False, "init": "legs"}, {}, [12, 12]),
    ("2d-diag-postnorm-batch", 2, 1, {"kernel": "diag", "l_max": [12, 12]}, {"prenorm": False, "norm": "batch"},
     [12, 12]),
    ("2d-diag-transposed-ln", 2, 3, {"kernel": "diag", "l_max": [10, 14], "bandlimit": 0.3},
     {"transposed": True}, [10, 14]),
    ("2d-dplr-rank2-nssm8-id", 2, 3, {"l_max": [8, 12], "rank": 2, "n_ssm": 8, "final_act": "id",
                                      "activation": "silu", "bandlimit": 0.7}, {}, [8, 12]),
    ("1d-dplr", 1, 2, {"l_max": [32], "bandlimit": 0.5}, {}, [32]),
    ("3d-diag", 3, 1, {"kernel": "diag", "l_max": [4, 8, 8]}, {}, [4, 8, 8]),
    ("3d-dplr", 3, 3, {"mode": "nplr", "l_max": [4, 8, 6]}, {}, [4, 8, 6]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_official_classifier_logits_match(case, tmp_path):
    _, dim, in_chans, layer, model_options, train = case
    modules, hp = build_official(dim, in_chans, layer, **model_options)
    path = tmp_path / "official.pt"
    torch.save({"state_dict": modules.state_dict(), "hyper_parameters": hp}, path)
    # the test set's statistics are unknown to resbench for this made-up dataset: given, as import-official --mean
    from resbench.checkpoints import official_checkpoint, read_official
    from resbench.checkpoints import file_sha256

    ckpt = official_checkpoint(read_official(path), path, file_sha256(path), train_res=train,
                               mean=[0.0] * in_chans, std=[1.0] * in_chans)
    ours = ckpt.build_model()
    worst, rates = 0.0, []
    for rate in (1.0, 0.5, 2.0, 0.75):
        if any((t / rate) % 1 for t in train):
            continue  # the official code takes one rate; sizes where train / rate is exact compare like for like
        size = [int(t / rate) for t in train]
        x = torch.randn(3, in_chans, *size)
        assert ours.rates(size) == pytest.approx((rate,) * dim)
        with torch.no_grad():
            worst = max(worst, (ours(x) - official_logits(modules, x, rate)).abs().max().item())
        rates.append(rate)
    assert len(rates) >= 2
    assert worst < 1e-4, worst
    print(f"{case[0]}: max |logit diff| {worst:.2e}")


def test_a_loaded_imported_file_keeps_its_logits(tmp_path, cli):
    modules, hp = build_official(2, 1, {"l_max": [16, 16], "bandlimit": 0.5})
    path = tmp_path / "official.pt"
    torch.save({"state_dict": modules.state_dict(), "hyper_parameters": hp}, path)
    code, _, err = cli("import-official", path, "-o", tmp_path / "imp.pt", "--train-res", "16", "--mean", "0",
                       "--std", "1")
    assert code == 0, err
    ours = load_checkpoint(tmp_path / "imp.pt").build_model()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert (ours(x) - official_logits(modules, x, 0.5)).abs().max().item() < 1e-4
