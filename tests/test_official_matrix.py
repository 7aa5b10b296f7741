"""resbench against outputs of the official state-spaces/s4 code, committed as fixtures (official_matrix/).

S4ND layers over dims 1-3, ranks 1-2, n_ssm 1 or H, both directions, bandlimit on and off, rates 0.5 to 3.5
(3.5 makes the official DPLR kernel double its length) and files saved before the first call; whole
isotropic classifiers (diag and DPLR kernels, norms, transposed, the `channels` option), imported from an
official checkpoint dict. `make_fixtures.py` beside the files made them from the official code.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

from resbench.checkpoints import file_sha256, load_checkpoint
from resbench.layers.s4nd import S4ND
from resbench.checkpoints import official_checkpoint, read_official

HERE = Path(__file__).parent / "fixtures" / "official_matrix"
TOL = 1e-4
_spec = importlib.util.spec_from_file_location("official_matrix_fixtures", HERE / "make_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)  # for `inputs` only: the script imports the official code in main()
LAYERS = torch.load(HERE / "s4nd_layers.pt", weights_only=True)["cases"]
CLASSIFIERS = torch.load(HERE / "classifiers.pt", weights_only=True)["cases"]


def layer_id(case):
    c = case["config"]
    return (f"{c['dim']}d-r{c['rank']}-ssm{c['n_ssm'] or 'H'}-{'bi' if c['bidirectional'] else 'uni'}-"
            f"bl{c['bandlimit']}{'' if case['first_forward'] else '-before-first-call'}")


def test_the_matrix_covers_what_it_claims():
    assert len(LAYERS) == 51 and len(CLASSIFIERS) == 12
    rates = {r["rate"] for case in LAYERS for r in case["records"]}
    assert rates == {1.0, 0.5, 2.0, 0.75, 3.5}
    assert {case["config"]["dim"] for case in LAYERS} == {1, 2, 3}
    assert sum(not case["first_forward"] for case in LAYERS) == 3
    assert all(int(v) == 0 for case in LAYERS if not case["first_forward"]
               for k, v in case["state_dict"].items() if k.endswith("l_kernel"))
    assert sum(case["hyper_parameters"]["model"]["layer"].get("channels", 1) > 1 for case in CLASSIFIERS) == 3


@pytest.mark.parametrize("case", LAYERS, ids=layer_id)
def test_layer_matches_the_official_outputs(case):
    ours = S4ND.from_state_spaces(case["config"], case["state_dict"]).eval()  # no kernel key: the official DPLR
    assert ours.kernel_type == "dplr"
    named = S4ND.from_state_spaces({**case["config"], "kernel": "dplr"}, case["state_dict"])
    assert named.kernel_type == "dplr" and all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(),
                                                                                  named.state_dict().values()))
    for i, rec in enumerate(case["records"]):
        method = ("toeplitz", "fft")[i % 2]  # both paths over each case's rates and sizes, each record once
        x = fixtures.inputs(rec["seed"], (2, 4, *rec["size"]))
        with torch.no_grad():
            got = ours(x, rate=rec["rate"], method=method).reshape(-1)[::rec["step"]]
        assert got.shape == rec["values"].shape
        diff = (got - rec["values"]).abs().max().item()
        assert diff < TOL, (rec["rate"], rec["size"], method, diff)


def _import(case, tmp_path):
    path = tmp_path / "official.pt"
    torch.save({"state_dict": case["state_dict"], "hyper_parameters": case["hyper_parameters"]}, path)
    in_chans = case["state_dict"]["encoder.0.weight"].shape[1]
    # the made-up dataset's statistics are unknown to resbench: given, as import-official --mean/--std
    return official_checkpoint(read_official(path), path, file_sha256(path), train_res=case["train_res"],
                               mean=[0.0] * in_chans, std=[1.0] * in_chans)


@pytest.mark.parametrize("case", CLASSIFIERS, ids=lambda c: c["name"])
def test_classifier_logits_match_the_official_model(case, tmp_path):
    ours = _import(case, tmp_path).build_model()
    assert len(case["records"]) >= 2
    for rec in case["records"]:
        dim = len(rec["size"])
        assert ours.rates(rec["size"]) == pytest.approx((rec["rate"],) * dim)
        x = fixtures.inputs(rec["seed"], (3, case["state_dict"]["encoder.0.weight"].shape[1], *rec["size"]))
        with torch.no_grad():
            diff = (ours(x) - rec["logits"]).abs().max().item()
        assert diff < TOL, (rec["rate"], diff)


def test_an_imported_file_keeps_its_logits_through_the_cli(tmp_path, cli):
    case = next(c for c in CLASSIFIERS if c["name"] == "2d-dplr-channels3")
    path = tmp_path / "official.pt"
    torch.save({"state_dict": case["state_dict"], "hyper_parameters": case["hyper_parameters"]}, path)
    code, _, err = cli("import-official", path, "-o", tmp_path / "imp.pt", "--train-res", "12", "--mean", "0,0,0",
                       "--std", "1,1,1")
    assert code == 0, err
    ours = load_checkpoint(tmp_path / "imp.pt").build_model()
    rec = next(r for r in case["records"] if r["rate"] == 0.5)
    with torch.no_grad():
        assert (ours(fixtures.inputs(rec["seed"], (3, 3, *rec["size"]))) - rec["logits"]).abs().max().item() < TOL
