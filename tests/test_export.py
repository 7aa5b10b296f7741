"""Tests for the report's LaTeX and HTML writers (resbench.report.tex, .html): the LaTeX files (structure, escaping, figures, a compile where TeX is installed)
and the HTML page (structure, inlined figures, sortable tables in a real browser)."""

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed: figures are only saved
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from resbench.errors import ResbenchError  # noqa: E402
from resbench.report.html import write_html  # noqa: E402
from resbench.report.markup import cell_text  # noqa: E402
from resbench.report.sections import (Report, figure_section, missing_section, table_section,  # noqa: E402
                                      text_section)
from resbench.report.tex import tex_escape, write_tex  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TEX_ENGINES = ("pdflatex", "lualatex", "tectonic")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HEADER = ["- **SUBSET: cells use the first 100 of 10000 test images**",
          "- command: `cli.py sweep checkpoints/ -o results/x_y --limit 100` (started 2025-01-01, finished 2025-01-02)",
          "- **warning** for `s4nd_iso_14`: normalisation & statistics #2 at 50% ~ {x}",
          "- versions: resbench 0.1, torch 2.4", "- **an unclosed bold <span> runs to the end"]
MISSING = ["s4nd_iso_14 / 7 / native / 0.3", "conv_#1 / 14x14 / resize-input / none"]
# values the page must sort by their leading number; the NaN becomes an empty cell (always last)
ACCURACY = ["89.1", "-3.2", "+5.0", "87.4 [86.7, 88.0]", "12.0\u2020", float("nan"), "\u22127.5", "100"]
NOTE = "\u2020: seen in training; \u00b1 1.2 points, alpha \u2265 0.5, 3 \u2212 1; $ ^ ~ \\ { } _ % & #"
# characters that must never reach the LaTeX source unescaped (outside the commands this module writes)
RAW_TEX_SPECIALS = "#$%&_^~"


def sample_tables() -> dict[str, pd.DataFrame]:
    """A table with specials, NaN, None, bools and a note; a wide one; an empty one (3 tables, 2 with rows)."""
    checkpoints = ["s4nd_iso_14", "conv_#1 & co", "50% [draft]", "ckconv{28}", "a^b~c", "x$y", "a<b>c</b>", "last"]
    small = pd.DataFrame({"checkpoint": checkpoints, "train_res": ["14", "14", "28", "28", "7", "7", "14", "14"],
                          "accuracy (%)": ACCURACY, "n": [100, 200, 300, 400, 500, 600, 700, 800],
                          "drop": [1.234, float("nan"), -2.0, 0.5, None, 3.25, -0.125, 7.0],
                          "seen": [True, False, True, False, True, False, True, None]})
    small.attrs["note"] = NOTE
    wide = pd.DataFrame([[f"{i}.{j}_x" for j in range(24)] for i in range(3)],
                        columns=[f"test_res_{j}" for j in range(24)])
    return {"Native accuracy & more (100% _test_)": small, "A wide table": wide,
            "Bandlimit ablation #2": pd.DataFrame(columns=["checkpoint", "on - off"])}


@pytest.fixture
def figures():
    """Two small open figures, closed after the test."""
    figs = {}
    for key, title in (("accuracy", "Accuracy vs test resolution"), ("heatmap", "Train x test accuracy")):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([7, 14, 28], [50, 90, 70])
        figs[key] = (title, fig)
    yield figs
    for _, fig in figs.values():
        plt.close(fig)


def sample_report(name: str, figures: dict, tables: dict, missing=MISSING) -> Report:
    """The report the writers get: HEADER as its scope, the figures (key -> (title, figure)), the tables, then
    `missing`."""
    sections = [text_section("Scope", "scope", HEADER)]
    sections += [figure_section(key, title, fig) for key, (title, fig) in figures.items()]
    sections += [table_section(title, table) for title, table in tables.items()]
    return Report(name, sections + missing_section(missing))


@pytest.fixture
def tex_report(tmp_path, figures):
    """(OUT, names written) of write_tex on the sample tables."""
    out = tmp_path / "report" / "demo"
    return out, write_tex(out, sample_report(out.name, figures, sample_tables()))


@pytest.fixture
def html_report(tmp_path, figures):
    """(OUT.html, names written) of write_html on the sample tables."""
    out = tmp_path / "report" / "demo"
    return out.with_name("demo.html"), write_html(out, sample_report(out.name, figures, sample_tables()))


# ---------------------------------------------------------------------------------------------
# LaTeX: parsing helpers


TABULAR = re.compile(r"\\begin\{tabular\}\{([^}]*)\}\n(.*?)\\end\{tabular\}", re.S)
INCLUDE = re.compile(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}")


def unescaped(char: str, text: str) -> list[str]:
    """Occurrences of `char` not escaped by a backslash (a pair \\\\ escapes itself)."""
    return [m for m in re.findall(r"\\.|.", text, re.S) if m == char]


def brace_depths_ok(text: str) -> bool:
    """Unescaped braces nest: the depth never goes below zero and ends at zero."""
    depth = 0
    for token in re.findall(r"\\.|[{}]", text, re.S):  # \{ \} \\ are escapes, not group braces
        depth += {"{": 1, "}": -1}.get(token, 0)
        if depth < 0:
            return False
    return depth == 0


def tex_rows(body: str) -> list[str]:
    """The rows of a tabular body (lines ending in \\\\), rules left out."""
    return [line[:-2].strip() for line in body.splitlines() if line.endswith(r"\\")]


def tex_cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)&", row)]


def source_text(tex: str) -> str:
    """The .tex without comment lines, figure file names, column separators (" & ", counted elsewhere), and
    the commands and escapes this module writes: what is left is text that LaTeX prints as it is."""
    lines = [INCLUDE.sub("", line) for line in tex.splitlines() if not line.startswith("%")]
    lines = [line.replace(" & ", " ") if line.endswith(r"\\") else line for line in lines]
    return re.sub(r"\\[A-Za-z]+\*?|\\.", "", "\n".join(lines))


# ---------------------------------------------------------------------------------------------
# LaTeX


def test_tex_writes_the_report_the_wrapper_and_one_pdf_per_figure(tex_report):
    out, written = tex_report
    want = ["demo_accuracy.pdf", "demo_heatmap.pdf", "demo.tex", "demo_standalone.tex"]
    assert sorted(written) == sorted(want)
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(want)  # no temporary file left behind
    tex = out.with_name("demo.tex").read_text()
    assert r"\documentclass" not in tex and r"\begin{document}" not in tex  # \input-able
    standalone = out.with_name("demo_standalone.tex").read_text()
    assert standalone.index(r"\documentclass") < standalone.index(r"\begin{document}") < standalone.index(
        r"\input{demo.tex}") < standalone.index(r"\end{document}")
    for package in ("booktabs", "graphicx", "textcomp"):
        assert re.search(rf"\\usepackage(\[[^\]]*\])?\{{{package}\}}", standalone), package


def test_tex_tables_are_booktabs_with_one_cell_per_column(tex_report):
    out, _ = tex_report
    tex = out.with_name("demo.tex").read_text()
    tabulars = TABULAR.findall(tex)
    tables = sample_tables()
    assert len(tabulars) == sum(not t.empty for t in tables.values())
    for (spec, body), table in zip(tabulars, [t for t in tables.values() if not t.empty]):
        assert len(spec) == len(table.columns) and set(spec) <= set("lrc")
        lines = body.splitlines()
        assert [line for line in lines if line.endswith("rule")] == [r"\toprule", r"\midrule", r"\bottomrule"]
        assert lines.index(r"\toprule") < lines.index(r"\midrule") < lines.index(r"\bottomrule") == len(lines) - 1
        rows = tex_rows(body)
        assert len(rows) == len(table) + 1  # the header row, then one per row
        for row in rows:
            assert len(unescaped("&", row)) == len(table.columns) - 1, row
    # every tabular is shrunk to the line width when wider (a box and \resizebox), never overflowing the page
    assert tex.count(r"\begin{lrbox}{\resbenchtable}") == len(tabulars)
    assert tex.count(r"\resizebox{\linewidth}{!}{\usebox{\resbenchtable}}") == len(tabulars)
    assert "adjustbox" not in tex
    assert r"\emph{(no rows)}" in tex  # the empty table is a line of text, not a tabular without rows


def test_tex_cells_nan_and_none_are_empty_and_floats_have_two_decimals(tex_report):
    out, _ = tex_report
    spec, body = TABULAR.findall(out.with_name("demo.tex").read_text())[0]
    header, *rows = [tex_cells(r) for r in tex_rows(body)]
    drop = [r[header.index("drop")] for r in rows]
    assert drop == ["1.23", "", "-2.00", "0.50", "", "3.25", "-0.12", "7.00"]
    assert rows[5][header.index("accuracy (\\%)")] == ""  # the NaN among the strings
    assert rows[7][header.index("seen")] == ""  # None
    assert spec[header.index("n")] == "r" and spec[header.index("checkpoint")] == "l"  # numbers right-aligned


def test_tex_escapes_every_special_and_the_unicode_marks(tex_report):
    out, _ = tex_report
    tex = out.with_name("demo.tex").read_text()
    assert tex.isascii(), sorted({c for c in tex if not c.isascii()})  # dagger, plus-minus, minus, >= as commands
    for command in (r"\textdagger{}", r"\textpm{}", r"\textminus{}", r"\ensuremath{\geq}"):
        assert command in tex, command
    for escaped in (r"\_", r"\%", r"\&", r"\#", r"\$", r"\{", r"\}", r"\textasciicircum{}",
                    r"\textasciitilde{}", r"\textbackslash{}"):
        assert escaped in tex, escaped
    printed = source_text(tex)
    for char in RAW_TEX_SPECIALS:
        assert char not in printed, (char, [line for line in printed.splitlines() if char in line][:3])
    assert brace_depths_ok(tex)
    # a "[" opening a cell would be read as the optional argument of the \\ or \midrule before it
    assert "\n[" not in tex and r"\\ [" not in tex


def test_tex_header_markdown_becomes_bold_and_typewriter(tex_report):
    out, _ = tex_report
    tex = out.with_name("demo.tex").read_text()
    assert r"\item \textbf{SUBSET: cells use the first 100 of 10000 test images}" in tex
    assert r"\texttt{cli.py sweep checkpoints/ -o results/x\_y -{}-limit 100}" in tex
    assert r"\item \textbf{warning} for \texttt{s4nd\_iso\_14}: normalisation \& statistics \#2" in tex
    assert r"\item \textbf{an unclosed bold \textless{}span\textgreater{} runs to the end}" in tex
    assert "**" not in tex and "`" not in tex
    assert r"\subsection*{Missing cells}" in tex and r"\item \texttt{conv\_\#1 / 14x14 / resize-input / none}" in tex
    assert "Note: " + tex_escape(NOTE) in tex


def test_tex_figures_are_the_pdfs_written_beside_it(tex_report):
    out, _ = tex_report
    targets = INCLUDE.findall(out.with_name("demo.tex").read_text())
    assert targets == ["demo_accuracy.pdf", "demo_heatmap.pdf"]  # relative names, in the figures' order
    for target in targets:
        assert out.with_name(target).read_bytes().startswith(b"%PDF-"), target


def test_tex_refuses_a_name_latex_cannot_input(tmp_path, figures):
    with pytest.raises(ResbenchError, match="my report"):
        write_tex(tmp_path / "my report", sample_report("my report", figures, {}, []))
    assert not any(tmp_path.iterdir())  # checked before anything is written


@pytest.mark.parametrize("text, want", [
    ("a_b & 50% #1", r"a\_b \& 50\% \#1"),
    ("$x^2$ ~ {y} \\", r"\$x\textasciicircum{}2\$ \textasciitilde{} \{y\} \textbackslash{}"),
    ("12.0\u2020 \u00b1 \u2212 \u2265", r"12.0\textdagger{} \textpm{} \textminus{} \ensuremath{\geq}"),
    ("s4nd_iso_7 [\u00a7subset 300]", r"s4nd\_iso\_7 {[}\S{}subset 300{]}"),
    ("[86.7, 88.0]", "{[}86.7, 88.0{]}"), ("--limit", "-{}-limit"), ("line\nbreak", "line break"),
    ("caf\u00e9 \u0151 \u2603", "caf\u00e9 o ?")])
def test_tex_escape(text, want):
    assert tex_escape(text) == want


@pytest.mark.parametrize("value, want", [(1.234, "1.23"), (float("nan"), ""), (None, ""), (3, "3"), (True, "True"),
                                         ("12.0\u2020", "12.0\u2020")])
def test_cell_text(value, want):
    assert cell_text(value) == want


def tex_engine() -> str | None:
    return next((engine for engine in TEX_ENGINES if shutil.which(engine)), None)


@pytest.mark.slow
@pytest.mark.skipif(tex_engine() is None, reason=f"no TeX engine installed (none of {', '.join(TEX_ENGINES)} "
                                                 "on PATH), so the standalone file cannot be compiled here")
def test_tex_standalone_compiles(tex_report):
    out, _ = tex_report
    engine = tex_engine()
    command = [engine, "demo_standalone.tex"] if engine == "tectonic" else [
        engine, "-interaction=nonstopmode", "-halt-on-error", "demo_standalone.tex"]
    result = subprocess.run(command, cwd=out.parent, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert out.with_name("demo_standalone.pdf").read_bytes().startswith(b"%PDF-")


# ---------------------------------------------------------------------------------------------
# HTML: structure


class PageParser(HTMLParser):
    """Tables (each with its thead flag, header cells and rows of cell text), images, links and elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.images, self.urls, self.tags, self.scripts = [], [], [], [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.urls += [attrs[a] for a in ("src", "href") if attrs.get(a)]
        if tag == "table":
            self.tables.append({"thead": False, "head": [], "rows": []})
        elif tag == "thead":
            self.tables[-1]["thead"] = True
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("th", "td"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "script":
            self.scripts.append(attrs)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("th", "td"):
            table = self.tables[-1]
            (table["head"] if tag == "th" else table["rows"][-1]).append(self._cell)
            self._cell = None


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_html_has_one_sortable_table_per_table_with_the_cells_as_text(html_report):
    page, written = html_report
    assert written == ["demo.html"] and sorted(p.name for p in page.parent.iterdir()) == ["demo.html"]
    parsed = parse_page(page)
    tables = [t for t in sample_tables().values() if not t.empty]
    assert len(parsed.tables) == len(tables)
    for got, table in zip(parsed.tables, tables):
        assert got["thead"] and got["head"] == [str(c) for c in table.columns]
        rows = [r for r in got["rows"] if r]  # the header's <tr> holds <th> cells only
        assert rows == [[cell_text(v) for v in row] for row in table.itertuples(index=False, name=None)]
    # the specials came through as text: "&", "<", "{" ... and no element was made of them
    first = [r for r in parsed.tables[0]["rows"] if r]
    assert first[1][0] == "conv_#1 & co" and first[6][0] == "a<b>c</b>"
    assert set(parsed.tags) <= {"html", "head", "meta", "link", "title", "style", "body", "h1", "h2", "ul", "li",
                                "strong", "code", "p", "em", "img", "div", "table", "thead", "tbody", "tr", "th", "td",
                                "script"}
    text = page.read_text(encoding="utf-8")
    assert "Note: " in text and "(no rows)" in text and "<strong>warning</strong> for <code>s4nd_iso_14</code>" in text
    assert "<li><strong>an unclosed bold &lt;span&gt; runs to the end</strong></li>" in text


def test_html_inlines_every_figure_as_png_and_loads_nothing(html_report):
    page, _ = html_report
    parsed = parse_page(page)
    assert len(parsed.images) == 2
    for img in parsed.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix) and img.get("alt")
        assert base64.b64decode(img["src"][len(prefix):], validate=True).startswith(PNG_MAGIC)
    assert all(url.startswith("data:") for url in parsed.urls), [u[:60] for u in parsed.urls]
    assert all("src" not in s for s in parsed.scripts)  # the script is inline
    assert not re.search(r"https?://|@import|url\(", page.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# HTML: in a browser


def leading_number(text: str) -> float:
    match = re.match(r"\s*([+\-\u2212]?(\d+\.?\d*|\.\d+))", text)
    return float(match.group(1).replace("\u2212", "-"))


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (.ci/run installs the apt package)")
def test_html_in_chromium_shows_the_figures_and_sorts_a_column(html_report):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    page_file, _ = html_report
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth, e.getBoundingClientRect().width, "
                       "e.getBoundingClientRect().height])")
            table = page.locator("table").first
            column = list(sample_tables().values())[0].columns.get_loc("accuracy (%)")
            cells = table.locator(f"tbody tr td:nth-child({column + 1})")
            before = cells.all_text_contents()
            header = table.locator("thead th").nth(column)
            header.click()
            ascending = cells.all_text_contents()
            header.click()
            descending = cells.all_text_contents()
            page.wait_for_timeout(100)  # let a late console message arrive
        finally:
            browser.close()
    assert not errors, errors
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert len(images) == 2
    for complete, natural_width, width, height in images:
        assert complete and natural_width > 0 and width > 0 and height > 0
    assert before == [cell_text(v) for v in ACCURACY]  # the table's own order, which is not sorted
    for order, reverse in ((ascending, False), (descending, True)):
        assert sorted(order, key=lambda t: t == "") == order  # the empty cell last, either way
        numbers = [leading_number(t) for t in order if t]
        assert numbers == sorted(numbers, reverse=reverse) and len(numbers) == len(ACCURACY) - 1, order
    assert sorted(ascending) == sorted(before)  # the rows moved, none was lost


# ---------------------------------------------------------------------------------------------
# end to end: the report command


def test_report_command_writes_md_tex_and_html(tmp_path):
    from click.testing import CliRunner

    from resbench.cli import cli
    from test_report import FIGURES, grid, synthetic_sweep

    cells = grid("s4nd_iso_14", "s4nd_iso", 14, [7, 14, 28], bandlimits=("on", "off"),
                 accuracy=lambda s, p, b: 0.9 - 0.01 * int(s)) + grid("conv2d_iso_14", "conv2d_iso", 14, [7, 14, 28])
    sweep = synthetic_sweep(tmp_path / "sweep", cells, extra_planned=[["conv2d_iso_14", "56", "native", "none"]])
    out = tmp_path / "out" / "demo"
    result = CliRunner().invoke(cli, ["report", str(sweep), "-o", str(out), "--format", "md,tex,html"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    names = {p.name for p in out.parent.iterdir()}
    want = {"demo.md", "demo.tex", "demo_standalone.tex", "demo.html"} | {f"demo_{key}.pdf" for key in FIGURES}
    assert want <= names and "demo.pdf" not in names
    tex = out.with_name("demo.tex").read_text()
    assert INCLUDE.findall(tex) == [f"demo_{key}.pdf" for key in FIGURES]
    assert brace_depths_ok(tex) and tex.isascii()
    # the three formats hold the same tables
    md = out.with_name("demo.md").read_text()
    md_tables = sum(line.startswith("|---") for line in md.splitlines())
    assert len(TABULAR.findall(tex)) == len(parse_page(out.with_name("demo.html")).tables) == md_tables > 0
    assert "conv2d\\_iso\\_14 / 56 / native / none" in tex  # the missing cell
    assert "conv2d_iso_14 / 56 / native / none" in out.with_name("demo.html").read_text()
