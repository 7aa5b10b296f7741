"""Text shared by the report's writers: cells as text, markdown spans carried into other markups, and names
made literal in markdown (file names and paths from the user's folders)."""

from __future__ import annotations

import math
import re

import pandas as pd

__all__ = ["cell_text", "table_text", "inline", "md_text", "md_code", "md_link", "bullet", "no_rows", "NO_ROWS",
           "MISSING_TITLE", "MISSING_TEXT"]


MISSING_TITLE = "Missing cells"
MISSING_TEXT = "This report covers a partial sweep; these planned cells have no result:"
NO_ROWS = "(no rows)"
# markdown spans of the header lines: `code` or a ** that opens or closes bold
_SPAN = re.compile(r"(`[^`]*`|\*\*)")
# a cell that reads as a number: "89.1", "-3.2", "+5.0", "87.4 [86.7, 88.0]", "12.0\u2020"
_LEADING_NUMBER = re.compile(r"\s*[+\-\u2212]?(\d+\.?\d*|\.\d+)")


def cell_text(value) -> str:
    """A table cell as text, as the markdown writes it: floats to 2 decimals, NaN and None empty."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def table_text(table: pd.DataFrame) -> tuple[list[str], list[list[str]], list[bool]]:
    """(column names, rows of cell texts, numeric flags): a column is numeric, and right-aligned in both
    formats, when it has a value and every non-empty cell starts with a number."""
    columns = [str(c) for c in table.columns]
    rows = [[cell_text(v) for v in row] for row in table.itertuples(index=False, name=None)]
    numeric = [any(r[j] for r in rows) and all(_LEADING_NUMBER.match(r[j]) for r in rows if r[j])
               for j in range(len(columns))]
    return columns, rows, numeric


def inline(text: str, escape, bold: tuple[str, str], code: tuple[str, str]) -> str:
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


def no_rows(table: pd.DataFrame) -> str:
    """The one line an empty table is shown as: NO_ROWS, with the reason in its attrs["empty"] where it has one."""
    reason = table.attrs.get("empty")
    return f"{NO_ROWS[:-1]}: {reason})" if reason else NO_ROWS


def bullet(line: str) -> str:
    """A header line without its markdown bullet ("- ")."""
    return line[2:] if line.startswith("- ") else line
