"""The Python face: resbench.sweep / load_results / report, with the CLI's defaults, and docs/python.md runs."""

import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest

import resbench
from conftest import REPO, run_cli, tiny_config, tiny_train
from resbench.api import _channel_values
from resbench.errors import ResbenchError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    tiny_train(tiny_config(), folder / "m.pt")  # S4ND trained at 14 on synthetic fields
    return folder / "m.pt"


def test_sweep_uses_the_clis_default_grid(tiny, tmp_path, keep_torch_threads):
    df = resbench.sweep(str(tiny), tmp_path / "api", test_res="7,14", limit=16, quiet=True)
    run_cli("sweep", str(tiny), "--test-res", "7,14", "--limit", "16", "--quiet", "-o", str(tmp_path / "cli"))
    cli = pd.read_csv(tmp_path / "cli" / "results.csv")
    cells = ["test_res", "policy", "bandlimit"]
    assert sorted(map(tuple, df[cells].astype(str).values)) == sorted(map(tuple, cli[cells].astype(str).values))
    assert (df.sort_values(cells)["correct"].values == cli.sort_values(cells)["correct"].values).all()


def test_load_results_gives_numeric_sizes_and_the_csv_columns(tiny, tmp_path, keep_torch_threads):
    resbench.sweep(str(tiny), tmp_path / "r", test_res="7,14,28,21x14", limit=16, quiet=True)
    df = resbench.load_results(tmp_path / "r")
    assert list(df.columns) == list(pd.read_csv(tmp_path / "r" / "results.csv").columns)
    square = sorted(v for v in df["test_res"].unique() if not isinstance(v, tuple))
    assert square == [7, 14, 28]  # as numbers: '14' < '28' < '7' as text
    assert (21, 14) in set(df["test_res"]) and set(df["train_res"]) == {14}
    assert df.attrs["out"] == str(tmp_path / "r")
    with pytest.raises(ResbenchError, match="no such sweep folder"):
        resbench.load_results(tmp_path / "missing")


def test_a_sweep_without_out_leaves_nothing_on_disk(tiny, keep_torch_threads):
    before = set(Path(tempfile.gettempdir()).glob("resbench-sweep-*"))
    df = resbench.sweep(str(tiny), test_res="14", limit=16, quiet=True)
    assert len(df) > 0 and df.attrs["out"] is None
    assert set(Path(tempfile.gettempdir()).glob("resbench-sweep-*")) == before
    with pytest.raises(ResbenchError, match="log_samples"):
        resbench.sweep(str(tiny), test_res="14", limit=16, quiet=True, log_samples=True)


@pytest.mark.parametrize("value,expected", [(0.286, (0.286,)), ("0.5,0.4", (0.5, 0.4)), ([1, 2.5], (1.0, 2.5)),
                                            (None, None)])
def test_mean_and_std_take_what_the_cli_takes(value, expected):
    assert _channel_values(value, "mean") == expected


@pytest.mark.parametrize("value", ["abc", [True], {"a": 1}, ["x"]])
def test_bad_mean_is_a_one_line_error(value):
    with pytest.raises(ResbenchError, match="mean="):
        _channel_values(value, "mean")


def test_report_writes_its_files(tiny, tmp_path, keep_torch_threads):
    resbench.sweep(str(tiny), tmp_path / "r", test_res="7,14", limit=16, quiet=True)
    written = resbench.report(tmp_path / "r", tmp_path / "rep" / "x", formats="md")
    assert (tmp_path / "rep" / "x.md") in written
    assert all(p.is_file() for p in written)
    assert "Resolution report" in (tmp_path / "rep" / "x.md").read_text()


def test_the_modules_stay_modules():
    import resbench.sweep as engine

    assert callable(resbench.sweep) and resbench.sweep is engine and hasattr(engine, "run_sweep")
    assert callable(resbench.report) and hasattr(resbench.report, "write_report")
    assert resbench.sweep_models is resbench.api.sweep


def test_the_python_page_runs(tmp_path, monkeypatch, keep_torch_threads):
    """Every python block of docs/python.md, in order, in a scratch folder with the shipped checkpoints."""
    page = (REPO / "docs" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert blocks
    (tmp_path / "checkpoints").symlink_to(REPO / "checkpoints")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "docs/python.md", "exec"), scope)  # noqa: S102 - the page is ours
    assert (tmp_path / "results" / "nb-report" / "nb.md").is_file()


def test_sweep_takes_every_cli_option_by_its_name():
    import inspect

    from resbench.api import OPTIONS
    from resbench.cli.sweep import sweep_cmd

    api = set(inspect.signature(resbench.api.sweep).parameters) | set(OPTIONS)
    # CHECKPOINTS and --model are both `models`; --dry-run prints a plan, which a notebook has no use for
    elsewhere = {"checkpoints", "models", "dry_run"}
    cli = {p.name for p in sweep_cmd.params if not getattr(p, "hidden", False)}  # hidden: old names of renamed ones
    assert cli - elsewhere - api == set()
    assert {"loader_workers", "ray_tasks"} <= api and not {"workers", "num_workers"} & api


def test_sweep_builds_the_config_the_cli_builds(monkeypatch, tmp_path):
    """Both faces with nothing but a checkpoint and a folder give the same SweepConfig: the same defaults."""
    import resbench.sweep as engine

    configs = []
    monkeypatch.setattr(engine, "run_sweep", lambda cfg, quiet=False: configs.append(cfg) or pd.DataFrame())
    monkeypatch.setattr(resbench.api, "load_results", lambda folder: pd.DataFrame())
    ckpt = str(REPO / "checkpoints" / "s4nd_iso_14.pt")
    resbench.sweep(ckpt, tmp_path / "api", quiet=True)
    from click.testing import CliRunner

    from resbench.cli import cli

    result = CliRunner().invoke(cli, ["sweep", ckpt, "--quiet", "-o", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    api_cfg, cli_cfg = (dict(vars(c), out=None, models=None) for c in configs)
    assert api_cfg == cli_cfg


@pytest.mark.parametrize("name", ["sweep", "load_results", "report"])
def test_each_function_has_a_numpy_docstring_naming_its_parameters(name):
    import inspect

    function = getattr(resbench.api, name)
    doc = inspect.getdoc(function)
    assert "\nParameters\n----------\n" in doc and "\nReturns\n-------\n" in doc
    block = doc.split("\nParameters\n----------\n")[1].split("\nReturns\n")[0]
    heads = [line.split(" : ")[0] for line in block.splitlines() if line and not line.startswith(" ")]
    documented = {name.strip().lstrip("*") for head in heads for name in head.split(",")}  # "mean, std" names two
    params = {p.lstrip("*") for p in inspect.signature(function).parameters}
    assert params - documented == set(), doc
