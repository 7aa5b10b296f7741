"""Tests for resbench.report: the files written, links, PDF pages, tables derived from the frame, partial sweeps."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from pypdf import PdfReader

from conftest import assert_user_error, run_cli
from resbench.errors import ResbenchError
from resbench.resolution import size_key
from resbench.report import parse_formats, write_report
from resbench.report.summary import SUMMARY_TITLE
from resbench.scoring import wilson_interval
from resbench.store import RESULT_COLUMNS, read_results, write_tables
from resbench.sweep import SweepConfig, run_sweep

SIZES = [7, 14, 28]
LIMIT = 100
FIGURES = ["headline", "accuracy", "heatmap"]
KERNEL_FIGURES = ["kernels", "aliasing"]
N_TABLES = 5
NATIVE, CHANGE, TRAINED_ABLATION, ABLATION, POLICY = range(N_TABLES)  # the order of report_tables (no adaptive or
# capped cell swept: no table of theirs)
LINK = re.compile(r"(!?)\[[^\]]*\]\(([^)\s]+)\)")  # ![alt](file) or [text](file)


pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.fixture(scope="module")
def sweep(trained, tmp_path_factory) -> Path:
    """Both tiny checkpoints x SIZES x (native, resize-input) x (on, off for S4ND; none for Conv2D)."""
    out = tmp_path_factory.mktemp("sweep")
    threads = torch.get_num_threads()
    try:
        run_sweep(SweepConfig(checkpoints=[str(trained["s4nd"].parent)], out=str(out),
                              test_res=[(s, s) for s in SIZES], limit=LIMIT, threads=1), quiet=True)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def frame(sweep):
    return read_results(sweep)


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory):
    """(OUT, write_report's result) of the full report without kernels."""
    out = tmp_path_factory.mktemp("report") / "demo"
    return out, write_report([sweep], out)


@pytest.fixture(scope="module")
def kernel_report(sweep, trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("kreport") / "demo"
    return out, write_report([sweep], out, kernels=str(trained["s4nd"]))


def tables(result) -> list:
    return list(result["tables"].values())


def links(md: Path) -> list[tuple[bool, str]]:
    """(is an image, target) of every markdown link."""
    return [(bang == "!", target) for bang, target in LINK.findall(md.read_text())]


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}


def cell_row(frame, checkpoint, test_res, policy, bandlimit) -> pd.Series:
    row = frame[(frame["checkpoint"] == checkpoint) & (frame["test_res"] == str(test_res))
                & (frame["policy"] == policy) & (frame["bandlimit"] == bandlimit)]
    assert len(row) == 1, (checkpoint, test_res, policy, bandlimit)
    return row.iloc[0]


def acc(frame, checkpoint, test_res, policy, bandlimit) -> float:
    return round(100 * float(cell_row(frame, checkpoint, test_res, policy, bandlimit)["accuracy"]), 2)


def md_table(md: str, title: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the markdown table under the heading that starts with `title`."""
    section = md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header, *rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]
    return header, rows


# ---------------------------------------------------------------------------------------------
# made-up sweeps: a results frame (results.csv + meta.json) with chosen accuracies, no model run


def grid(checkpoint, model, train_res, sizes, bandlimits=("none",), policies=("native", "resize-input"),
         accuracy=0.8) -> list[tuple]:
    """Cells (checkpoint, model, train_res, test_res, policy, bandlimit, accuracy); `accuracy` is a number or a
    function of (test_res, policy, bandlimit)."""
    pick = accuracy if callable(accuracy) else (lambda *_: accuracy)
    return [(checkpoint, model, str(train_res), str(s), p, b, pick(str(s), p, b))
            for s in sizes for p in policies for b in bandlimits]


def results_frame(cells, n=300) -> pd.DataFrame:
    """The results frame of `cells` (see grid), each scored on n images with its Wilson 95% interval."""
    rows = []
    for checkpoint, model, train_res, test_res, policy, bandlimit, accuracy in cells:
        correct = round(accuracy * n)
        low, high = wilson_interval(correct, n)
        rows.append({"model": model, "checkpoint": checkpoint, "dataset": "synthetic",
                     "checkpoint_sha256": hashlib.sha256(checkpoint.encode()).hexdigest(),
                     "train_res": train_res, "test_res": test_res, "policy": policy, "bandlimit": bandlimit,
                     "seed": 0, "n": n, "correct": correct, "accuracy": correct / n, "ci_low": low, "ci_high": high,
                     "loss": 1.0, "seconds": 1.0, "images_per_s": n, "error": ""})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def synthetic_sweep(folder: Path, cells, n=300, extra_planned=()) -> Path:
    """A sweep folder of `cells` as the report reads it; meta.json plans them plus `extra_planned` cells."""
    frame = results_frame(cells, n)
    folder.mkdir(parents=True)
    (folder / "results.csv").write_text(frame.to_csv(index=False))
    checkpoints = frame.drop_duplicates("checkpoint")
    meta = {"command": "cli.py sweep checkpoints/ -o results/synthetic", "started": "2025-01-01T00:00:00+00:00",
            "finished": "2025-01-01T00:10:00+00:00", "versions": {"resbench": "test"},
            "checkpoints": [{"name": r.checkpoint, "sha256": r.checkpoint_sha256, "model": r.model,
                             "train_res": r.train_res} for r in checkpoints.itertuples()],
            "planned_cells": [[c[0], c[3], c[4], c[5]] for c in cells] + [list(c) for c in extra_planned]}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


# ---------------------------------------------------------------------------------------------
# files, links and pages


def test_writes_md_pdf_and_each_figure_as_png_and_svg(report):
    out, result = report
    want = {"demo.md", "demo.pdf"} | {f"demo_{key}.{ext}" for key in FIGURES for ext in ("png", "svg")}
    assert set(result["written"]) == want
    assert files_in(out.parent) == want  # no temporary files left behind
    for key in FIGURES:
        assert (out.parent / f"demo_{key}.png").read_bytes().startswith(b"\x89PNG")
        assert "<svg" in (out.parent / f"demo_{key}.svg").read_text()
    assert (out.parent / "demo.pdf").read_bytes().startswith(b"%PDF")


def test_markdown_links_every_figure_and_each_link_exists(report):
    out, result = report
    found = links(out.with_suffix(".md"))
    images = {target for is_image, target in found if is_image}
    assert images == {f for f in result["written"] if f.endswith(".png")}
    for _, target in found:
        assert (out.parent / target).is_file(), target


def on_pages(result) -> list[str]:
    """The keys of the sections on the PDF's pages, in order."""
    return [key for page in result["pages"] for key in page]


def test_pdf_pages_hold_every_section_in_order(report):
    out, result = report
    assert len(PdfReader(out.with_suffix(".pdf")).pages) == len(result["pages"]) <= 4  # two checkpoints
    keys = on_pages(result)
    assert keys[:5] == ["title", "scope", SUMMARY_TITLE, *FIGURES[:2]] and keys[-1] == "provenance"
    assert set(result["tables"]) <= set(keys)  # every table is on a page


def test_kernel_report_adds_two_figures_and_the_aliasing_csv(kernel_report):
    out, result = kernel_report
    folder = out.parent
    assert len(PdfReader(out.with_suffix(".pdf")).pages) == len(result["pages"])
    for key in KERNEL_FIGURES + FIGURES:
        assert key in on_pages(result)
        assert (folder / f"demo_{key}.png").is_file() and (folder / f"demo_{key}.svg").is_file()
    found = links(out.with_suffix(".md"))
    assert {t for is_image, t in found if is_image} == {f"demo_{k}.png" for k in FIGURES + KERNEL_FIGURES}
    assert (False, "demo_aliasing.csv") in found
    for _, target in found:
        assert (folder / target).is_file(), target
    aliasing = (folder / "demo_aliasing.csv").read_text().splitlines()
    # 1 S4ND layer x 2 axes x 2 directions x (3 test sizes x bandlimit on/off, plus adaptive at the size below
    # training), plus the header
    assert len(aliasing) == 1 + 1 * 2 * 2 * (len(SIZES) * 2 + 1)


@pytest.mark.parametrize("fmt, present, absent", [
    ("md", {"demo.md", "demo_accuracy.png", "demo_heatmap.png"}, {"demo.pdf", "demo_accuracy.svg"}),
    ("pdf", {"demo.pdf"}, {"demo.md", "demo_accuracy.png", "demo_accuracy.svg"}),
    ("svg", {"demo_accuracy.svg", "demo_heatmap.svg"}, {"demo.md", "demo.pdf", "demo_accuracy.png"}),
])
def test_format_selects_the_files(sweep, tmp_path, fmt, present, absent):
    result = write_report([sweep], tmp_path / "demo", parse_formats(fmt))
    written = files_in(tmp_path)
    assert set(result["written"]) == written
    assert present <= written and not (absent & written)
    assert (result["pages"] != []) == (fmt == "pdf")


def test_parse_formats():
    assert parse_formats(" md, PDF ") == ["md", "pdf"]
    assert parse_formats("md,tex,html") == ["md", "tex", "html"]
    for bad in ("", "xyz", "md,", "md,docx"):
        with pytest.raises(ResbenchError, match="--format"):
            parse_formats(bad)


# ---------------------------------------------------------------------------------------------
# tables: every number comes from the results frame


def test_native_accuracy_table_matches_the_frame(report, frame):
    native = tables(report[1])[NATIVE]
    assert sorted(native["checkpoint"]) == sorted(frame["checkpoint"].unique())
    reference = {"s4nd_iso_14": "on", "conv2d_iso_14": "none"}  # the trained bandlimit, or none
    for row in native.to_dict("records"):
        assert row["train_res"] == "14" and row["n"] == LIMIT
        assert row["native accuracy (%)"] == acc(frame, row["checkpoint"], 14, "native", reference[row["checkpoint"]])


def test_change_table_is_accuracy_minus_native_accuracy(report, frame):
    change = tables(report[1])[CHANGE]
    assert [c for c in change.columns if c not in ("checkpoint", "train_res", "bandlimit")] == [str(s) for s in SIZES]
    for row in change.to_dict("records"):
        native = acc(frame, row["checkpoint"], 14, "native", "none" if row["bandlimit"] == "none" else "on")
        for size in SIZES:
            if row["bandlimit"] == "adaptive" and size >= 14:  # not run there: it equals "on"
                assert pd.isna(row[str(size)]), (row, size)
                continue
            want = round(acc(frame, row["checkpoint"], size, "native", row["bandlimit"]) - native, 2)
            assert row[str(size)] == pytest.approx(want, abs=1e-9), (row, size)
    assert set(change.loc[change["bandlimit"].isin(["on", "none"]), "14"]) == {0.0}


def test_bandlimit_ablation_is_on_minus_off(report, frame):
    ablation = tables(report[1])[ABLATION]
    assert list(ablation["checkpoint"]) == ["s4nd_iso_14"]  # only models with a bandlimit
    row = ablation.iloc[0]
    for size in SIZES:
        want = acc(frame, "s4nd_iso_14", size, "native", "on") - acc(frame, "s4nd_iso_14", size, "native", "off")
        assert row[str(size)] == pytest.approx(want, abs=1e-9), size


def test_policy_comparison_winner_agrees_with_the_numbers(report, frame):
    policy = tables(report[1])[POLICY]
    assert len(policy) == 2 * (len(SIZES) - 1)  # both checkpoints, every size but the training size
    assert "14" not in set(policy["test_res"])
    for row in policy.to_dict("records"):
        bl = "on" if row["checkpoint"].startswith("s4nd") else "none"
        assert row["native"] == acc(frame, row["checkpoint"], row["test_res"], "native", bl)
        assert row["resize-input"] == acc(frame, row["checkpoint"], row["test_res"], "resize-input", bl)
        native = cell_row(frame, row["checkpoint"], row["test_res"], "native", bl)
        resize = cell_row(frame, row["checkpoint"], row["test_res"], "resize-input", bl)
        want = ("native (zero-shot)" if native["ci_low"] > resize["ci_high"]
                else "resize-input" if resize["ci_low"] > native["ci_high"] else "tie (95% CIs overlap)")
        if int(row["test_res"]) > 14:  # above the training size resize-input is the reference, not a rival
            want = "(reference)"
        assert row["winner"] == want, row


def test_policy_winner_only_where_the_95_cis_do_not_overlap(tmp_path):
    """87.7 vs 88.3 at n=300 is noise (each interval spans about 7 points); 50 vs 90 and 80 vs 60 are not."""
    accuracy = {("7", "native"): 0.50, ("7", "resize-input"): 0.90, ("14", "native"): 0.878,
                ("14", "resize-input"): 0.882, ("21", "native"): 0.80, ("21", "resize-input"): 0.60,
                ("56", "native"): 0.30, ("56", "resize-input"): 0.90}
    cells = grid("ckconv_28", "ckconv", 28, [7, 14, 21, 28, 56], accuracy=lambda s, p, b: accuracy.get((s, p), 0.9))
    out = tmp_path / "out" / "demo"
    result = write_report([synthetic_sweep(tmp_path / "sweep", cells)], out, ["md"])
    policy = tables(result)[POLICY]
    assert dict(zip(policy["test_res"], policy["winner"])) == {
        "7": "resize-input", "14": "tie (95% CIs overlap)", "21": "native (zero-shot)",
        "56": "(reference)"}  # above training: no contest
    note = policy.attrs["note"]
    assert "Wilson" in note and "do not overlap" in note and "unpaired" in note and "paired test" in note
    md = out.with_suffix(".md").read_text()
    title = list(result["tables"])[POLICY]
    assert note in md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]  # the rule is printed under the table


def test_sizes_sort_numerically_in_every_table(tmp_path, trained):
    """Sizes 7, 14, 28x20, 28 (by pixel count), never as text (14, 28, 7): columns, rows, missing cells, aliasing."""
    sizes = ["7", "14", "28x20", "28"]
    cells = [cell for train in (28, 7, 14) for cell in
             grid(f"s4nd_iso_{train}", "s4nd_iso", train, sizes[::-1], bandlimits=("on", "off"),
                  accuracy=lambda s, p, b: 0.5 + 0.01 * len(s) + (0.1 if p == "native" else 0))]
    unplanned = [["s4nd_iso_14", size, "native", "0.3"] for size in ("14", "7")]  # planned, never run
    folder = synthetic_sweep(tmp_path / "sweep", cells, extra_planned=unplanned)
    out = tmp_path / "out" / "demo"
    result = write_report([folder], out, ["md"], kernels=str(trained["s4nd"]))
    md = out.with_suffix(".md").read_text()
    native_t, change_t, _, ablation_t, policy_t = list(result["tables"])[:5]
    checkpoints = ["s4nd_iso_7", "s4nd_iso_14", "s4nd_iso_28"]  # by training size, not by name

    header, rows = md_table(md, native_t)
    assert [r[header.index("checkpoint")] for r in rows] == checkpoints
    for title in (change_t, ablation_t):
        header, rows = md_table(md, title)
        assert header[-len(sizes):] == sizes, title
        assert list(dict.fromkeys(r[0] for r in rows)) == checkpoints, title
    header, rows = md_table(md, policy_t)
    keys = [(r[header.index("checkpoint")], r[header.index("test_res")]) for r in rows]
    assert keys == [(c, s) for c in checkpoints for s in sizes if s != c.rsplit("_", 1)[1]]
    header, rows = md_table(md, "Kernel aliasing")
    # the kernels' checkpoint trained at 14: adaptive rows at the one size below it
    assert [r[header.index("test_res")] for r in rows] == \
        [s for s in sizes for _ in (("adaptive", "off", "on") if s == "7" else ("off", "on"))]
    assert result["missing"] == ["s4nd_iso_14 / 7 / native / 0.3", "s4nd_iso_14 / 14 / native / 0.3"]
    aliasing = pd.read_csv(out.with_name("demo_aliasing.csv"), dtype={"test_res": str})
    assert list(dict.fromkeys(aliasing["test_res"])) == sizes


# ---------------------------------------------------------------------------------------------
# a sweep that does not test a checkpoint's training size


@pytest.mark.parametrize("with_native", [False, True], ids=["alone", "beside-one-with-a-native-cell"])
def test_report_of_a_sweep_that_skips_the_training_size(tmp_path, with_native):
    """s4nd_iso_7 was tested at 14 and 28 only: no native cell, so no change; everything else is still drawn."""
    cells = grid("s4nd_iso_7", "s4nd_iso", 7, [14, 28], bandlimits=("on", "off"))
    if with_native:
        cells += grid("conv2d_iso_14", "conv2d_iso", 14, [7, 14, 28], accuracy=lambda s, p, b: 0.9 - 0.01 * int(s))
    out = tmp_path / "out" / "demo"
    result = write_report([synthetic_sweep(tmp_path / "sweep", cells)], out)
    want = {"demo.md", "demo.pdf"} | {f"demo_{key}.{ext}" for key in FIGURES for ext in ("png", "svg")}
    assert set(result["written"]) == want and files_in(out.parent) == want
    assert len(PdfReader(out.with_suffix(".pdf")).pages) == len(result["pages"])
    native, change, _, _, policy = tables(result)[:5]
    assert list(native["checkpoint"]) == (["conv2d_iso_14"] if with_native else [])
    assert "no native cell" in native.attrs["note"] and "s4nd_iso_7" in native.attrs["note"]
    mine = change[change["checkpoint"] == "s4nd_iso_7"]
    assert sorted(mine["bandlimit"]) == ["off", "on"] and set(mine["note"]) == {"no native cell"}
    assert mine.drop(columns=["checkpoint", "train_res", "bandlimit", "note"]).isna().all().all()
    if with_native:
        conv = change[change["checkpoint"] == "conv2d_iso_14"].iloc[0]
        assert conv["note"] == "" and [conv[s] for s in ("7", "14", "28")] == pytest.approx([7.0, 0.0, -14.0])
    assert {(r.checkpoint, r.test_res) for r in policy.itertuples()} >= {("s4nd_iso_7", "14"), ("s4nd_iso_7", "28")}
    md = out.with_suffix(".md").read_text()
    change_md = md.split(f"## {list(result['tables'])[CHANGE]}", 1)[1].split("\n## ", 1)[0]
    assert "| s4nd_iso_7 | 7 | on |" in change_md and "no native cell" in change_md


def test_markdown_holds_each_table(report):
    out, result = report
    md = out.with_suffix(".md").read_text()
    for title in result["tables"]:
        assert f"## {title}" in md
    assert "| checkpoint | model | train_res | native accuracy (%) | n | ci95 |" in md
    assert "Missing cells" not in md and "0 missing" in md


# ---------------------------------------------------------------------------------------------
# partial sweeps


@pytest.fixture
def partial(sweep, tmp_path) -> tuple[Path, list[str]]:
    """A copy of the sweep with three logged cells removed: (folder, the removed cells as the report names them)."""
    folder = Path(shutil.copytree(sweep, tmp_path / "partial"))
    log = folder / "cells.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    removed = [json.loads(lines[i]) for i in (0, 5, len(lines) - 1)]
    log.write_text("".join(line for i, line in enumerate(lines) if i not in (0, 5, len(lines) - 1)))
    write_tables(folder)
    cells = sorted(removed, key=lambda r: (r["checkpoint"], size_key(r["test_res"]), r["policy"], r["bandlimit"]))
    return folder, [" / ".join([r["checkpoint"], r["test_res"], r["policy"], r["bandlimit"]]) for r in cells]


def test_partial_sweep_lists_the_missing_cells(partial, tmp_path):
    folder, missing = partial
    result = write_report([folder], tmp_path / "out" / "demo")
    assert result["missing"] == missing
    md = (tmp_path / "out" / "demo.md").read_text()
    section = md.split("## Missing cells", 1)[1].split("\n## ", 1)[0]
    assert [line[2:].strip("`") for line in section.splitlines() if line.startswith("- ")] == missing
    assert f"{len(missing)} missing" in md


def test_partial_sweep_through_the_cli_notes_the_gap(partial, tmp_path, cli):
    folder, missing = partial
    code, out, err = cli("report", folder, "-o", tmp_path / "out" / "demo", "--format", "md")
    assert code == 0, err
    assert f"{len(missing)} planned cells have no result" in err
    assert "demo.md" in out


# ---------------------------------------------------------------------------------------------
# user errors


@pytest.mark.parametrize("case", ["empty folder", "missing folder", "out is a folder"])
def test_library_user_errors(sweep, tmp_path, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    dirs, out, name = {"empty folder": ([empty], tmp_path / "r", empty),
                       "missing folder": ([tmp_path / "nope"], tmp_path / "r", tmp_path / "nope"),
                       "out is a folder": ([sweep], empty, empty)}[case]
    with pytest.raises(ResbenchError, match=re.escape(str(name))):
        write_report(dirs, out)
    assert files_in(tmp_path) == {"empty"} and not any(empty.iterdir())  # nothing written on a user error


@pytest.mark.parametrize("case", ["empty folder", "missing folder", "bad format", "kernels of a conv2d"])
def test_cli_user_errors(sweep, trained, tmp_path, cli, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    args, name = {"empty folder": ([empty, "-o", tmp_path / "r"], empty),
                  "missing folder": ([tmp_path / "nope", "-o", tmp_path / "r"], tmp_path / "nope"),
                  "bad format": ([sweep, "-o", tmp_path / "r", "--format", "xyz"], "xyz"),
                  "kernels of a conv2d": ([sweep, "-o", tmp_path / "r", "--kernels", trained["conv"]],
                                          trained["conv"])}[case]
    code, _, err = cli("report", *args)
    assert_user_error(code, err, name)
    assert files_in(tmp_path) == {"empty"} and not any(empty.iterdir())


def test_report_command_end_to_end(sweep, trained, tmp_path):
    result = run_cli("report", sweep, "-o", tmp_path / "demo", "--kernels", trained["s4nd"])
    assert result.returncode == 0, result.stderr
    want = {"demo.md", "demo.pdf", "demo_aliasing.csv"} | {
        f"demo_{key}.{ext}" for key in FIGURES + KERNEL_FIGURES for ext in ("png", "svg")}
    assert files_in(tmp_path) == want
    assert f"in {tmp_path}" in result.stdout
    md = (tmp_path / "demo.md").read_text()
    assert "Kernel aliasing" in md and str(trained["s4nd"]) in md


def test_rows_of_a_replaced_checkpoint_leave_the_report(trained, tmp_path):
    """Retraining a checkpoint under the same name adds rows for the new file; the report uses only those."""
    from resbench.checkpoints import load_checkpoint, save_checkpoint
    from resbench.report import load_sweeps

    ckdir, out = tmp_path / "ck", tmp_path / "sweep"
    ckdir.mkdir()
    path = ckdir / "model.pt"
    shutil.copy(trained["s4nd"], path)
    cfg = SweepConfig(checkpoints=[str(ckdir)], out=str(out), test_res=[(7, 7)], policy=["native"],
                      bandlimit=["on"], limit=20, threads=1)
    run_sweep(cfg, quiet=True)
    old_sha = read_results(out)["checkpoint_sha256"].iloc[0]
    ckpt = load_checkpoint(path)
    ckpt.provenance["note"] = "retrained"  # another file under the same name
    save_checkpoint(ckpt, path)
    run_sweep(cfg, quiet=True)
    from resbench.store import read_superseded

    assert len(read_results(out)) == 1 and set(read_superseded(out)["checkpoint_sha256"]) == {old_sha}  # both kept
    df, _ = load_sweeps([out])
    assert len(df) == 1 and df["checkpoint_sha256"].iloc[0] != old_sha


@pytest.mark.parametrize("n", [3, 10, 11, 20])
def test_each_checkpoint_gets_its_own_colour(n):
    from resbench.report.figures import checkpoint_colors

    colors = checkpoint_colors([f"ckpt_{i}" for i in range(n)])
    assert len(colors) == n
    assert len(set(colors.values())) == n  # with tab10 alone, the 11th name repeated the first colour
