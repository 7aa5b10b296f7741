"""Hostile and careless inputs, round three: names that look like markup, configs and logs of the wrong type,
factories that are not the user's, and files that are not what they claim; each is one line and exit code 2,
or a result that keeps the user's data whole."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from conftest import assert_user_error, make_checkpoint
from resbench.checkpoints import save_checkpoint


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()  # run_sweep sets it for the whole process
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# names that rich would read as markup

MARKUP_NAME = "[bold]x[ul]y[\\red]z[red]q"


@pytest.mark.parametrize("name", ["[/]x", MARKUP_NAME])
def test_info_shows_a_markup_name_as_text(tmp_path, cli, name):
    folder = tmp_path / "["
    folder.mkdir()
    path = save_checkpoint(make_checkpoint(), folder / f"{name}.pt")
    code, out, err = cli("info", path)
    assert code == 0, err
    assert f"{name}.pt" in out.replace("\n", "")


def test_info_shows_markup_in_the_provenance_as_text(tmp_path, cli):
    ckpt = make_checkpoint()
    ckpt.provenance["dataset"] = "[/]" + MARKUP_NAME
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    code, out, err = cli("info", path)
    assert code == 0, err
    assert "[/]" + MARKUP_NAME in out


def test_sweep_progress_and_summary_show_a_markup_name_as_text(trained, tmp_path, cli):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    shutil.copy(trained["conv"], folder / f"{MARKUP_NAME}.pt")
    code, out, err = cli("sweep", folder, "--test-res", "14", "--limit", "10", "-o", tmp_path / "out")
    assert code == 0, err
    assert MARKUP_NAME in err  # the per-cell progress line
    assert MARKUP_NAME in out  # the summary table


# ---------------------------------------------------------------------------------------------
# checkpoint configs and data stats the weights cannot back


def _raw_checkpoint(tmp_path, model="s4nd_iso", config=None, provenance=None, data_stats=None) -> Path:
    raw = make_checkpoint(model, d_state=4).to_dict() if model == "s4nd_iso" else make_checkpoint(model).to_dict()
    raw["config"].update(config or {})
    raw["provenance"].update(provenance or {})
    raw["data_stats"].update(data_stats or {})
    path = tmp_path / "bad.pt"
    torch.save(raw, path)
    return path


@pytest.mark.parametrize("config, named", [
    ({"d_state": 10 ** 12}, "d_state"), ({"d_state": 10 ** 9}, "d_state"), ({"d_model": 10 ** 9}, "d_model"),
    ({"n_layers": 200000}, "n_layers"), ({"d_model": "abc"}, "config"), ({"dt_min": float("nan")}, "dt_min"),
    ({"train_res": 10 ** 6}, "train_res"), ({"train_res": "x"}, "train_res"), ({"d_state": [1]}, "config"),
])
def test_a_config_its_weights_cannot_back_is_one_line(tmp_path, cli, config, named):
    code, _, err = cli("info", _raw_checkpoint(tmp_path, config=config))
    assert_user_error(code, err, "bad.pt", named)


@pytest.mark.parametrize("stats", [{"std": [0]}, {"mean": [float("nan")]}, {"std": [-1.0]}, {"mean": [0.5, 0.5]},
                                   {"std": ["x"]}])
def test_checkpoint_data_stats_are_checked_like_mean_and_std(tmp_path, cli, stats):
    code, _, err = cli("info", _raw_checkpoint(tmp_path, "conv2d_iso", data_stats=stats))
    assert_user_error(code, err, "bad.pt", "data_stats")


def test_provenance_train_res_must_be_the_configs(tmp_path, cli):
    path = _raw_checkpoint(tmp_path, "conv2d_iso", config={"train_res": 1000}, provenance={"train_res": 8})
    code, _, err = cli("info", path)
    assert_user_error(code, err, "bad.pt", "train_res")


# ---------------------------------------------------------------------------------------------
# official configs of the wrong type or size

OFFICIAL = Path(__file__).parent / "fixtures/official_s4/iso2d_dplr.pt"


def _official_with(tmp_path, path, value) -> Path:
    raw = torch.load(OFFICIAL, weights_only=True)
    raw = {k: v for k, v in raw.items() if k != "cases"}
    node = raw["hyper_parameters"]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    out = tmp_path / "edited.pt"
    torch.save(raw, out)
    return out


@pytest.mark.parametrize("path, value, named", [
    (("loader",), [1, 2], "loader"), (("dataset",), "cifar", "dataset"), (("train",), 3, "train"),
    (("model", "d_model"), "abc", "model.d_model"), (("model", "d_model"), 10 ** 9, "model.d_model"),
    (("model", "n_layers"), 200000, "model.n_layers"), (("model", "n_layers"), 1.5, "model.n_layers"),
    (("model", "prenorm"), "no", "model.prenorm"),
    (("loader", "train_resolution"), "x", "loader.train_resolution"),
    (("loader", "train_resolution"), float("nan"), "loader.train_resolution"),
    (("loader", "train_resolution"), -2, "loader.train_resolution"),
    (("loader", "img_size"), 10 ** 12, "loader.img_size"), (("loader", "img_size"), 100000, "train_res"),
    (("model", "layer", "d_state"), 10 ** 12, "d_state"), (("model", "layer", "d_state"), "x", "model.layer"),
])
def test_official_options_of_the_wrong_type_or_size_are_one_line(tmp_path, cli, path, value, named):
    src = _official_with(tmp_path, path, value)
    code, _, err = cli("import-official", src, "-o", tmp_path / "out.pt")
    assert_user_error(code, err, named)
    assert not (tmp_path / "out.pt").exists()


# ---------------------------------------------------------------------------------------------
# cells.jsonl lines that are JSON but not cell rows

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from resbench.errors import ResbenchError  # noqa: E402
from resbench.store import RESULT_COLUMNS, read_results, read_superseded, write_tables  # noqa: E402


# any resbench checkpoint config: built or refused in one line

_CONFIG_KEYS = ["in_chans", "num_classes", "train_res", "d_model", "n_layers", "dropout", "kernel_size", "d_state",
                "bandlimit", "mask", "dt_min", "dt_max", "unknown_option"]
_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-3, 40) | st.sampled_from([4096, 10 ** 12, 2 ** 63])
                       | st.floats() | st.text(max_size=6),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                   max_size=3), max_leaves=5)
_RAW_OWN: dict = {}


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(["conv2d_iso", "s4nd_iso"]),
       edits=st.lists(st.tuples(st.sampled_from(_CONFIG_KEYS + ["provenance.train_res", "data_stats.mean",
                                                                "data_stats.std"]), _VALUES), min_size=1, max_size=3))
def test_any_checkpoint_config_is_built_or_refused_in_one_line(model, edits):
    """Random values in a resbench checkpoint's config, provenance train_res and data stats: the file loads and
    builds (what `info` and `sweep` do), or it is one ResbenchError line; never another exception."""
    import copy

    from resbench.checkpoints import describe, own

    if model not in _RAW_OWN:
        _RAW_OWN[model] = (make_checkpoint(model, d_state=4) if model == "s4nd_iso" else make_checkpoint(model)).to_dict()
    raw = copy.deepcopy(_RAW_OWN[model])
    for key, value in edits:
        section, _, name = key.rpartition(".")
        raw[section or "config"][name] = value
    try:
        describe(own.from_raw(raw, Path("bad.pt"), "0" * 64))
    except ResbenchError as e:
        assert len(str(e).splitlines()) == 1 and "bad.pt" in str(e), str(e)


@pytest.fixture(scope="module")
def logged(trained, tmp_path_factory) -> Path:
    """A one-checkpoint sweep folder at two sizes: real rows to damage."""
    from conftest import quiet_sweep
    from resbench.sweep import SweepConfig

    out = tmp_path_factory.mktemp("logged")
    threads = torch.get_num_threads()
    quiet_sweep(SweepConfig(checkpoints=[str(trained["conv"])], out=str(out), test_res=[(7, 7), (14, 14)],
                            policy=["native"], limit=10, threads=1))
    torch.set_num_threads(threads)
    return out


def _with_line(logged: Path, folder: Path, line: str) -> Path:
    shutil.copytree(logged, folder, dirs_exist_ok=True)
    with open(folder / "cells.jsonl", "a") as f:
        f.write(line + "\n")
    return folder


BAD_LINES = ["42", "[1,2]", '"x"', "null", '{"checkpoint_sha256":[1]}', "{}"]


@pytest.mark.parametrize("line", BAD_LINES)
@pytest.mark.parametrize("command", ["sweep", "report", "merge"])
def test_a_log_line_that_is_not_a_row_is_one_line(trained, logged, tmp_path, cli, line, command):
    folder = _with_line(logged, tmp_path / "out", line)
    args = {"sweep": ["sweep", trained["conv"], "--test-res", "7,14", "--policy", "native", "--limit", "10",
                      "-o", folder],
            "report": ["report", folder, "-o", tmp_path / "r" / "x", "--format", "md"],
            "merge": ["merge", folder, "-o", tmp_path / "merged"]}[command]
    code, _, err = cli(*args)
    assert_user_error(code, err, "cells.jsonl", "line 3")


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3), max_leaves=6)


@st.composite
def damaged_rows(draw):
    """A logged row with some columns replaced by any JSON value, or any JSON value at all."""
    if draw(st.booleans()):
        return draw(_JSON)
    row = {**ROW, "test_res": draw(st.sampled_from(["7", "14", "21"]))}
    for column in draw(st.lists(st.sampled_from(RESULT_COLUMNS + ["class_n", "class_names"]), max_size=3)):
        if draw(st.booleans()):
            row[column] = draw(_JSON)
        else:
            row.pop(column, None)
    return row


ROW = {"model": "conv2d_iso", "checkpoint": "conv2d_iso_14", "checkpoint_sha256": "ab" * 32, "dataset": "synthetic",
       "dims": 2, "train_res": "14", "test_res": "7", "policy": "native", "bandlimit": "none", "alpha": None,
       "seed": 0, "precision": "fp32", "device": "cpu", "limit": 10, "test_images": "first 10 of 1000",
       "class_names": ["a", "b"], "warning": "", "seen_in_training": False, "trained_bandlimit": None, "recipe": "14:2",
       "n": 10, "correct": 3, "accuracy": 0.3, "ci_low": 0.1, "ci_high": 0.6, "loss": 1.7, "seconds": 0.002,
       "images_per_s": 5652.7, "error": "", "class_n": [5, 5], "class_correct": [3, 0]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(damaged_rows(), min_size=1, max_size=3))
def test_any_log_line_is_read_or_refused_in_one_line(logged, tmp_path, rows):
    from resbench.report import load_sweeps, missing_cells, report_tables

    folder = tmp_path / "h"
    shutil.rmtree(folder, ignore_errors=True)
    for row in rows:
        _with_line(logged, folder, json.dumps(row))
    try:
        write_tables(folder)
        read_results(folder), read_superseded(folder)
        df, metas = load_sweeps([folder])
        missing_cells(df, metas)
        report_tables(df)
    except ResbenchError as e:
        assert len(str(e).splitlines()) == 1 and "cells.jsonl" in str(e), str(e)


# ---------------------------------------------------------------------------------------------
# Ray options


@pytest.mark.parametrize("address, named", [("127.0.0.1:99999999999999999999999", "port"), ("127.0.0.1:0", "port"),
                                            ("127.0.0.1:65536", "port"), ("127.0.0.1:²", "port"),
                                            ("a" * 70 + ".example:80", "host")])
def test_an_address_out_of_range_is_one_line(ckpt_dir, tmp_path, cli, address, named):
    pytest.importorskip("ray")
    code, _, err = cli("sweep", ckpt_dir, "--test-res", "14", "--limit", "4", "--executor", "ray", "--address", address,
                       "-o", tmp_path / "out")
    assert_user_error(code, err, "--address", named)
    assert not (tmp_path / "out").exists()


class _FakeRay:
    """What start_ray and _task_slots ask of Ray, recorded: no cluster is started."""

    def __init__(self, cpus):
        self.cpus, self.init_kwargs = cpus, None

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        self.init_kwargs = kwargs

    def cluster_resources(self):
        return {"CPU": float(self.cpus)}


def test_ray_tasks_never_past_the_cpus(monkeypatch):
    import os
    import sys

    from resbench.sweep import ray_executor as executors
    from resbench.sweep import SweepConfig

    fake = _FakeRay(cpus=4)
    monkeypatch.setitem(sys.modules, "ray", fake)
    cfg = SweepConfig(checkpoints=[], out="", executor="ray", ray_tasks=10000)
    assert executors.start_ray(cfg)
    assert fake.init_kwargs["num_cpus"] <= (os.cpu_count() or 1)
    assert executors._task_slots(cfg) == 4  # the cluster's 4 CPUs, not 10,000 tasks
    assert executors._task_slots(SweepConfig(checkpoints=[], out="", executor="ray", ray_tasks=3)) == 3


# ---------------------------------------------------------------------------------------------
# factories that are not the user's


def _factory_sweep(spec, out):
    return ["sweep", "--model", spec, "--dataset", "synthetic", "--train-res", "16", "--test-res", "16",
            "--limit", "8", "-o", out]


@pytest.mark.parametrize("spec, named", [("os:abort", "standard library"), ("sys:exit", "standard library"),
                                         ("builtins:breakpoint", "standard library"),
                                         ("torch:manual_seed", "dependencies"), ("resbench.cli:main", "dependencies"),
                                         ("factory_models:aborts", "not a function 'factory_models' defines")])
def test_a_factory_must_be_the_users_own(tmp_path, cli, spec, named):
    code, _, err = cli(*_factory_sweep(spec, tmp_path / "out"))
    assert_user_error(code, err, spec.split(":")[0], named)
    assert not (tmp_path / "out").exists()


def test_a_factory_that_exits_is_one_line(tmp_path, cli):
    code, _, err = cli(*_factory_sweep("factory_models:exits", tmp_path / "out"))
    assert_user_error(code, err, "factory_models:exits", "SystemExit")
    assert not (tmp_path / "out").exists()


def test_stdlib_factories_never_run_in_a_real_process(tmp_path):
    from conftest import run_cli

    for spec in ("os:abort", "sys:exit", "builtins:breakpoint"):
        result = run_cli(*_factory_sweep(spec, tmp_path / "out"), timeout=60)
        assert result.returncode == 2 and "standard library" in result.stderr, (spec, result.stderr)


# ---------------------------------------------------------------------------------------------
# names in the markdown report

HOSTILE_NAMES = ["pipe|name", "new\nline", "<img src=x onerror=alert(9)>$_%&#}{", "[x](javascript:alert(1))",
                 "*bold* `tick` ~~s~~"]


def _md_lines_outside_code(md: str) -> str:
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", md)  # code spans hold text literally


@pytest.fixture(scope="module")
def hostile_report(trained, tmp_path_factory):
    """A sweep of one checkpoint under each hostile name, reported as markdown into OUT 'r/a) b'."""
    from conftest import quiet_sweep
    from resbench.report import write_report
    from resbench.sweep import SweepConfig

    root = tmp_path_factory.mktemp("hostile")
    folder = root / "ckpts"
    folder.mkdir()
    for i, name in enumerate(HOSTILE_NAMES):  # distinct files: the same bytes under two names is another case
        ckpt = make_checkpoint(seed=i, num_classes=4)
        save_checkpoint(ckpt, folder / f"{name}.pt")
    threads = torch.get_num_threads()
    quiet_sweep(SweepConfig(checkpoints=[str(folder)], out=str(root / "sw"), test_res=[(14, 14)], policy=["native"],
                            limit=4, threads=1, dataset="synthetic"))
    torch.set_num_threads(threads)
    out = root / "r" / "a) b"
    result = write_report([root / "sw"], out, ["md", "png"])
    return out, result


def test_markdown_tables_keep_one_cell_per_hostile_name(hostile_report):
    out, _ = hostile_report
    md = out.with_suffix(".md").read_text()
    tables = [block for block in md.split("\n\n") if block.startswith("| ")]
    assert tables
    for block in tables:
        rows = block.strip().splitlines()
        cells = [len(re.split(r"(?<!\\)\|", row)) for row in rows]
        assert len(set(cells)) == 1, block  # every row as wide as the header: no name split a cell or a row
    names_shown = sum(1 for block in tables for row in block.splitlines() if "pipe\\|name" in row)
    assert names_shown >= 1


def test_markdown_holds_no_raw_html_or_link_from_a_name(hostile_report):
    out, _ = hostile_report
    text = _md_lines_outside_code(out.with_suffix(".md").read_text())
    assert not re.search(r"(?<!\\)<img", text) and "\\<img src=x onerror=alert(9)\\>" in text
    assert "](javascript" not in text
    assert not re.search(r"(?<!\\)\*bold(?<!\\)\*", text)


def test_markdown_figure_links_survive_a_parenthesis_and_a_space_in_out(hostile_report):
    from urllib.parse import unquote

    out, result = hostile_report
    md = out.with_suffix(".md").read_text()
    targets = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", md)
    pngs = {f for f in result["written"] if f.endswith(".png")}
    assert pngs and {unquote(t) for t in targets} == pngs
    for target in targets:
        assert (out.parent / unquote(target)).is_file()


# ---------------------------------------------------------------------------------------------
# the same bytes under two names


def test_the_same_file_under_two_names_is_one_line(trained, tmp_path, cli):
    folder = tmp_path / "d"
    folder.mkdir()
    shutil.copy(trained["conv"], folder / "a.pt")
    shutil.copy(trained["conv"], folder / "b.pt")
    code, _, err = cli("sweep", folder, "--test-res", "14", "--limit", "4", "-o", tmp_path / "out")
    assert_user_error(code, err, "a.pt", "b.pt", "same file")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# non-finite logits


def test_nan_weights_make_an_error_row(tmp_path, cli):
    import pandas as pd

    ckpt = make_checkpoint(num_classes=4)
    first = next(k for k, v in ckpt.state_dict.items() if v.is_floating_point())
    ckpt.state_dict[first] = torch.full_like(ckpt.state_dict[first], float("nan"))
    path = save_checkpoint(ckpt, tmp_path / "nan.pt")
    code, _, err = cli("sweep", path, "--test-res", "14", "--limit", "8", "--policy", "native", "--quiet",
                       "-o", tmp_path / "out")
    assert code == 0, err
    df = pd.read_csv(tmp_path / "out" / "results.csv", keep_default_na=False)
    assert len(df) == 1 and "NonFiniteLogits" in df["error"][0] and "NaN" in df["error"][0]


def test_a_factory_returning_nan_logits_makes_error_rows(tmp_path, cli):
    import pandas as pd

    code, _, err = cli(*_factory_sweep("factory_models:nan_logits", tmp_path / "out"), "--quiet")
    assert code == 0, err
    df = pd.read_csv(tmp_path / "out" / "results.csv", keep_default_na=False)
    assert len(df) and df["error"].str.contains("NonFiniteLogits").all()


# ---------------------------------------------------------------------------------------------
# spreadsheet formulas in names


@pytest.mark.parametrize("name", ['=HYPERLINK("x","y")', "+cmd", "-1+1", "@SUM(A1)"])
def test_a_name_that_starts_a_formula_is_guarded_in_the_csv(trained, tmp_path, cli, name):
    import csv

    import pandas as pd

    from resbench.store import read_results

    folder = tmp_path / "d"
    folder.mkdir()
    shutil.copy(trained["conv"], folder / f"{name}.pt")
    out = tmp_path / "out"
    code, _, err = cli("sweep", folder, "--test-res", "14", "--limit", "4", "--policy", "native", "--quiet", "-o", out)
    assert code == 0, err
    for table in ("results.csv", "per_class.csv"):
        with open(out / table, newline="") as f:
            cells = [cell for row in csv.reader(f) for cell in row]
        assert not any(cell.startswith(("=", "+", "@")) or cell.startswith("-") and not cell[1:2].isdigit()
                       for cell in cells), table
        assert f"'{name}" in cells, table
    assert read_results(out)["checkpoint"].tolist() == [name]
    (out / "cells.jsonl").unlink()  # the table alone, as a folder written before the logs: read back whole
    assert read_results(out)["checkpoint"].tolist() == [name]
    assert pd.read_csv(out / "results.csv")["checkpoint"].tolist() == [f"'{name}"]


# ---------------------------------------------------------------------------------------------
# a log that is a link


def test_a_linked_cell_log_is_refused_and_its_target_untouched(trained, tmp_path, cli):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n")
    (out / "cells.jsonl").symlink_to(target)
    code, _, err = cli("sweep", trained["conv"], "--test-res", "14", "--limit", "4", "-o", out)
    assert_user_error(code, err, "cells.jsonl", "link")
    assert target.read_text() == "keep\n"


def test_append_row_never_writes_through_a_link(tmp_path):
    from resbench.errors import ResbenchError
    from resbench.store import append_row

    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n")
    (tmp_path / "cells.jsonl").symlink_to(target)
    with pytest.raises(ResbenchError, match="cells.jsonl"):
        append_row(tmp_path / "cells.jsonl", {"a": 1})
    assert target.read_text() == "keep\n"


# ---------------------------------------------------------------------------------------------
# merge checks everything before it writes


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("broken", ["runs", "meta", "log"])
def test_merge_of_a_broken_source_leaves_out_as_it_was(logged, tmp_path, cli, broken):
    src = Path(shutil.copytree(logged, tmp_path / "src"))
    good = Path(shutil.copytree(logged, tmp_path / "GOOD"))
    before = _tree(good)
    if broken == "runs":
        (src / "runs" / "zz-broken.json").write_text("{not json")
    elif broken == "meta":
        (src / "meta.json").write_text("[1, 2]")
    else:
        with open(src / "cells.jsonl", "a") as f:
            f.write("42\n")
    code, _, err = cli("merge", src, "-o", good)
    assert_user_error(code, err, str(src))
    assert _tree(good) == before
    code, _, err = cli("report", good, "-o", tmp_path / "r" / "x", "--format", "md")
    assert code == 0, err


# ---------------------------------------------------------------------------------------------
# archives torch would choke on


def _fifo_tar(path: Path) -> Path:
    """A legacy (tar) torch file whose `storages` member is a FIFO: torch's reader would block on it forever."""
    import io
    import tarfile

    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("sys_info")
        blob = b"x" * 10
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
        fifo = tarfile.TarInfo("storages")
        fifo.type = tarfile.FIFOTYPE
        tar.addfile(fifo)
    return path


def _padded_zip(path: Path, pad: int) -> Path:
    """A torch zip file whose pickle is followed by `pad` zero bytes, stored deflated (a few KB on disk)."""
    import io
    import zipfile

    buf = io.BytesIO()
    torch.save(make_checkpoint().to_dict(), buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                dst.writestr(info.filename, data + b"\0" * pad, compress_type=zipfile.ZIP_DEFLATED)
            else:
                dst.writestr(info, data)
    return path


@pytest.mark.parametrize("command", ["info", "import-official"])
def test_a_tar_with_a_fifo_member_is_refused_before_torch_reads_it(tmp_path, cli, command, monkeypatch):
    import tempfile

    temp = tmp_path / "temp"  # torch's legacy reader extracts tar members here; nothing may be left behind
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    path = _fifo_tar(tmp_path / "fifo.ckpt")
    args = [command, path] + (["-o", tmp_path / "o.pt"] if command == "import-official" else [])
    code, _, err = cli(*args)
    assert_user_error(code, err, "fifo.ckpt", "storages", "not a regular file")
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("command", ["info", "import-official"])
def test_a_zip_bomb_pickle_is_refused_before_it_is_inflated(tmp_path, cli, monkeypatch, command):
    from resbench.checkpoints import archive

    monkeypatch.setattr(archive, "MAX_PICKLE_BYTES", 1 << 20)  # the rule, at a size a test can afford
    path = _padded_zip(tmp_path / "bomb.pt", 2 << 20)
    assert path.stat().st_size < 100_000
    args = [command, path] + (["-o", tmp_path / "o.pt"] if command == "import-official" else [])
    code, _, err = cli(*args)
    assert_user_error(code, err, "bomb.pt", "data.pkl", "unpacks to")


def test_a_pickle_below_the_bound_still_loads(tmp_path, cli):
    path = _padded_zip(tmp_path / "padded.pt", 1000)
    code, out, err = cli("info", path)
    assert code == 0, err


_TRAINER_FILE = Path(__file__).parent / "fixtures" / "official_s4" / "iso2d_dplr_trainer.ckpt"


@pytest.mark.parametrize("case", ["resbench", "padded below the bound", "official trainer", "import-official"])
def test_a_checkpoint_pickle_is_read_once(tmp_path, monkeypatch, case):
    import zipfile

    from resbench.checkpoints import load_checkpoint, read_official

    files = {"resbench": lambda: save_checkpoint(make_checkpoint(), tmp_path / "c.pt"),
             "padded below the bound": lambda: _padded_zip(tmp_path / "padded.pt", 1 << 20)}
    path = files.get(case, lambda: _TRAINER_FILE)()
    loads, opened = [], []
    real_load, real_open = torch.load, zipfile.ZipFile.open
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loads.append(f) or real_load(f, *a, **k))
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: opened.append(str(getattr(
        name, "filename", name))) or real_open(self, name, *a, **k))
    (read_official if case == "import-official" else load_checkpoint)(path)
    assert len(loads) == 1, f"torch.load ran {len(loads)} times"
    assert not [n for n in opened if n.endswith(".pkl")], f"the pickle was also read by zipfile: {opened}"


# ---------------------------------------------------------------------------------------------
# any official config: converted or refused in one line

_OFFICIAL_KEYS = [("model", "d_model"), ("model", "n_layers"), ("model", "prenorm"), ("model", "transposed"),
                  ("model", "norm"), ("model", "residual"), ("model", "pool"), ("model", "n_repeat"),
                  ("model", "bidirectional"), ("model", "layer"), ("model", "layer", "d_state"),
                  ("model", "layer", "channels"), ("model", "layer", "rank"), ("model", "layer", "l_max"),
                  ("model", "layer", "bandlimit"), ("model", "layer", "dt_min"), ("model", "layer", "n_ssm"),
                  ("model", "layer", "init"), ("model", "layer", "bidirectional"), ("model", "layer", "activation"),
                  ("model", "layer", "final_act"), ("model", "layer", "trank"), ("model", "layer", "linear"),
                  ("loader",), ("loader", "img_size"), ("loader", "train_resolution"), ("dataset",),
                  ("dataset", "_name_"), ("dataset", "grayscale"), ("encoder",), ("decoder",), ("decoder", "mode"),
                  ("train",), ("train", "seed")]
_SMALL_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 40) | st.sampled_from([10 ** 12, 2 ** 63])
                           | st.floats() | st.text(max_size=6),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                       max_size=3), max_leaves=5)


@settings(max_examples=40, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(_OFFICIAL_KEYS), _SMALL_JSON), min_size=1, max_size=3))
def test_any_official_config_is_converted_or_refused_in_one_line(edits):
    import copy

    from resbench.checkpoints import official_checkpoint

    raw = copy.deepcopy({k: v for k, v in _official_raw().items() if k != "cases"})
    for path, value in edits:
        node = raw["hyper_parameters"]
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value
    try:
        ckpt = official_checkpoint(raw, OFFICIAL, "0" * 64)
        ckpt.build_model()
    except ResbenchError as e:
        assert len(str(e).splitlines()) == 1, str(e)


_RAW: dict = {}


def _official_raw() -> dict:
    if not _RAW:
        _RAW.update(torch.load(OFFICIAL, weights_only=True))
    return _RAW


# ---------------------------------------------------------------------------------------------
# a full disk


def test_the_atomic_writer_leaves_no_temp_file_when_the_disk_is_full(tmp_path, monkeypatch):
    import os

    from resbench.store import files as store

    real_fsync = os.fsync

    def full(fd):
        real_fsync(fd)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)
    with pytest.raises(ResbenchError, match="No space left"):
        store.atomic_write_bytes(tmp_path / "per_class.csv", b"x" * 100)
    assert list(tmp_path.iterdir()) == []
