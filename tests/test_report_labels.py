"""The report labels what a cell is: trained ablation vs mask removed at evaluation, seen in training, adaptive."""

import json

import pandas as pd
import pytest

from resbench.report import report_tables, write_report
from test_report import grid, results_frame

SIZES = [7, 14, 21, 28]


def acc_fn(table):
    return lambda s, p, b: table.get((s, p, b), 0.8)


def study_cells():
    """Rows of a small study: a pair trained with and without the mask, a progressive checkpoint, an unpaired one."""
    cells, extra = [], {}
    spec = [
        ("s4nd_iso_14", 14, ("on", "off", "adaptive"), 0.5, "14:8", {("7", "native", "on"): 0.60,
                                                                      ("7", "native", "off"): 0.55,
                                                                      ("7", "native", "adaptive"): 0.66,
                                                                      ("28", "native", "on"): 0.85,
                                                                      ("28", "native", "off"): 0.70}),
        ("s4nd_iso_14_nobandlimit", 14, ("off",), None, "14:8", {("7", "native", "off"): 0.50,
                                                                  ("28", "native", "off"): 0.75}),
        ("s4nd_iso_28_prog", 28, ("on", "off"), 0.5, "7:1,14:2,28:1", {("7", "native", "on"): 0.78}),
        ("s4nd_iso_28_long", 28, ("on", "off"), 0.5, "28:10 dropout=0", {}),
    ]
    for name, train, bls, alpha, recipe, accuracy in spec:
        rows = grid(name, "s4nd_iso", train, SIZES, bandlimits=bls, accuracy=acc_fn(accuracy))
        rows = [r for r in rows if r[5] != "adaptive" or (r[4] == "native" and int(r[3]) < train)]
        cells += rows
        seen = {"7", "14", "28"} if name == "s4nd_iso_28_prog" else {str(train)}
        for r in rows:
            extra[(r[0], r[3], r[4], r[5])] = {"trained_bandlimit": alpha, "recipe": recipe,
                                               "seen_in_training": r[3] in seen}
    return cells, extra


@pytest.fixture
def study(tmp_path):
    cells, extra = study_cells()
    frame = results_frame(cells)
    for column in ("trained_bandlimit", "recipe", "seen_in_training"):
        frame[column] = [extra[(r.checkpoint, r.test_res, r.policy, r.bandlimit)][column]
                         for r in frame.itertuples()]
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "results.csv").write_text(frame.to_csv(index=False))
    meta = {"command": "sweep", "versions": {},
            "checkpoints": [{"name": c, "sha256": s, "model": "s4nd_iso", "train_res": t} for c, s, t in
                            frame[["checkpoint", "checkpoint_sha256", "train_res"]].drop_duplicates().values],
            "planned_cells": [[c[0], c[3], c[4], c[5]] for c in cells]}
    (folder / "meta.json").write_text(json.dumps(meta))
    return frame, folder


def titled(tables, start):
    return next(t for title, t in tables.items() if title.startswith(start))


def test_trained_ablation_pairs_the_same_recipe_with_and_without_the_mask(study):
    frame, _ = study
    table = titled(report_tables(frame), "Bandlimit ablation, trained models")
    assert list(zip(table["checkpoint"], table["trained without"])) == [("s4nd_iso_14", "s4nd_iso_14_nobandlimit")]
    row = table.iloc[0]
    assert row["7"] == pytest.approx(60.0 - 50.0) and row["28"] == pytest.approx(85.0 - 75.0)
    assert "same model and recipe" in table.attrs["note"]


def test_removing_the_mask_at_evaluation_is_not_called_an_ablation(study):
    frame, _ = study
    tables = report_tables(frame)
    removed = titled(tables, "Bandlimit removed at evaluation")
    assert "s4nd_iso_14_nobandlimit" not in set(removed["checkpoint"])  # it has no mask to remove
    assert removed.set_index("checkpoint").loc["s4nd_iso_14", "28"] == pytest.approx(85.0 - 70.0)
    assert "Not an ablation" in removed.attrs["note"] and "never received a gradient" in removed.attrs["note"]
    assert not any(title.startswith("Bandlimit ablation: accuracy with it on minus off") for title in tables)


def test_cells_seen_in_training_are_marked_and_kept_out_of_the_policy_contest(study):
    frame, _ = study
    tables = report_tables(frame)
    change = titled(tables, "Change from native").set_index(["checkpoint", "bandlimit"])
    assert change.loc[("s4nd_iso_28_prog", "on"), "7"] == "-2.00\u2020"  # 78 vs 80 at 28, and 7 was trained on
    assert change.loc[("s4nd_iso_28_prog", "on"), "21"] == pytest.approx(0.0)  # 21 was not: a plain number
    assert change.loc[("s4nd_iso_28_long", "on"), "7"] == pytest.approx(0.0)
    assert "\u2020" in titled(tables, "Change from native").attrs["note"]
    policy = titled(tables, "Policy comparison")
    prog = set(policy.loc[policy["checkpoint"] == "s4nd_iso_28_prog", "test_res"])
    assert prog == {"21"}  # 7 and 14 were trained on, 28 is the training size


def test_adaptive_table_is_adaptive_minus_on_below_the_training_size(study):
    frame, _ = study
    table = titled(report_tables(frame), "Adaptive bandlimit")
    assert list(table["checkpoint"]) == ["s4nd_iso_14"]
    assert table.iloc[0]["7"] == pytest.approx(66.0 - 60.0)
    assert [c for c in table.columns if c not in ("checkpoint", "train_res")] == ["7"]


def test_the_written_report_shows_the_marks(study, tmp_path):
    _, folder = study
    out = tmp_path / "out" / "demo"
    write_report([folder], out, ["md"])
    md = out.with_suffix(".md").read_text()
    assert "-2.00\u2020" in md and "Bandlimit ablation, trained models" in md and "Not an ablation" in md


def test_report_ranks_the_drops_of_the_swept_checkpoints(trained, tmp_path):
    from conftest import quiet_sweep
    from resbench.report import ORDER_TITLE, aliasing_drop_cells, load_sweeps
    from resbench.resolution import parse_sizes
    from resbench.sweep import SweepConfig

    out = tmp_path / "sweep"
    quiet_sweep(SweepConfig(checkpoints=[str(trained["s4nd"].parent)], out=str(out), dataset="synthetic",
                            test_res=parse_sizes("7,14,28"), limit=32, bandlimit=["on", "off"]))
    df, runs = load_sweeps([out])
    cells = aliasing_drop_cells(df, runs)
    # the S4ND checkpoint's zero-shot native cells (7 and 28, on and off); the conv2d has no kernels
    assert sorted(zip(cells["test_res"], cells["bandlimit"])) == [("28", "off"), ("28", "on"), ("7", "off"),
                                                                   ("7", "on")]
    assert set(cells["checkpoint"]) == {trained["s4nd"].stem}
    assert cells["untrained_modes"].tolist() == [b == "off" for b in cells["bandlimit"]]
    report = tmp_path / "r" / "demo"
    result = write_report([out], report, ["md"])
    # one checkpoint: no bootstrap over checkpoints, so no verdict, said in one line
    assert result["tables"][ORDER_TITLE].empty
    section = report.with_suffix(".md").read_text().split(f"## {ORDER_TITLE}", 1)[1].split("\n## ", 1)[0]
    assert section.split("\n", 1)[1].strip() == "_(no rows: no verdict: 0 checkpoint(s) have a group of 3 or more zero-shot sizes " \
                              "whose drops differ; the bootstrap over checkpoints needs 3)_"


def test_a_checkpoint_trained_without_the_mask_has_its_off_cells_as_reference(study):
    frame, _ = study
    tables = report_tables(frame)
    native = titled(tables, "Native accuracy").set_index("checkpoint")
    assert native.loc["s4nd_iso_14_nobandlimit", "native accuracy (%)"] == pytest.approx(80.0)
    change = titled(tables, "Change from native").set_index(["checkpoint", "bandlimit"])
    assert change.loc[("s4nd_iso_14_nobandlimit", "off"), "7"] == pytest.approx(50.0 - 80.0)
    assert change.loc[("s4nd_iso_14_nobandlimit", "off"), "14"] == pytest.approx(0.0)
    policy = titled(tables, "Policy comparison")
    assert "s4nd_iso_14_nobandlimit" in set(policy["checkpoint"])


def test_row_warnings_reach_the_report_scope(study, tmp_path):
    frame, folder = study
    frame = frame.assign(warning=["normalisation: the dataset's own statistics, not recorded by the model"
                                  if c == "s4nd_iso_28_long" else "" for c in frame["checkpoint"]])
    (folder / "results.csv").write_text(frame.to_csv(index=False))
    out = tmp_path / "out" / "demo"
    write_report([folder], out, ["md"])
    scope = out.with_suffix(".md").read_text().split("## Scope", 1)[1].split("\n## ", 1)[0]
    assert "warning** for `s4nd_iso_28_long`: normalisation: the dataset's own statistics" in scope
    assert scope.count("warning**") == 1


def test_test_sizes_above_the_native_size_are_called_upsamplings(study):
    frame, _ = study
    frame = frame.assign(dataset="fashion-mnist")  # 28x28 originals
    bigger = frame[frame["test_res"] == "28"].assign(test_res="56")
    note = titled(report_tables(pd.concat([frame, bigger], ignore_index=True)), "Change from native").attrs["note"]
    assert "test sizes 56 are upsamplings of its 28x28 originals" in note
    assert "upsampling" not in titled(report_tables(frame), "Change from native").attrs.get("note", "")


def test_a_sweep_over_alphas_gets_an_alpha_figure(tmp_path):
    from resbench.report.figures import OFF_X, alpha_cells
    from test_report import synthetic_sweep

    accuracy = {"0.25": 0.6, "0.5": 0.7, "1.0": 0.65, "on": 0.7, "off": 0.5}
    cells = grid("s4nd_iso_14", "s4nd_iso", 14, [7, 14, 28], bandlimits=tuple(accuracy), policies=("native",),
                 accuracy=lambda s, p, b: accuracy[b])
    folder = synthetic_sweep(tmp_path / "sweep", cells)
    frame = pd.read_csv(folder / "results.csv")
    frame["alpha"] = [0.5 if b == "on" else pd.to_numeric(b, errors="coerce") for b in frame["bandlimit"]]
    (folder / "results.csv").write_text(frame.to_csv(index=False))
    chosen = alpha_cells(frame.assign(error=""))
    assert sorted(set(chosen["x"])) == [0.25, 0.5, 1.0, OFF_X]  # "on" sits at its trained alpha, 0.5
    out = tmp_path / "out" / "demo"
    result = write_report([folder], out, ["md", "png"])
    assert "demo_alpha.png" in result["written"] and (out.parent / "demo_alpha.png").stat().st_size > 0
    assert "## Accuracy vs bandlimit alpha" in out.with_suffix(".md").read_text()


def test_a_sweep_at_one_alpha_per_checkpoint_has_no_alpha_figure(study, tmp_path):
    frame, folder = study
    frame = frame.assign(alpha=[0.5 if b in ("on", "adaptive") else float("nan") for b in frame["bandlimit"]])
    (folder / "results.csv").write_text(frame.to_csv(index=False))  # as a sweep writes it: on at alpha 0.5
    out = tmp_path / "out" / "demo"
    result = write_report([folder], out, ["md", "png"])
    assert not any("alpha" in f for f in result["written"])
