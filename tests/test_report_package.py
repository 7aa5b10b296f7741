"""The report package's shape (modules under 400 lines, functions under 50, no import circle) and its one list of
sections: a section added to a Report appears in every format."""

import ast
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed: figures are only saved
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from resbench.report.html import write_html  # noqa: E402
from resbench.report.markdown import write_markdown  # noqa: E402
from resbench.report.pdf import write_pdf  # noqa: E402
from resbench.report.sections import (Report, figure_section, missing_section, table_section,  # noqa: E402
                                      text_section)
from resbench.report.tex import write_tex  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[1] / "resbench" / "report"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 50


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text()) for p in sorted(PACKAGE.glob("*.py"))}


def _imported_siblings(tree: ast.Module) -> set[str]:
    """The modules of resbench.report a module imports, anywhere in it (inside functions too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("resbench.report."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.ImportFrom) and node.module == "resbench.report":
            found.add("__init__")
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("resbench.report.")}
    return found


def test_every_module_and_function_is_small():
    modules = _modules()
    assert {"load", "tables", "stats", "figures", "sections", "markdown", "pdf", "tex", "html"} <= set(modules)
    for name, tree in modules.items():
        assert len((PACKAGE / f"{name}.py").read_text().splitlines()) < MAX_MODULE_LINES, name
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno + 1 < MAX_FUNCTION_LINES, f"{name}.{node.name}"


def test_no_module_of_the_package_imports_another_back():
    graph = {name: _imported_siblings(tree) for name, tree in _modules().items() if name != "__init__"}
    assert all("__init__" not in deps for deps in graph.values()), graph  # modules never import the package
    done, path = set(), []

    def visit(name: str) -> None:
        assert name not in path, " -> ".join([*path, name])  # a circle
        if name in done:
            return
        path.append(name)
        for dep in sorted(graph.get(name, ())):
            visit(dep)
        path.pop()
        done.add(name)

    for name in graph:
        visit(name)
    assert graph["tables"] and "tables" not in graph["load"]  # the walk saw edges, and they run one way


def test_a_section_appears_in_every_format(tmp_path):
    """One new table and one new figure in the list: each writer shows both, in the list's order, between the
    text sections around them."""
    table = pd.DataFrame({"checkpoint": ["a_1", "b"], "7": [1.5, -2.25]})
    table.attrs["note"] = "a note for the new table"
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2], [3, 4])
    try:
        report = Report("rep", [text_section("Scope", "scope", ["- sweeps: `x`"]),
                                figure_section("newfig", "A brand new figure", fig),
                                table_section("A brand new table", table), *missing_section(["a / 7 / native / on"])])
        out = tmp_path / "rep"
        fig.savefig(tmp_path / "rep_newfig.png")  # as save_figure writes it beside the markdown
        written = write_tex(out, report) + write_html(out, report) + write_markdown(out, report)
        files, pages = write_pdf(out, report)
    finally:
        plt.close(fig)
    assert {"rep_newfig.pdf", "rep.tex", "rep.html", "rep.md"} <= set(written) and files == ["rep.pdf"]
    for ext in ("md", "tex", "html"):
        text = (tmp_path / f"rep.{ext}").read_text()
        places = [text.index(s) for s in ("sweeps", "A brand new figure", "A brand new table", "a / 7 / native / on")]
        assert places == sorted(places), ext
        assert "a note for the new table" in text and re.search(r"2\.25", text), ext
    assert "(rep_newfig.png)" in (tmp_path / "rep.md").read_text()
    assert pages == [["title", "scope", "newfig", "A brand new table", "missing"]]  # a small report: one page
    assert len(PdfReader(tmp_path / "rep.pdf").pages) == 1
