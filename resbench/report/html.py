"""The HTML version of a report: one page with no external resource (figures inlined as base64 PNG, CSS and a
small script inline that sorts a table by the column whose header is clicked), the sections in their order."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from resbench.report.markup import bullet, inline, no_rows, table_text
from resbench.report.sections import Report, Section
from resbench.store import atomic_write_bytes

__all__ = ["write_html"]

HTML_DPI = 110  # resolution of the figures inlined in OUT.html
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


def _escape(text) -> str:
    return html.escape(str(text))


def _html_table(table: pd.DataFrame, note: str) -> list[str]:
    """A sortable <table> in a box that scrolls sideways when it is wider than the page, and its note."""
    if table.empty:  # one line, its reason in it: no note
        return [f"<p><em>{_escape(no_rows(table))}</em></p>"]
    columns, rows, numeric = table_text(table)
    td = ['<td class="num">' if n else "<td>" for n in numeric]
    lines = ['<div class="wide"><table class="sortable">',
             "<thead><tr>" + "".join(f'<th title="sort">{_escape(c)}</th>' for c in columns) + "</tr></thead>",
             "<tbody>", *["<tr>" + "".join(f"{t}{_escape(v)}</td>" for t, v in zip(td, row)) + "</tr>"
                          for row in rows], "</tbody></table></div>"]
    if note:
        lines.append(f'<p class="note">Note: {_escape(note)}</p>')
    return lines


def _png_data_uri(fig) -> str:
    """The figure as a PNG data URI, cut to what it draws (as the PNG and PDF files are): a key or note placed
    outside the axes, wider than the canvas, would otherwise be cut off at the canvas's edges."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=HTML_DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _html_lines(section: Section) -> list[str]:
    """A section of markdown lines as a list (the lead as a paragraph above it)."""
    code, bold = ("<code>", "</code>"), ("<strong>", "</strong>")
    lead = [f"<p>{inline(section.lead, _escape, bold, code)}</p>"] if section.lead else []
    return [*lead, "<ul>", *[f"<li>{inline(bullet(line), _escape, bold, code)}</li>" for line in section.lines],
            "</ul>"]


def _html_section(section: Section) -> list[str]:
    if section.lines is not None:
        return [f"<h2>{_escape(section.title)}</h2>", *_html_lines(section)]
    if section.figure is None:
        return [f"<h2>{_escape(section.title)}</h2>", *_html_table(section.table, section.note)]
    return [f"<h2>{_escape(section.title)}</h2>",
            f'<img alt="{_escape(section.title)}" src="{_png_data_uri(section.figure)}">']


def write_html(out: Path, report: Report) -> list[str]:
    """Write OUT.html: one page, figures inlined as PNG, every table sortable by a click on its header.

    Returns the names of the files written."""
    out = Path(out)
    page = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<link rel="icon" href="data:,">',  # no favicon request: the page loads nothing from anywhere
            f"<title>{_escape(report.title)}</title>", f"<style>\n{_CSS}\n</style>", "</head>", "<body>",
            f"<h1>{_escape(report.title)}</h1>"]
    for section in report.sections:
        page += _html_section(section)
    page += [f"<script>\n{_SCRIPT}\n</script>", "</body>", "</html>", ""]
    atomic_write_bytes(out.with_name(f"{out.name}.html"), "\n".join(page).encode())
    return [f"{out.name}.html"]
