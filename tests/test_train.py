"""Tests for resbench.train: learning, determinism, resuming a killed run, progressive schedules, parsing."""

import dataclasses
import re
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import resbench.data
import resbench.train
from conftest import tiny_config, tiny_train
from resbench.checkpoints import load_checkpoint
from resbench.errors import ResbenchError
from resbench.train import parse_schedule, state_path, train


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class Interrupt(KeyboardInterrupt):
    """What a Ctrl-C after an epoch looks like to train()."""


def interrupt_after(epoch):
    def callback(end):
        if end.epoch == epoch:
            raise Interrupt

    return callback


# ---------------------------------------------------------------------------------------------
# a run


def test_training_lowers_the_loss_and_writes_a_usable_checkpoint(tmp_path):
    out = tmp_path / "s4nd.pt"
    ckpt = tiny_train(tiny_config("s4nd_iso", schedule=[(14, 3)], limit=128, bandlimit=0.5), out)
    history = ckpt.provenance["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"] - 0.02  # with lr 0 the two differ by < 0.005
    loaded = load_checkpoint(out)
    assert loaded.model == "s4nd_iso" and loaded.config["bandlimit"] == 0.5
    assert loaded.provenance["epochs"] == 3 and loaded.provenance["train_res"] == 14
    assert loaded.provenance["dataset"] == "synthetic" and loaded.provenance["bandlimit"] == 0.5
    assert 0.0 <= loaded.provenance["native_accuracy"] <= 1.0
    assert_same_weights(loaded.state_dict, ckpt.state_dict)
    with torch.inference_mode():
        logits = loaded.build_model()(torch.randn(3, 1, 14, 14))
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()
    assert not state_path(out).exists()


def test_same_seed_same_weights(tmp_path):
    a = tiny_train(tiny_config(seed=3), tmp_path / "a.pt")
    b = tiny_train(tiny_config(seed=3), tmp_path / "b.pt")
    assert_same_weights(a.state_dict, b.state_dict)
    assert_same_weights(load_checkpoint(tmp_path / "a.pt").state_dict, b.state_dict)


def test_other_seed_other_weights(tmp_path):
    a = tiny_train(tiny_config(seed=3), tmp_path / "a.pt")
    b = tiny_train(tiny_config(seed=4), tmp_path / "b.pt")
    assert any(not torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_output_path_that_is_a_directory(tmp_path):
    with pytest.raises(ResbenchError, match="is a directory"):
        tiny_train(tiny_config(), tmp_path)


class JumpingClock:
    """Stands in for resbench.train's `time` module: real time plus the jumps a test adds, so a step
    can be made to "take" minutes without waiting for them."""

    def __init__(self):
        self.offset = 0.0

    def perf_counter(self) -> float:
        return time.perf_counter() + self.offset

    def taking(self, seconds, fn):
        """`fn`, made to take `seconds` more on this clock."""

        def slow(*args, **kwargs):
            self.offset += seconds
            return fn(*args, **kwargs)

        return slow


@pytest.fixture
def clock(monkeypatch):
    clock = JumpingClock()
    monkeypatch.setattr(resbench.train, "time", clock)
    return clock


def test_wall_time_counts_the_final_test(tmp_path, clock, monkeypatch):
    monkeypatch.setattr(resbench.train, "score", clock.taking(20.0, resbench.train.score))  # a 20 s test pass
    prov = tiny_train(tiny_config(schedule=[(14, 2)]), tmp_path / "a.pt").provenance
    assert prov["test_time_s"] >= 20.0
    assert prov["train_time_s"] == prov["history"][-1]["seconds"]  # the epochs only
    assert prov["wall_time_s"] >= prov["train_time_s"] + prov["test_time_s"] - 0.15  # each rounded to 0.1 s
    assert load_checkpoint(tmp_path / "a.pt").provenance["test_time_s"] == prov["test_time_s"]


def test_wall_time_of_a_resumed_run_adds_the_earlier_run(tmp_path, clock, monkeypatch):
    cfg = tiny_config(schedule=[(14, 2)])
    out = tmp_path / "a.pt"
    with monkeypatch.context() as m:
        m.setattr(resbench.data, "dataset_stats", clock.taking(30.0, resbench.data.dataset_stats))
        with pytest.raises(Interrupt):  # a first run that spends 30 s before its first epoch, then is killed
            tiny_train(cfg, out, on_epoch_end=interrupt_after(1))
    prov = tiny_train(cfg, out, resume=True).provenance
    assert prov["wall_time_s"] >= 30.0 + prov["test_time_s"]
    assert prov["train_time_s"] == prov["history"][-1]["seconds"]


def test_final_test_shows_progress_and_logs_its_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws its bars as on a terminal
    monkeypatch.setenv("COLUMNS", "200")  # and does not wrap the log lines
    threads = torch.get_num_threads()
    try:
        train(tiny_config(), tmp_path / "a.pt")  # 64 test images
    finally:
        torch.set_num_threads(threads)
    err = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\]8;[^\x1b]*\x1b\\", "", capsys.readouterr().err)  # no escapes
    bar = err.find("final test @ 14px")
    assert bar >= 0, err
    assert "64/64" in err[bar:]  # advanced over every test image
    assert "native test accuracy at 14" in err[bar:] and "on 64 images" in err[bar:]


# ---------------------------------------------------------------------------------------------
# resuming


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    cfg = tiny_config(schedule=[(14, 3)])
    out = tmp_path / "resumed.pt"
    with pytest.raises(Interrupt):
        tiny_train(cfg, out, on_epoch_end=interrupt_after(1))
    assert not out.exists()
    state = torch.load(state_path(out), map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 1

    epochs_run = []
    resumed = tiny_train(cfg, out, resume=True, on_epoch_end=lambda end: epochs_run.append(end.epoch))
    assert epochs_run == [2, 3]  # continues after the saved epoch, does not redo it
    assert [h["epoch"] for h in resumed.provenance["history"]] == [1, 2, 3]
    assert not state_path(out).exists()

    straight = tiny_train(cfg, tmp_path / "straight.pt")
    assert_same_weights(resumed.state_dict, straight.state_dict)
    assert [h["loss"] for h in resumed.provenance["history"]] == [h["loss"] for h in straight.provenance["history"]]


def test_without_resume_a_leftover_state_is_ignored(tmp_path):
    cfg = tiny_config(schedule=[(14, 2)])
    out = tmp_path / "a.pt"
    with pytest.raises(Interrupt):
        tiny_train(cfg, out, on_epoch_end=interrupt_after(1))
    epochs_run = []
    ckpt = tiny_train(cfg, out, on_epoch_end=lambda end: epochs_run.append(end.epoch))
    assert epochs_run == [1, 2] and len(ckpt.provenance["history"]) == 2


def test_resume_with_another_config_is_refused(tmp_path):
    out = tmp_path / "a.pt"
    with pytest.raises(Interrupt):
        tiny_train(tiny_config(schedule=[(14, 2)]), out, on_epoch_end=interrupt_after(1))
    with pytest.raises(ResbenchError, match="different training config"):
        tiny_train(tiny_config(schedule=[(14, 2)], seed=1), out, resume=True)
    assert state_path(out).exists()  # the refusal keeps the state for the right command


def test_unreadable_state_is_a_user_error(tmp_path):
    out = tmp_path / "a.pt"
    state_path(out).write_bytes(b"not a state")
    with pytest.raises(ResbenchError, match="unreadable training state"):
        tiny_train(tiny_config(), out, resume=True)


# ---------------------------------------------------------------------------------------------
# progressive resizing


def test_progressive_schedule(tmp_path):
    ckpt = tiny_train(tiny_config(schedule=[(7, 1), (14, 1)]), tmp_path / "prog.pt")
    prov = load_checkpoint(tmp_path / "prog.pt").provenance
    assert prov["schedule"] == [[7, 1], [14, 1]]
    assert [h["size"] for h in prov["history"]] == [7, 14]
    assert prov["train_res"] == 14 and prov["epochs"] == 2
    assert ckpt.train_res == (14, 14)


# ---------------------------------------------------------------------------------------------
# parse_schedule


def test_parse_schedule_accepts():
    assert parse_schedule("7:2,14:1,28:1") == [(7, 2), (14, 1), (28, 1)]
    assert parse_schedule(" 14 : 3 ") == [(14, 3)]


@pytest.mark.parametrize("text", ["", "7", "7:0", "abc", "7:2,,14:1", "0:1", "7:-1", "7:2,", "7:1.5", "2000:1"])
def test_parse_schedule_refuses(text):
    with pytest.raises(ResbenchError) as info:
        parse_schedule(text)
    assert repr(text) in str(info.value) and "\n" not in str(info.value)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(4, 1024), st.integers(1, 10000)), min_size=1, max_size=6))
def test_parse_schedule_round_trip(schedule):
    assert parse_schedule(",".join(f"{size}:{epochs}" for size, epochs in schedule)) == schedule


def test_each_epoch_end_gets_the_trained_model_and_its_record(tmp_path):
    from resbench.train import evaluate

    seen = []

    def after_epoch(end):  # what a recipe search does: test the model as it trains
        x = torch.randn(8, 1, 14, 14)
        correct, _ = evaluate(end.model, x, torch.zeros(8, dtype=torch.long))
        seen.append((end.epoch, end.record["epoch"], end.record["size"], 0 <= correct <= 8, end.model.training))
        end.model.train()

    tiny_train(tiny_config(schedule=[(7, 1), (14, 1)]), tmp_path / "a.pt", on_epoch_end=after_epoch)
    assert seen == [(1, 1, 7, True, False), (2, 2, 14, True, False)]


def test_an_unknown_device_is_a_user_error(tmp_path):
    with pytest.raises(ResbenchError, match="device"):
        tiny_train(dataclasses.replace(tiny_config(), device="nosuchdevice"), tmp_path / "a.pt")
    if not torch.cuda.is_available():
        with pytest.raises(ResbenchError, match="CUDA"):
            tiny_train(dataclasses.replace(tiny_config(), device="cuda"), tmp_path / "a.pt")
