"""One convention across commands: `report -o` takes a folder (as `sweep -o` and `plot-kernels -o` do) and keeps
OUT/NAME; data-loading processes and Ray tasks have names that cannot be mistaken for each other."""

from pathlib import Path

import pytest

import resbench
from resbench.cli.sweep import renamed
from resbench.errors import ResbenchError
from resbench.report.target import DEFAULT_NAME, report_target
from test_report import grid, synthetic_sweep


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> tuple[Path, Path]:
    """Two small sweep folders, `quick` and `other`, as the report reads them."""
    root = tmp_path_factory.mktemp("sweeps")
    cells = grid("s4nd_iso_14", "s4nd_iso", 14, [7, 14, 28], bandlimits=("on", "off"))
    return (synthetic_sweep(root / "quick", cells),
            synthetic_sweep(root / "other", grid("conv2d_iso_14", "conv2d_iso", 14, [7, 14, 28])))


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("out,sweeps,want", [
    ("reports/", ["results/quick"], "reports/quick"),
    ("reports/", ["results/quick/"], "reports/quick"),
    ("reports/", ["results/a", "results/b"], f"reports/{DEFAULT_NAME}"),
    ("reports/", ["results/a", "elsewhere/a"], "reports/a"),  # one name: the files take it
    ("reports/", ["."], f"reports/{DEFAULT_NAME}"),
    ("reports/quick/q", ["results/quick"], "reports/quick/q"),
    ("q", ["results/quick"], "q")])
def test_report_target(out, sweeps, want):
    assert report_target(out, sweeps).as_posix() == want


def test_report_target_takes_an_existing_folder_without_a_slash(tmp_path):
    assert report_target(tmp_path, ["results/quick"]) == tmp_path / "quick"
    assert report_target(str(tmp_path / "new"), ["results/quick"]) == tmp_path / "new"  # OUT/NAME


def test_report_into_an_existing_folder(sweeps, tmp_path, cli):
    quick, _ = sweeps
    folder = tmp_path / "reports"
    folder.mkdir()
    code, out, err = cli("report", quick, "-o", folder, "--format", "md", "--quiet")
    assert code == 0, err
    assert "quick.md" in names(folder) and f"in {folder}\n" in out
    assert "Resolution report" in (folder / "quick.md").read_text()


def test_report_into_a_new_folder_named_with_a_slash(sweeps, tmp_path, cli):
    quick, other = sweeps
    code, _, err = cli("report", quick, other, "-o", f"{tmp_path / 'new' / 'both'}/", "--format", "md", "--quiet")
    assert code == 0, err
    written = names(tmp_path / "new" / "both")
    assert f"{DEFAULT_NAME}.md" in written and all(n.startswith(f"{DEFAULT_NAME}") for n in written), written


def test_report_out_name_still_names_the_files(sweeps, tmp_path, cli):
    quick, _ = sweeps
    code, _, err = cli("report", quick, "-o", tmp_path / "r" / "mine", "--format", "md", "--quiet")
    assert code == 0, err
    written = names(tmp_path / "r")
    assert "mine.md" in written and all(n.startswith("mine") for n in written), written


def test_api_report_takes_a_folder(sweeps, tmp_path):
    quick, _ = sweeps
    (tmp_path / "nb").mkdir()
    written = resbench.report(quick, tmp_path / "nb", formats="md")
    assert tmp_path / "nb" / "quick.md" in written and all(p.is_file() and p.parent == tmp_path / "nb"
                                                           for p in written)


# ---------------------------------------------------------------------------------------------
# --loader-workers and --ray-tasks


def test_sweep_help_names_loader_workers_and_ray_tasks(cli):
    code, out, _ = cli("sweep", "--help")
    assert code == 0
    assert "--loader-workers" in out and "--ray-tasks" in out
    assert " --workers" not in out and "--num-workers" not in out  # the old names run but are not offered


@pytest.mark.parametrize("old,new,needs", [("--workers", "--loader-workers", "--reader stream"),
                                           ("--num-workers", "--ray-tasks", "--executor ray")])
def test_an_old_name_still_runs_as_the_new_one(cli, tmp_path, old, new, needs):
    code, _, err = cli("sweep", "checkpoints/s4nd_iso_14.pt", old, "2", "-o", tmp_path / "x")
    # the new name's own check answers: the value reached the new option
    assert code == 2 and f"{new}: only with {needs}" in err and "deprecated" in err, err
    assert not (tmp_path / "x").exists()
    code, _, err = cli("sweep", "checkpoints/s4nd_iso_14.pt", old, "2", new, "2", "-o", tmp_path / "x")
    assert code == 2 and f"{old}: the old name of {new}" in err


def test_renamed():
    assert renamed(None, None, "--new", "--old") is None
    assert renamed(3, None, "--new", "--old") == 3
    assert renamed(None, 0, "--new", "--old") == 0  # 0 is a value, not "not given"
    with pytest.raises(ResbenchError, match="--old: the old name of --new"):
        renamed(1, 2, "--new", "--old")


@pytest.mark.parametrize("old", ["workers", "num_workers"])
def test_the_api_takes_the_clis_names(old):
    with pytest.raises(ResbenchError, match=f"unknown option '{old}'.*loader_workers.*ray_tasks"):
        resbench.sweep("checkpoints/s4nd_iso_14.pt", **{old: 2})
