"""What a row says about its cell: seen in training or zero-shot, the bandlimit the checkpoint trained with,
its recipe, and which capped and adaptive cells a sweep plans."""

import pandas as pd
import pytest

from conftest import quiet_sweep, tiny_config, tiny_train
from resbench.checkpoints import load_checkpoint
from resbench.resolution import parse_sizes
from resbench.sweep import SweepConfig, plan_cells, recipe, training_sizes


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A progressive s4nd_iso (7 -> 14), one trained at 14 without the bandlimit, and a ckconv at 14."""
    folder = tmp_path_factory.mktemp("labelled")
    tiny_train(tiny_config("s4nd_iso", schedule=[(7, 1), (14, 1)], bandlimit=0.5), folder / "prog.pt")
    tiny_train(tiny_config("s4nd_iso", schedule=[(14, 1)], bandlimit=None), folder / "nobl.pt")
    tiny_train(tiny_config("ckconv", schedule=[(14, 1)]), folder / "ck.pt")
    out = tmp_path_factory.mktemp("labelled_sweep")
    quiet_sweep(SweepConfig(checkpoints=[str(folder)], out=str(out), dataset="synthetic",
                            test_res=parse_sizes("7,14,21"), limit=16, bandlimit=["on", "off", "capped", "adaptive"]))
    return folder, pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)


def test_training_sizes_and_recipe_come_from_the_schedule(labelled):
    folder, _ = labelled
    prog = load_checkpoint(folder / "prog.pt")
    assert training_sizes(prog) == {(7, 7), (14, 14)}
    assert recipe(prog).startswith("7:1,14:1") and "bandlimit" not in recipe(prog)
    assert training_sizes(load_checkpoint(folder / "nobl.pt")) == {(14, 14)}


def test_seen_in_training_marks_every_size_of_the_schedule(labelled):
    _, df = labelled
    seen = df.groupby(["checkpoint", "test_res"])["seen_in_training"].agg(set).to_dict()
    assert seen[("prog", "7")] == {"True"} and seen[("prog", "14")] == {"True"} and seen[("prog", "21")] == {"False"}
    assert seen[("nobl", "7")] == {"False"} and seen[("nobl", "14")] == {"True"}


def test_trained_bandlimit_is_recorded_and_decides_the_settings(labelled):
    _, df = labelled
    by = df.groupby("checkpoint")
    assert set(by.get_group("prog")["trained_bandlimit"]) == {"0.5"}
    assert set(by.get_group("nobl")["trained_bandlimit"]) == {""}
    assert set(by.get_group("prog")["bandlimit"]) == {"on", "off", "capped", "adaptive"}
    assert set(by.get_group("nobl")["bandlimit"]) == {"off", "capped"}  # no trained alpha: no "on", no "adaptive"
    assert set(by.get_group("ck")["bandlimit"]) == {"none", "adaptive"}


def test_adaptive_cells_run_only_natively_below_the_training_size(labelled):
    _, df = labelled
    adaptive = df[df["bandlimit"] == "adaptive"]
    assert set(zip(adaptive["checkpoint"], adaptive["test_res"], adaptive["policy"])) == {
        ("prog", "7", "native"), ("ck", "7", "native")}


def test_capped_cells_run_only_natively_below_the_training_size_of_s4nd_models(labelled):
    _, df = labelled
    capped = df[df["bandlimit"] == "capped"]
    assert set(zip(capped["checkpoint"], capped["test_res"], capped["policy"])) == {
        ("prog", "7", "native"), ("nobl", "7", "native")}


def test_capped_keeps_alpha_where_the_test_grid_holds_it_and_caps_an_unmasked_model(labelled):
    # 14 -> 7: min(0.5, 7/14) = 0.5, the trained mask ("on"); without a trained alpha the cap 0.5 alone ("off" has none)
    _, df = labelled
    cells = df[(df["test_res"] == "7") & (df["policy"] == "native")].set_index(["checkpoint", "bandlimit"])["loss"]
    assert float(cells[("prog", "capped")]) == float(cells[("prog", "on")])
    assert float(cells[("nobl", "capped")]) != float(cells[("nobl", "off")])


def test_adaptive_cells_below_training_differ_from_on(labelled):
    _, df = labelled
    cells = df[(df["test_res"] == "7") & (df["policy"] == "native")].set_index(["checkpoint", "bandlimit"])["loss"]
    assert float(cells[("prog", "adaptive")]) != float(cells[("prog", "on")])
    assert float(cells[("ck", "adaptive")]) != float(cells[("ck", "none")])


def test_plan_skips_adaptive_on_a_rectangular_grid_only_where_no_axis_is_coarser(labelled):
    folder, _ = labelled
    ckpt = load_checkpoint(folder / "prog.pt")
    cfg = SweepConfig(checkpoints=[], out="", test_res=parse_sizes("14x7,28x14,28"), policy=["native"],
                      bandlimit=["adaptive"])
    cells = plan_cells([ckpt], cfg)
    # 14x7 is coarser along the width; 28x14 and 28 are not coarser along any axis (the "on" cell covers them)
    assert {(c.test_res, c.bandlimit) for c in cells} == {((14, 7), "adaptive")}
