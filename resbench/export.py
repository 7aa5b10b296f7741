"""LaTeX and self-contained HTML versions of a report: the markdown's header, missing cells, figures and tables.

LaTeX: OUT.tex has no preamble, so `\\input{OUT.tex}` works inside any document whose preamble loads
booktabs (table rules), graphicx (figures), adjustbox (wide tables shrunk to the line width) and textcomp
(the dagger, plus-minus and minus signs; part of the LaTeX kernel since 2020). Figures are the PDFs
OUT_<figure>.pdf, named relative to OUT.tex: a document in another folder adds that folder with
`\\graphicspath{{folder/}}`. OUT_standalone.tex is a minimal article that loads these packages and inputs
OUT.tex, to compile as it is.

HTML: OUT.html is one page with no external resource: figures inlined as base64 PNG, CSS and a small
script inline that sorts a table by the column whose header is clicked.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import unicodedata
from pathlib import Path

import pandas as pd

from resbench.errors import ResbenchError
from resbench.store import atomic_write_bytes

__all__ = ["write_tex", "write_html", "cell_text", "tex_escape", "md_text", "md_code", "md_link"]

HTML_DPI = 110  # resolution of the figures inlined in OUT.html
MISSING_TITLE = "Missing cells"
MISSING_TEXT = "This report covers a partial sweep; these planned cells have no result:"
NO_ROWS = "(no rows)"

# markdown spans of the header lines: `code` or a ** that opens or closes bold
_SPAN = re.compile(r"(`[^`]*`|\*\*)")
# a cell that reads as a number: "89.1", "-3.2", "+5.0", "87.4 [86.7, 88.0]", "12.0\u2020"
_LEADING_NUMBER = re.compile(r"\s*[+\-\u2212]?(\d+\.?\d*|\.\d+)")

# characters LaTeX treats specially, and the non-ASCII ones reports use, as commands that work in
# pdflatex, xelatex and lualatex alike; the trailing {} ends a command word without eating a space.
# Brackets are braced: "[" after \\, \item or \midrule would be read as that command's optional argument.
_TEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "#": r"\#", "$": r"\$", "%": r"\%", "&": r"\&",
        "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
        ">": r"\textgreater{}", "|": r"\textbar{}", "[": "{[}", "]": "{]}",
        "\u2020": r"\textdagger{}", "\u2021": r"\textdaggerdbl{}", "\u00a7": r"\S{}",  # section sign: a subset
        "\u00b1": r"\textpm{}", "\u2212": r"\textminus{}",
        "\u00d7": r"\texttimes{}", "\u00b0": r"\textdegree{}", "\u2013": "--", "\u2014": "---", "\u2026": r"\dots{}",
        "\u2018": "`", "\u2019": "'", "\u201c": "``", "\u201d": "''", "\u00a0": "~",
        "\u2264": r"\ensuremath{\leq}", "\u2265": r"\ensuremath{\geq}", "\u2248": r"\ensuremath{\approx}",
        "\u2192": r"\ensuremath{\rightarrow}", "\u03b1": r"\ensuremath{\alpha}", "\u00b5": r"\ensuremath{\mu}",
        "\u03bc": r"\ensuremath{\mu}"}

# OUT_standalone.tex: the packages OUT.tex needs, and OUT.tex itself
STANDALONE = [r"% Compile this file (pdflatex, lualatex or xelatex) to get the report as a PDF.",
              r"\documentclass[11pt]{article}", r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}",
              r"\usepackage[margin=2cm]{geometry}", r"\usepackage{textcomp}", r"\usepackage{booktabs}",
              r"\usepackage{graphicx}", r"\usepackage{adjustbox}", r"\begin{document}"]
# a report name that \input and \includegraphics take as it is (a dot would read as a file extension)
_TEX_FILE_NAME = re.compile(r"[A-Za-z0-9_-]+")

_CSS = """body { font-family: sans-serif; max-width: 78rem; margin: 1.5rem auto; padding: 0 1rem; color: #222; }
code { font-family: monospace; word-break: break-all; }
img { max-width: 100%; height: auto; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #ddd; text-align: left; }
thead th { border-bottom: 2px solid #444; cursor: pointer; user-select: none; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
.note { font-size: 0.85rem; color: #555; }"""

# Sort a table by the clicked header's column: cells that start with a number ("87.4 [86.7, 88.0]", "12.0†",
# "-3.2") by that number and before text, text in natural order, empty cells last either way; a second click
# on the same header reverses the order. Equal keys keep their order (Array.prototype.sort is stable).
_SCRIPT = r"""(function () {
  var NUMBER = /^\s*([+\-\u2212]?(?:\d+\.?\d*|\.\d+)(?:[eE][+\-]?\d+)?)/;
  function key(text) {
    var m = NUMBER.exec(text);
    return m ? parseFloat(m[1].replace("\u2212", "-")) : null;
  }
  function compare(a, b) {
    var x = key(a), y = key(b);
    if (x !== null && y !== null && x !== y) return x < y ? -1 : 1;
    if ((x === null) !== (y === null)) return x === null ? 1 : -1;
    return a.localeCompare(b, undefined, {numeric: true});
  }
  function sortBy(table, th, col) {
    var body = table.tBodies[0];
    var descending = th.getAttribute("aria-sort") === "ascending";
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) {
      var a = r.cells[col].textContent.trim(), b = s.cells[col].textContent.trim();
      if (!a || !b) return !a - !b;
      return descending ? compare(b, a) : compare(a, b);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () { sortBy(table, th, col); });
    });
  });
})();"""


# ----------------------------------------------------------------------------------------------
# shared: cells, columns and the markdown spans of the header


def cell_text(value) -> str:
    """A table cell as text, as the markdown writes it: floats to 2 decimals, NaN and None empty."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def _table_text(table: pd.DataFrame) -> tuple[list[str], list[list[str]], list[bool]]:
    """(column names, rows of cell texts, numeric flags): a column is numeric, and right-aligned in both
    formats, when it has a value and every non-empty cell starts with a number."""
    columns = [str(c) for c in table.columns]
    rows = [[cell_text(v) for v in row] for row in table.itertuples(index=False, name=None)]
    numeric = [any(r[j] for r in rows) and all(_LEADING_NUMBER.match(r[j]) for r in rows if r[j])
               for j in range(len(columns))]
    return columns, rows, numeric


def _inline(text: str, escape, bold: tuple[str, str], code: tuple[str, str]) -> str:
    """Markdown `code` and **bold** spans of `text` in another markup, every other character escaped."""
    out, in_bold = [], False
    for i, part in enumerate(_SPAN.split(text)):
        if i % 2 == 0:  # text between spans (split puts the matched spans at odd positions)
            out.append(escape(part))
        elif part == "**":
            out.append(bold[in_bold])
            in_bold = not in_bold
        else:
            out.append(code[0] + escape(part[1:-1]) + code[1])
    if in_bold:  # an unclosed ** bolds to the end of the line, as in markdown renderers that accept it
        out.append(bold[1])
    return "".join(out)


# markdown: characters that would start emphasis, code, HTML, strikethrough, math or end a table cell
_MD_SPECIAL = re.compile(r"([\\`*~$|<>&])")
_MD_LOOSE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # intraword _ is never emphasis


def md_text(text) -> str:
    """Any text (a file name, a path) as literal markdown inline text: one line, no cell split, no HTML, no
    emphasis, no link; names made of letters, digits, intraword _, '-', '.', '/' and spaces are unchanged."""
    text = " ".join(str(text).splitlines()) if text is not None else ""
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _MD_LOOSE_UNDERSCORE.sub(r"\\_", text)
    return text.replace("](", "]\\(").replace("[", "\\[") if "](" in text else text


def md_code(text) -> str:
    """Text as one markdown code span (outside tables): one line, a fence longer than any run of backticks in it."""
    text = " ".join(str(text).splitlines())
    if "`" not in text:
        return f"`{text}`"
    fence = "`" * (max(len(run) for run in re.findall("`+", text)) + 1)
    return f"{fence} {text} {fence}"


def md_link(target: str) -> str:
    """A relative file name as a markdown link target: spaces, parentheses and the rest percent-encoded."""
    from urllib.parse import quote

    return quote(str(target))


def _bullet(line: str) -> str:
    """A header line without its markdown bullet ("- ")."""
    return line[2:] if line.startswith("- ") else line


# ----------------------------------------------------------------------------------------------
# LaTeX


def tex_escape(text) -> str:
    """`text` as LaTeX source that prints it: specials escaped, line breaks as spaces, non-ASCII as commands.

    Other non-ASCII characters: Latin-1 letters stay (every LaTeX engine reads them as UTF-8); the rest lose
    their accents where that leaves ASCII (NFKD), else print as "?", so that pdflatex never stops on them."""
    out, previous = [], ""
    for ch in " ".join(str(text).splitlines()):
        if ch in _TEX:
            out.append(_TEX[ch])
        elif ch == "-" and previous == "-":  # "--" as typed, not the en dash LaTeX makes of it
            out.append("{}-")
        elif ord(ch) < 128 or ("\u00c0" <= ch <= "\u00ff" and ch.isalpha()):
            out.append(ch)
        else:
            folded = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(tex_escape(folded) if folded.isascii() else "?")
        previous = ch
    return "".join(out)


def _tex_inline(text: str) -> str:
    return _inline(text, tex_escape, (r"\textbf{", "}"), (r"\texttt{", "}"))


def _tex_table(table: pd.DataFrame) -> list[str]:
    """A booktabs tabular, shrunk to the line width when wider (never enlarged), and its note."""
    if table.empty:
        lines = [rf"\emph{{{NO_ROWS}}}", ""]
    else:
        columns, rows, numeric = _table_text(table)
        spec = "".join("r" if n else "l" for n in numeric)
        lines = [r"\begin{center}", r"\begin{adjustbox}{max width=\linewidth}", rf"\begin{{tabular}}{{{spec}}}",
                 r"\toprule", " & ".join(map(tex_escape, columns)) + r" \\", r"\midrule",
                 *[" & ".join(map(tex_escape, row)) + r" \\" for row in rows],
                 r"\bottomrule", r"\end{tabular}", r"\end{adjustbox}", r"\end{center}", ""]
    if table.attrs.get("note"):
        lines += [rf"\noindent{{\small Note: {tex_escape(table.attrs['note'])}\par}}", ""]
    return lines


def _tex_figure(title: str, name: str) -> list[str]:
    # keepaspectratio with both limits: a tall figure (many heatmap panels) stays on one page
    return [rf"\subsection*{{{tex_escape(title)}}}", r"\begin{center}",
            rf"\includegraphics[width=\linewidth,height=0.85\textheight,keepaspectratio]{{{name}}}",
            r"\end{center}", ""]


def _itemize(items: list[str]) -> list[str]:
    if not items:  # an itemize without an \item is a LaTeX error
        return []
    return [r"\begin{itemize}", *[rf"\item {item}" for item in items], r"\end{itemize}", ""]


def write_tex(out: Path, title: str, header: list[str], missing: list[str], figures: dict,
              tables: dict[str, pd.DataFrame]) -> list[str]:
    """Write OUT.tex (for \\input), OUT_standalone.tex (to compile) and each figure as OUT_<key>.pdf.

    `figures`: key -> (title, open matplotlib figure); `tables`: section title -> table (attrs["note"] is
    printed under it). Returns the names of the files written."""
    out = Path(out)
    if not _TEX_FILE_NAME.fullmatch(out.name):
        raise ResbenchError(f"{out}: LaTeX cannot name this file in \\input; for --format tex use a report name "
                            f"of letters, digits, _ and - only")
    written = []
    tex = [rf"% {tex_escape(title)}. Written by resbench; \input this file from a document that loads",
           "% booktabs, graphicx, adjustbox and textcomp (see the _standalone.tex file beside it).",
           rf"\section*{{{tex_escape(title)}}}", "", *_itemize([_tex_inline(_bullet(line)) for line in header])]
    if missing:
        tex += [rf"\subsection*{{{MISSING_TITLE}}}", tex_escape(MISSING_TEXT), "",
                *_itemize([tex_escape(m) for m in missing])]
    for key, (fig_title, fig) in figures.items():
        name = f"{out.name}_{key}.pdf"
        buf = io.BytesIO()
        fig.savefig(buf, format="pdf", bbox_inches="tight")
        atomic_write_bytes(out.with_name(name), buf.getvalue())
        written.append(name)
        tex += _tex_figure(fig_title, name)
    for table_title, table in tables.items():
        tex += [rf"\subsection*{{{tex_escape(table_title)}}}", "", *_tex_table(table)]
    atomic_write_bytes(out.with_name(f"{out.name}.tex"), "\n".join(tex).encode())
    standalone = [*STANDALONE, rf"\input{{{out.name}.tex}}", r"\end{document}", ""]
    atomic_write_bytes(out.with_name(f"{out.name}_standalone.tex"), "\n".join(standalone).encode())
    return written + [f"{out.name}.tex", f"{out.name}_standalone.tex"]


# ----------------------------------------------------------------------------------------------
# HTML


def _escape(text) -> str:
    return html.escape(str(text))


def _html_table(table: pd.DataFrame) -> list[str]:
    """A sortable <table> in a box that scrolls sideways when it is wider than the page, and its note."""
    if table.empty:
        lines = [f"<p><em>{NO_ROWS}</em></p>"]
    else:
        columns, rows, numeric = _table_text(table)
        td = ['<td class="num">' if n else "<td>" for n in numeric]
        lines = ['<div class="wide"><table class="sortable">',
                 "<thead><tr>" + "".join(f'<th title="sort">{_escape(c)}</th>' for c in columns) + "</tr></thead>",
                 "<tbody>", *["<tr>" + "".join(f"{t}{_escape(v)}</td>" for t, v in zip(td, row)) + "</tr>"
                              for row in rows], "</tbody></table></div>"]
    if table.attrs.get("note"):
        lines.append(f'<p class="note">Note: {_escape(table.attrs["note"])}</p>')
    return lines


def _png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=HTML_DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def write_html(out: Path, title: str, header: list[str], missing: list[str], figures: dict,
               tables: dict[str, pd.DataFrame]) -> list[str]:
    """Write OUT.html: one page, figures inlined as PNG, every table sortable by a click on its header.

    `figures`: key -> (title, open matplotlib figure); `tables`: section title -> table (attrs["note"] is
    printed under it). Returns the names of the files written."""
    out = Path(out)
    code, bold = ("<code>", "</code>"), ("<strong>", "</strong>")
    page = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<link rel="icon" href="data:,">',  # no favicon request: the page loads nothing from anywhere
            f"<title>{_escape(title)}</title>", f"<style>\n{_CSS}\n</style>", "</head>", "<body>",
            f"<h1>{_escape(title)}</h1>", "<ul>",
            *[f"<li>{_inline(_bullet(line), _escape, bold, code)}</li>" for line in header], "</ul>"]
    if missing:
        page += [f"<h2>{MISSING_TITLE}</h2>", f"<p>{_escape(MISSING_TEXT)}</p>", "<ul>",
                 *[f"<li>{_escape(m)}</li>" for m in missing], "</ul>"]
    for fig_title, fig in figures.values():
        page += [f"<h2>{_escape(fig_title)}</h2>", f'<img alt="{_escape(fig_title)}" src="{_png_data_uri(fig)}">']
    for table_title, table in tables.items():
        page += [f"<h2>{_escape(table_title)}</h2>", *_html_table(table)]
    page += [f"<script>\n{_SCRIPT}\n</script>", "</body>", "</html>", ""]
    atomic_write_bytes(out.with_name(f"{out.name}.html"), "\n".join(page).encode())
    return [f"{out.name}.html"]
