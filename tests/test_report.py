"""Tests for resbench.report: the files written, links, PDF pages, tables derived from the frame, partial sweeps."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from pypdf import PdfReader

from conftest import assert_user_error, run_cli
from resbench.errors import ResbenchError
from resbench.report import parse_formats, write_report
from resbench.sweep import SweepConfig, read_results, run_sweep, write_tables

SIZES = [7, 14, 28]
LIMIT = 100
FIGURES = ["accuracy", "heatmap"]
KERNEL_FIGURES = ["kernels", "aliasing"]
N_TABLES = 4
NATIVE, DROP, ABLATION, POLICY = range(N_TABLES)  # the order of report_tables
LINK = re.compile(r"(!?)\[[^\]]*\]\(([^)\s]+)\)")  # ![alt](file) or [text](file)


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()  # run_sweep sets it for the whole process
    yield
    torch.set_num_threads(threads)


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


def acc(frame, checkpoint, test_res, policy, bandlimit) -> float:
    row = frame[(frame["checkpoint"] == checkpoint) & (frame["test_res"] == str(test_res))
                & (frame["policy"] == policy) & (frame["bandlimit"] == bandlimit)]
    assert len(row) == 1, (checkpoint, test_res, policy, bandlimit)
    return round(100 * float(row["accuracy"].iloc[0]), 2)


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


def test_pdf_page_count(report):
    out, result = report
    assert len(PdfReader(out.with_suffix(".pdf")).pages) == len(result["pages"])
    assert len(result["pages"]) >= 1 + len(FIGURES) + N_TABLES
    assert result["pages"][:1 + len(FIGURES)] == ["header", *FIGURES]
    assert set(result["tables"]) <= set(result["pages"])  # every table has at least one page


def test_kernel_report_adds_two_figures_and_the_aliasing_csv(kernel_report):
    out, result = kernel_report
    folder = out.parent
    assert len(PdfReader(out.with_suffix(".pdf")).pages) == len(result["pages"])
    assert len(result["pages"]) >= 1 + len(FIGURES) + len(KERNEL_FIGURES) + N_TABLES
    for key in KERNEL_FIGURES:
        assert key in result["pages"]
        assert (folder / f"demo_{key}.png").is_file() and (folder / f"demo_{key}.svg").is_file()
    found = links(out.with_suffix(".md"))
    assert {t for is_image, t in found if is_image} == {f"demo_{k}.png" for k in FIGURES + KERNEL_FIGURES}
    assert (False, "demo_aliasing.csv") in found
    for _, target in found:
        assert (folder / target).is_file(), target
    aliasing = (folder / "demo_aliasing.csv").read_text().splitlines()
    # 1 S4ND layer x 2 axes x 2 directions x 3 test sizes x bandlimit on/off, plus the header
    assert len(aliasing) == 1 + 1 * 2 * 2 * len(SIZES) * 2


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
    for bad in ("", "xyz", "md,", "md,html"):
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


def test_drop_table_is_accuracy_minus_native_accuracy(report, frame):
    drop = tables(report[1])[DROP]
    assert [c for c in drop.columns if c not in ("checkpoint", "train_res", "bandlimit")] == [str(s) for s in SIZES]
    for row in drop.to_dict("records"):
        native = acc(frame, row["checkpoint"], 14, "native", "none" if row["bandlimit"] == "none" else "on")
        for size in SIZES:
            want = round(acc(frame, row["checkpoint"], size, "native", row["bandlimit"]) - native, 2)
            assert row[str(size)] == pytest.approx(want, abs=1e-9), (row, size)
    assert set(drop.loc[drop["bandlimit"].isin(["on", "none"]), "14"]) == {0.0}


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
        want = ("native (zero-shot)" if row["native"] > row["resize-input"]
                else "resize-input" if row["resize-input"] > row["native"] else "tie")
        assert row["winner"] == want, row


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
    return folder, sorted(" / ".join([r["checkpoint"], r["test_res"], r["policy"], r["bandlimit"]])
                          for r in removed)


def test_partial_sweep_lists_the_missing_cells(partial, tmp_path):
    folder, missing = partial
    result = write_report([folder], tmp_path / "out" / "demo")
    assert result["missing"] == missing
    md = (tmp_path / "out" / "demo.md").read_text()
    section = md.split("## Missing cells", 1)[1].split("\n## ", 1)[0]
    assert [line[2:] for line in section.splitlines() if line.startswith("- ")] == missing
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


@pytest.mark.parametrize("case", ["empty folder", "missing folder", "bad format", "out is a folder",
                                  "kernels of a conv2d"])
def test_cli_user_errors(sweep, trained, tmp_path, cli, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    args, name = {"empty folder": ([empty, "-o", tmp_path / "r"], empty),
                  "missing folder": ([tmp_path / "nope", "-o", tmp_path / "r"], tmp_path / "nope"),
                  "bad format": ([sweep, "-o", tmp_path / "r", "--format", "xyz"], "xyz"),
                  "out is a folder": ([sweep, "-o", empty], empty),
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
    rows = read_results(out)
    assert len(rows) == 2 and old_sha in set(rows["checkpoint_sha256"])  # the folder keeps both
    df, _ = load_sweeps([out])
    assert len(df) == 1 and df["checkpoint_sha256"].iloc[0] != old_sha


@pytest.mark.parametrize("n", [3, 10, 11, 20])
def test_each_checkpoint_gets_its_own_colour(n):
    from resbench.plots import checkpoint_colors

    colors = checkpoint_colors([f"ckpt_{i}" for i in range(n)])
    assert len(colors) == n
    assert len(set(colors.values())) == n  # with tab10 alone, the 11th name repeated the first colour
