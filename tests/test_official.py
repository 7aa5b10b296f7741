"""Checkpoints of the official S4ND code: read without running code, converted exactly, refused in one line."""

import copy
import io
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import assert_user_error
from resbench.checkpoints import load_checkpoint
from resbench.errors import ResbenchError
from resbench.checkpoints import read_official

FIXTURES = Path(__file__).parent / "fixtures/official_s4"
PLAIN = ["iso2d_diag.pt", "iso2d_dplr.pt"]
# The trainer-written file does not hold iso2d_dplr.pt's weights (its README says so, but it holds the
# weights at initialisation): its expected outputs are trainer_cases.pt, made with the official code by
# make_trainer_cases.py from the same inputs.
CASES = {"iso2d_diag.pt": "iso2d_diag.pt", "iso2d_dplr.pt": "iso2d_dplr.pt",
         "iso2d_dplr_trainer.ckpt": "trainer_cases.pt"}


def cases(name):
    return torch.load(FIXTURES / CASES[name], weights_only=True)["cases"]


def max_logit_diff(model, name):
    """Largest |logits - official logits| over every case of a fixture, and the same for the features."""
    worst = worst_features = 0.0
    with torch.inference_mode():
        for case in cases(name):
            x = case["input"].movedim(-1, 1)  # (B, H, W, C) channels last -> (B, C, H, W)
            assert model.rates(x.shape[2:]) == pytest.approx((case["rate"],) * 2)
            worst = max(worst, (model(x) - case["logits"]).abs().max().item())
            worst_features = max(worst_features, (model.features(x) - case["features"]).abs().max().item())
    return worst, worst_features


@pytest.mark.parametrize("name", list(CASES))
def test_fixture_logits_match_through_a_direct_load(name):
    ckpt = load_checkpoint(FIXTURES / name)  # what `resbench sweep FILE` reads
    assert ckpt.model == "s4nd_official"
    assert ckpt.provenance["official"]["sha256"] == ckpt.sha256
    logits, features = max_logit_diff(ckpt.build_model(), name)
    assert logits < 1e-4 and features < 1e-4, (logits, features)


@pytest.mark.parametrize("name", list(CASES))
def test_fixture_logits_match_through_import_official(name, cli, tmp_path):
    out = tmp_path / "imported.pt"
    code, stdout, err = cli("import-official", FIXTURES / name, "-o", out)
    assert code == 0, err
    assert "s4nd_official" in stdout and "trained at 16" in stdout
    ckpt = load_checkpoint(out)
    assert ckpt.provenance["official"]["file"] == str(FIXTURES / name)
    assert ckpt.train_res == (16, 16) and ckpt.provenance["official"]["train_rate"] == 1.0
    logits, features = max_logit_diff(ckpt.build_model(), name)
    assert logits < 1e-4 and features < 1e-4, (logits, features)


def test_trainer_file_needs_more_than_the_weights_only_reader():
    with pytest.raises(Exception):
        torch.load(FIXTURES / "iso2d_dplr_trainer.ckpt", weights_only=True)
    raw = read_official(FIXTURES / "iso2d_dplr_trainer.ckpt")
    assert raw["hyper_parameters"]["model"]["layer"]["l_max"] == [16, 16]  # omegaconf read into plain values
    assert isinstance(raw["hyper_parameters"]["model"]["layer"], dict)


def _rewrite(tmp_path, name, edit) -> Path:
    """A copy of a plain fixture with `edit(raw)` applied."""
    raw = torch.load(FIXTURES / name, weights_only=True)
    raw = copy.deepcopy({k: v for k, v in raw.items() if k != "cases"})
    edit(raw)
    path = tmp_path / f"edited_{name}"
    torch.save(raw, path)
    return path


@pytest.mark.parametrize("name", PLAIN)
def test_keys_that_do_not_change_the_math_are_accepted(name, tmp_path):
    def edit(raw):
        layer = raw["hyper_parameters"]["model"]["layer"]
        layer.update(contract_version=1, verbose=False, deterministic=True, initializer=None,
                     lr={"dt": 0.0, "A": 0.0, "B": 0.0}, wd=0.1, tie_dropout=False, dropout=0.3)
        raw["hyper_parameters"]["model"]["track_norms"] = False

    ckpt = load_checkpoint(_rewrite(tmp_path, name, edit))
    logits, _ = max_logit_diff(ckpt.build_model(), name)
    assert logits < 1e-4


def _set(path, value):
    def edit(raw):
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


@pytest.mark.parametrize("edit, names", [
    (_set(("hyper_parameters", "model", "layer", "kernel"), "fancy"), ["kernel", "fancy"]),
    (lambda raw: raw["hyper_parameters"]["model"]["layer"].update(kernel="diag", disc="bilinear"), ["disc"]),
    (_set(("hyper_parameters", "model", "layer", "l_max"), None), ["l_max"]),
    (_set(("hyper_parameters", "model", "layer", "_name_"), "s4"), ["model.layer", "s4"]),
    (_set(("hyper_parameters", "encoder"), "position"), ["encoder", "position"]),
    (_set(("hyper_parameters", "model", "norm"), "group"), ["model.norm", "group"]),
    (_set(("hyper_parameters", "model", "pool"), {"_name_": "pool", "stride": 2, "expand": None}), ["model.pool"]),
    (_set(("hyper_parameters", "dataset", "_name_"), "imagenet"), ["imagenet", "--mean"]),
    (lambda raw: raw["state_dict"].pop("decoder.0.output_transform.bias"), ["decoder.0.output_transform.bias"]),
    (lambda raw: raw["state_dict"].update({"model.layers.0.layer.D": torch.zeros(1, 5)}),
     ["model.layers.0.layer.D", "shape"]),
    (lambda raw: raw["state_dict"].update({"model.layers.9.norm.norm.weight": torch.zeros(8)}),
     ["unexpected", "model.layers.9"]),
])
def test_broken_official_checkpoints_are_one_line_errors(edit, names, tmp_path, cli):
    path = _rewrite(tmp_path, "iso2d_dplr.pt", edit)
    with pytest.raises(ResbenchError):
        load_checkpoint(path)
    code, _, err = cli("import-official", path, "-o", tmp_path / "out.pt")
    assert_user_error(code, err, *names)
    assert not (tmp_path / "out.pt").exists()


def _malicious_zip(path: Path, marker: Path, mention_omegaconf: bool):
    """A torch-style zip whose pickle would create `marker` through os.system if it were run."""

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    obj = {"state_dict": {}, "hyper_parameters": {"model": {}, "note": "omegaconf" if mention_omegaconf else ""},
           "evil": Payload()}
    buf = io.BytesIO()
    torch.save(obj, buf)  # torch pickles the payload object (it does not run it)
    path.write_bytes(buf.getvalue())
    with zipfile.ZipFile(path) as z:
        assert any(b"system" in z.read(n) for n in z.namelist() if n.endswith("data.pkl"))


@pytest.mark.parametrize("mention_omegaconf", [True, False])
def test_a_pickle_that_runs_code_is_refused_without_running_it(mention_omegaconf, tmp_path, cli):
    path, marker = tmp_path / "evil.ckpt", tmp_path / "ran"
    _malicious_zip(path, marker, mention_omegaconf)
    with pytest.raises(ResbenchError, match="system"):
        read_official(path)
    code, _, err = cli("import-official", path, "-o", tmp_path / "out.pt")
    assert_user_error(code, err, str(path))
    code, _, err = cli("info", path)
    assert_user_error(code, err, str(path))
    assert not marker.exists()


def test_plain_pickle_payload_is_refused_without_running_it(tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "ran"
    path.write_bytes(pickle.dumps({"x": _Runner(marker)}, protocol=2))
    with pytest.raises(ResbenchError):
        read_official(path)
    assert not marker.exists()


class _Runner:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("args, names", [
    (["--mean", "0.5"], ["--std"]),
    (["--mean", "0.5,0.4", "--std", "0.2,0.2"], ["2 means", "1 input channels"]),
    (["--mean", "a", "--std", "0.2"], ["--mean"]),
    (["--train-res", "0"], ["size"]),
])
def test_import_options_are_checked(args, names, tmp_path, cli):
    code, _, err = cli("import-official", FIXTURES / "iso2d_diag.pt", "-o", tmp_path / "o.pt", *args)
    assert_user_error(code, err, *names)


def test_import_options_are_recorded(tmp_path, cli):
    out = tmp_path / "o.pt"
    code, _, err = cli("import-official", FIXTURES / "iso2d_diag.pt", "-o", out, "--train-res", "8",
                       "--dataset", "fashion-mnist", "--mean", "0.3", "--std", "0.35")
    assert code == 0, err
    ckpt = load_checkpoint(out)
    assert ckpt.train_res == (8, 8) and ckpt.provenance["dataset"] == "fashion-mnist"
    assert ckpt.data_stats == {"mean": [0.3], "std": [0.35]}
    model = ckpt.build_model()
    assert model.rates((16, 16)) == (0.5, 0.5)  # official rate 1 was at 8 px: 16 px is rate 0.5


def test_missing_source_is_a_one_line_error(tmp_path, cli):
    code, _, err = cli("import-official", tmp_path / "nope.ckpt", "-o", tmp_path / "o.pt")
    assert_user_error(code, err, "nope.ckpt")


def test_a_sweep_takes_an_official_file_directly(tmp_path, cli):
    out = tmp_path / "sweep"
    code, _, err = cli("sweep", FIXTURES / "iso2d_dplr_trainer.ckpt", "--dataset", "fashion-mnist", "--test-res",
                       "16,32", "--limit", "20", "--bandlimit", "on,off", "--quiet", "-o", out)
    assert code == 0, err
    import pandas as pd

    df = pd.read_csv(out / "results.csv")
    assert set(df["model"]) == {"s4nd_official"}
    # 2 sizes x 2 policies x bandlimit on/off, less resize-input at 32 (the training size: the native cell)
    assert len(df) == 2 * 2 * 2 - 2 and (df["n"] == 20).all()


def _numpy_metrics(raw):
    """What a Lightning checkpoint's callbacks hold after logging numpy values: scalars and a dtype."""
    import numpy as np

    raw["callbacks"] = {"ModelCheckpoint{'monitor': 'val/accuracy'}": {
        "best_model_score": np.float64(0.8125), "current_score": np.float32(0.5), "patience": np.int64(3),
        "dtype": np.dtype("float32"), "flag": np.bool_(True)}}


def _trainer_with(tmp_path, edit) -> Path:
    """The trainer-written fixture (its config an omegaconf DictConfig) with `edit(raw)` applied."""
    pytest.importorskip("omegaconf")
    raw = torch.load(FIXTURES / "iso2d_dplr_trainer.ckpt", weights_only=False)  # trusted: a committed fixture
    edit(raw)
    path = tmp_path / "edited_trainer.ckpt"
    torch.save(raw, path)
    return path


@pytest.mark.parametrize("source", ["iso2d_dplr.pt", "iso2d_diag.pt", "trainer"])
def test_numpy_scalars_and_dtypes_in_an_official_checkpoint_are_read(source, tmp_path, cli):
    import numpy as np

    path = (_trainer_with(tmp_path, _numpy_metrics) if source == "trainer"
            else _rewrite(tmp_path, source, _numpy_metrics))
    metrics = next(iter(read_official(path)["callbacks"].values()))
    assert metrics["best_model_score"] == 0.8125 and isinstance(metrics["best_model_score"], np.float64)
    assert metrics["patience"] == 3 and metrics["dtype"] == np.dtype("float32") and metrics["flag"]
    code, _, err = cli("import-official", path, "-o", tmp_path / "imported.pt")
    assert code == 0, err
    name = "iso2d_dplr_trainer.ckpt" if source == "trainer" else source
    logits, features = max_logit_diff(load_checkpoint(path).build_model(), name)  # a direct load too
    assert logits < 1e-4 and features < 1e-4, (logits, features)


@pytest.mark.parametrize("source", ["iso2d_dplr.pt", "trainer"])
def test_numpy_arrays_in_an_official_checkpoint_are_still_refused(source, tmp_path, cli):
    import numpy as np

    def edit(raw):
        raw["callbacks"] = {"x": np.arange(3)}  # an array's reconstructor is not on the list

    path = _trainer_with(tmp_path, edit) if source == "trainer" else _rewrite(tmp_path, source, edit)
    with pytest.raises(ResbenchError, match="refused without running it|not a loadable"):
        read_official(path)
    code, _, err = cli("import-official", path, "-o", tmp_path / "imported.pt")
    assert_user_error(code, err, str(path))


@pytest.mark.parametrize("rate, rescale, train", [(1, None, 32), (2, None, 16), (4, None, 8), (2, 2, 8), (1, 2, 16)])
def test_without_img_size_cifar_trains_on_its_own_grid_subsampled(rate, rescale, train, tmp_path, cli):
    """loader.img_size null: the official collate subsamples the dataset's images (32 / rescale) by the rate."""
    def edit(raw):
        raw["hyper_parameters"]["loader"].update(img_size=None, train_resolution=rate)
        raw["hyper_parameters"]["dataset"]["rescale"] = rescale

    out = tmp_path / "imported.pt"
    code, stdout, err = cli("import-official", _rewrite(tmp_path, "iso2d_dplr.pt", edit), "-o", out)
    assert code == 0, err
    ckpt = load_checkpoint(out)
    assert ckpt.train_res == (train, train) and f"trained at {train}" in stdout
    assert ckpt.build_model().rates((train, train)) == pytest.approx((rate, rate))  # the rate it trained with


@pytest.mark.parametrize("edit, names", [
    (lambda hp: hp["loader"].update(img_size=None, train_resolution=3), ["train_resolution 3", "--train-res"]),
    (lambda hp: hp["loader"].update(img_size=None, train_resolution=1.5), ["train_resolution 1.5"]),
    (lambda hp: (hp["loader"].update(img_size=None), hp["dataset"].update(rescale=3)), ["dataset.rescale=3"]),
    (lambda hp: (hp["loader"].update(img_size=None), hp["dataset"].update(_name_="imagenet")),
     ["img_size is not set", "--train-res"]),
])
def test_without_img_size_an_unknown_grid_is_a_one_line_error(edit, names, tmp_path, cli):
    path = _rewrite(tmp_path, "iso2d_dplr.pt", lambda raw: edit(raw["hyper_parameters"]))
    code, _, err = cli("import-official", path, "-o", tmp_path / "imported.pt")
    assert_user_error(code, err, *names)
