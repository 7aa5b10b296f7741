"""Whole official S4ND classifiers built with the official code, imported through resbench: logits within 1e-4.

Local only: needs a checkout of state-spaces/s4 at $RESBENCH_OFFICIAL_S4 (default /tmp/s4off) and its
packages (einops, hydra-core, pytorch-lightning); skipped otherwise. The models are assembled from the
official pieces exactly as its training module does (linear encoder, SequenceModel of S4ND blocks, `nd`
pooling decoder), their weights moved off initialisation, and written as an official checkpoint dict.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from resbench.checkpoints import load_checkpoint

OFFICIAL = Path(os.environ.get("RESBENCH_OFFICIAL_S4", "/tmp/s4off"))
_spec = importlib.util.spec_from_file_location(
    "official_matrix_fixtures", Path(__file__).parent / "fixtures" / "official_matrix" / "make_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)  # the builders; the script imports the official code only in main()


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


def build_official(dim, in_chans, layer, **options):
    """(modules dict, hyper_parameters) of an official classifier with perturbed weights (the fixture script's)."""
    return fixtures.build_classifier(_official(), dim, in_chans, layer, **options)


official_logits = fixtures.official_logits  # x (B, C, *L) -> logits, the official way


CASES = fixtures.CLASSIFIERS  # (id, dim, in_chans, layer options, model options, train size)


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
