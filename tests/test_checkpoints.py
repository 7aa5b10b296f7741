"""Tests for resbench.checkpoints: exact round trips, atomic writes, and a clear refusal of every bad file."""

import hashlib
import io
import pickle
import random

import pytest
import torch

from conftest import RunsCode, make_checkpoint
from resbench.checkpoints import FORMAT, VERSION, file_sha256, load_checkpoint, save_checkpoint
from resbench.errors import ResbenchError
from resbench.models import create_model


def raw_dict(**changes):
    """The dict a resbench checkpoint file holds, with some fields replaced."""
    return {**make_checkpoint().to_dict(), **changes}


def refusal(path) -> str:
    """The message load_checkpoint refuses `path` with; it must name the file and fit on one line."""
    with pytest.raises(ResbenchError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    assert len(message) < 200 + len(str(path))  # a reason, not torch's page of advice
    assert "weights_only" not in message and "PyTorch" not in message
    return message


# ---------------------------------------------------------------------------------------------
# round trip and writing


def test_round_trip_is_exact(tmp_path):
    ckpt = make_checkpoint("s4nd_iso", d_state=4, bandlimit=0.5)
    path = save_checkpoint(ckpt, tmp_path / "a.pt")
    back = load_checkpoint(path)
    assert (back.model, back.config, back.provenance, back.data_stats) == \
           (ckpt.model, ckpt.config, ckpt.provenance, ckpt.data_stats)
    assert back.state_dict.keys() == ckpt.state_dict.keys()
    for key, value in ckpt.state_dict.items():
        assert back.state_dict[key].dtype == value.dtype
        assert torch.equal(back.state_dict[key], value), key
    assert back.path == path and back.name == "a"
    assert back.train_res == (14, 14)


def test_loaded_checkpoint_builds_the_same_model(tmp_path):
    ckpt = make_checkpoint()
    model = load_checkpoint(save_checkpoint(ckpt, tmp_path / "a.pt")).build_model()
    assert not model.training
    x = torch.randn(2, 1, 14, 14)
    reference = create_model(ckpt.model, **ckpt.config).eval()
    reference.load_state_dict(ckpt.state_dict)
    with torch.inference_mode():
        assert torch.equal(model(x), reference(x))


def test_sha256_is_the_file_hash(tmp_path):
    path = save_checkpoint(make_checkpoint(), tmp_path / "a.pt")
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == expected
    assert load_checkpoint(path).sha256 == expected
    other = save_checkpoint(make_checkpoint(seed=1), tmp_path / "b.pt")
    assert load_checkpoint(other).sha256 != expected


def test_atomic_save_leaves_only_the_checkpoint(tmp_path):
    path = tmp_path / "sub" / "a.pt"
    save_checkpoint(make_checkpoint(), path)
    save_checkpoint(make_checkpoint(seed=1), path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.pt", "sub"]
    assert load_checkpoint(path).provenance["seed"] == 1


def test_save_into_a_directory_path_is_refused(tmp_path):
    with pytest.raises(ResbenchError, match="directory"):
        save_checkpoint(make_checkpoint(), tmp_path)


# ---------------------------------------------------------------------------------------------
# files that are not checkpoints


def test_missing_file(tmp_path):
    assert "not found" in refusal(tmp_path / "nope.pt")


def test_directory(tmp_path):
    assert "not a file" in refusal(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert "empty" in refusal(path)


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes(tmp_path, seed):
    path = tmp_path / "junk.pt"
    path.write_bytes(random.Random(seed).randbytes(4096))
    assert "not a loadable resbench checkpoint" in refusal(path)


def test_truncated_checkpoint(tmp_path):
    full = save_checkpoint(make_checkpoint(), tmp_path / "full.pt").read_bytes()
    path = tmp_path / "half.pt"
    path.write_bytes(full[:len(full) // 2])
    assert "truncated" in refusal(path)


def test_json_text(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_text('{"format": "resbench-checkpoint", "version": 1}')
    assert "not a loadable resbench checkpoint" in refusal(path)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dumps"])
def test_pickle_that_runs_code_is_refused_without_running_it(tmp_path, writer):
    marker = tmp_path / "MARKER"
    payload = {"format": FORMAT, "version": VERSION, "model": "conv2d_iso", "evil": RunsCode(marker)}
    if writer == "torch.save":
        buf = io.BytesIO()
        torch.save(payload, buf)
        blob = buf.getvalue()
    else:
        blob = pickle.dumps(payload)
    # the payload is live: plain pickle would run it (checked on a copy, so the test cannot pass vacuously)
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(RunsCode(probe)))
    assert probe.exists()
    path = tmp_path / "evil.pt"
    path.write_bytes(blob)
    message = refusal(path)
    assert not marker.exists()
    if writer == "torch.save":
        assert "refused without running" in message


def test_torch_file_with_another_schema(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"a": 1}, path)
    assert "not a resbench checkpoint" in refusal(path)


def test_bare_state_dict(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(make_checkpoint().state_dict, path)
    assert "not a resbench checkpoint" in refusal(path)


# ---------------------------------------------------------------------------------------------
# resbench-format files whose contents do not add up


def write_raw(tmp_path, raw, name="bad.pt"):
    path = tmp_path / name
    torch.save(raw, path)
    return path


def test_foreign_state_dict(tmp_path):
    s4nd = make_checkpoint("s4nd_iso", d_state=4).state_dict
    path = write_raw(tmp_path, raw_dict(state_dict=s4nd))  # config and model say conv2d_iso
    assert "does not match model 'conv2d_iso'" in refusal(path)


def test_state_dict_missing_a_key(tmp_path):
    sd = dict(make_checkpoint().state_dict)
    sd.pop("head.weight")
    assert "missing 'head.weight'" in refusal(write_raw(tmp_path, raw_dict(state_dict=sd)))


def test_state_dict_with_wrong_shape(tmp_path):
    sd = dict(make_checkpoint().state_dict)
    sd["head.weight"] = torch.zeros(3, 3)
    message = refusal(write_raw(tmp_path, raw_dict(state_dict=sd)))
    assert "'head.weight'" in message and "shape" in message


def test_config_that_does_not_fit_the_weights(tmp_path):
    raw = raw_dict()
    raw["config"] = {**raw["config"], "d_model": 16}  # the weights are for d_model 8
    assert "shape" in refusal(write_raw(tmp_path, raw))


def test_state_dict_value_not_a_tensor(tmp_path):
    sd = dict(make_checkpoint().state_dict)
    sd["head.weight"] = [1.0, 2.0]
    assert "not tensors" in refusal(write_raw(tmp_path, raw_dict(state_dict=sd)))


def test_unknown_model(tmp_path):
    assert "unknown model 'resnet9000'" in refusal(write_raw(tmp_path, raw_dict(model="resnet9000")))


def test_unknown_config_field(tmp_path):
    raw = raw_dict()
    raw["config"] = {**raw["config"], "wings": 2}
    assert "invalid config" in refusal(write_raw(tmp_path, raw))


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_wrong_format_version(tmp_path, version):
    assert "version" in refusal(write_raw(tmp_path, raw_dict(version=version)))


@pytest.mark.parametrize("field", ["model", "config", "provenance", "state_dict", "data_stats"])
def test_missing_field(tmp_path, field):
    raw = raw_dict()
    del raw[field]
    assert repr(field) in refusal(write_raw(tmp_path, raw))


def test_data_stats_without_lists(tmp_path):
    assert "data_stats" in refusal(write_raw(tmp_path, raw_dict(data_stats={"mean": 0.5})))
