"""The PDF report's pieces: each section as blocks of a known width and height (a title with lines of text, a table
or part of one with its note, a figure as an image) that draw themselves on an A4 landscape page. A block is the
page's full width or half of it, so two small tables or figures share a row."""

from __future__ import annotations

import functools
import io
import textwrap
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from resbench.report.markup import cell_text, inline, no_rows
from resbench.report.sections import Report, Section

__all__ = ["A4_LANDSCAPE", "PAGE_MARGIN", "HEADER_PT", "TABLE_PT", "ROWS_PER_PDF_PAGE", "CONTENT_W", "COLUMN_GAP",
           "Block", "report_blocks"]

A4_LANDSCAPE = (11.69, 8.27)  # inches: the size of every PDF page
PAGE_MARGIN = 0.5  # inches around the page's content
HEADER_PT = 9  # font size of text lines and of the notes under tables
TABLE_PT = 9  # font size of table cells
TITLE_PT = 10  # a section's title
ROWS_PER_PDF_PAGE = 20  # table rows a block holds at most: with its title and note it fits a page
COMPACT = 0.7  # a compact table (attrs["compact"]: the leading summary): font and rows at this share
COMPACT_ROWS = 26  # rows a compact table's block holds at most
LINE_IN = 1.45 * HEADER_PT / 72  # a line of HEADER_PT text, with matplotlib's spacing of 1.2, stays under 1.45 em
ROW_SCALE = 1.35  # table rows: matplotlib sizes them for its 10 pt default font (x 1.2); this fits TABLE_PT text
ROW_IN = 10 * 1.2 * ROW_SCALE / 72
CHAR_EM = 0.55  # width of a character of DejaVu Sans, in em, on average in text (digits are 0.64, most letters less)
TITLE_LINE_IN = 1.3 * TITLE_PT / 72  # a line of a section's title
NOTE_GAP_IN = 0.1  # between a table and its note, and under a title
COLUMN_GAP = 0.3  # inches between two half-width blocks
CONTENT_W = A4_LANDSCAPE[0] - 2 * PAGE_MARGIN
CONTENT_H = A4_LANDSCAPE[1] - 2 * PAGE_MARGIN
HALF_W = (CONTENT_W - COLUMN_GAP) / 2
SQUEEZE = 1.08  # a table up to this much wider than a column goes in one, its font shrunk to fit (by 8% at most)
FIGURE_SHRINK = 0.6  # a figure may shrink to this share of its page-filling size to share a page
MAX_LISTED_MISSING = 40  # missing cells the PDF names (the other formats name all)


@dataclass


class Block:
    """A piece of a page: `draw(page, left, top, height)` draws it with its top left corner at (left, top) (inches
    from the page's bottom left) within `height` and returns where it ended; `shrink`: the share of its height
    it can do with (figures only)."""

    key: str  # the section it belongs to
    width: float  # inches: CONTENT_W or HALF_W
    height: float  # inches
    draw: Callable[[object, float, float, float], float]
    shrink: float = 1.0
    also: tuple[str, ...] = ()  # the other sections it holds (the tables with no rows, gathered in one block)


def _text(page, left: float, top: float, text: str, **kw) -> None:
    page.text(left / A4_LANDSCAPE[0], top / A4_LANDSCAPE[1], text, va="top", ha="left", **kw)


def _wrapped(text: str, width: float, pt: float = HEADER_PT) -> list[str]:
    """`text` in lines of `pt` text that fit `width` inches."""
    chars = int(width * 72 / (CHAR_EM * pt))
    return textwrap.wrap(text, chars, subsequent_indent="    ", break_on_hyphens=False) or [""]


def _heading(title: str, width: float) -> tuple[list[str], float]:
    """A title's lines at `width` and the height they take with the space under them."""
    lines = _wrapped(title, width, TITLE_PT)
    return lines, TITLE_LINE_IN * len(lines) + NOTE_GAP_IN


def _draw_heading(page, left: float, top: float, lines: list[str]) -> float:
    _text(page, left, top, "\n".join(lines), fontsize=TITLE_PT, weight="bold", linespacing=1.1)
    return top - TITLE_LINE_IN * len(lines) - NOTE_GAP_IN


def _lines_block(key: str, title: str, lines: list[str], width: float = CONTENT_W) -> Block:
    """A title and lines of text, wrapped to `width`."""
    heading, heading_in = _heading(title, width) if title else ([], 0.0)
    lines = [part for line in lines for part in _wrapped(line, width)]

    def draw(page, left, top, height):
        top = _draw_heading(page, left, top, heading) if heading else top
        if lines:
            _text(page, left, top, "\n".join(lines), fontsize=HEADER_PT, linespacing=1.2)
        return top - LINE_IN * len(lines)

    return Block(key, width, heading_in + LINE_IN * len(lines), draw)


def _plain(line: str) -> str:
    """A markdown line as the page shows it: **bold** and `code` marks dropped, their text kept."""
    return inline(line, lambda text: text, ("", ""), ("", ""))


def _text_blocks(section: Section) -> list[Block]:
    """A section of markdown lines (bold marks dropped), wrapped to the page, in blocks that each fit one."""
    items = section.lines if section.key != "missing" else section.lines[:MAX_LISTED_MISSING] + (
        ["..."] if len(section.lines) > MAX_LISTED_MISSING else [])
    lines = [part for line in ([section.lead] if section.lead else []) + items
             for part in _wrapped(_plain(line), CONTENT_W)]
    per_block = int((CONTENT_H - 2 * TITLE_LINE_IN) / LINE_IN)
    chunks = [lines[i:i + per_block] for i in range(0, max(1, len(lines)), per_block)]
    return [_lines_block(section.key, section.title + (f" ({i + 1}/{len(chunks)})" if len(chunks) > 1 else ""),
                         chunk) for i, chunk in enumerate(chunks)]


@functools.cache
def _renderer():
    """A renderer to measure text with, made once: at 72 dpi a width in pixels is one in points."""
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(10, 10, 72)


def _text_width(text: str) -> float:
    """Inches `text` takes at TABLE_PT, as matplotlib draws it."""
    from matplotlib.font_manager import FontProperties

    return _renderer().get_text_width_height_descent(text, FontProperties(size=TABLE_PT), ismath=False)[0] / 72


def _table_width(table: pd.DataFrame) -> float:
    """How wide matplotlib draws `table` at TABLE_PT: each column as wide as its widest text and the cell's
    padding (matplotlib's Cell.PAD, a tenth of that on each side)."""
    texts = [[str(c) for c in table.columns], *[[cell_text(v) for v in row] for row in table.itertuples(index=False)]]
    return sum(1.2 * max(_text_width(row[j]) for row in texts) for j in range(len(table.columns)))


def _fit_width(page, ax, tab, pt: float = TABLE_PT) -> float:
    """Shrink the font (`pt`) of a table wider than its block (columns are sized from the text, so none is cut
    off at the page's edge); returns the table's bottom in inches."""
    page.canvas.draw()  # the automatic column widths exist only once drawn
    renderer = page.canvas.get_renderer()
    box, room = tab.get_window_extent(renderer), ax.get_window_extent(renderer).width
    if box.width > room:
        tab.set_fontsize(pt * 0.97 * room / box.width)
    return box.y0 / page.dpi


def _draw_table(page, left: float, top: float, width: float, chunk: pd.DataFrame, note: list[str],
                scale: float = 1.0) -> float:
    """`chunk` as a matplotlib table from `top` down, its note lines under it; returns where the note ends.
    `scale`: its font and row height as a share of TABLE_PT and ROW_IN (a compact table: COMPACT)."""
    height = scale * ROW_IN * (len(chunk) + 1)
    ax = page.add_axes([left / A4_LANDSCAPE[0], (top - height) / A4_LANDSCAPE[1], width / A4_LANDSCAPE[0],
                        height / A4_LANDSCAPE[1]])
    ax.axis("off")
    cells = [[cell_text(v) for v in row] for row in chunk.itertuples(index=False)]
    tab = ax.table(cellText=cells, colLabels=[str(c) for c in chunk.columns], loc="upper center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(scale * TABLE_PT)
    tab.scale(1, scale * ROW_SCALE)
    tab.auto_set_column_width(list(range(len(chunk.columns))))
    bottom = min(top - height, _fit_width(page, ax, tab, scale * TABLE_PT))
    if not note:
        return bottom
    _text(page, left, bottom - NOTE_GAP_IN, "\n".join(note), fontsize=HEADER_PT, linespacing=1.2)
    return bottom - NOTE_GAP_IN - LINE_IN * len(note)


def _table_blocks(section: Section) -> list[Block]:
    """A table as blocks of at most ROWS_PER_PDF_PAGE rows (a compact one: COMPACT_ROWS, its font and rows
    smaller), the note under the last, half the page wide where it fits; an empty table as one line: its title
    and why it is empty."""
    table = section.table
    if table.empty:  # one line of text (wrapped to half the page), no title of its own
        return [_lines_block(section.key, "", [f"{section.title}: {no_rows(table)}"], HALF_W)]
    scale = COMPACT if table.attrs.get("compact") else 1.0
    per_block = COMPACT_ROWS if scale < 1 else ROWS_PER_PDF_PAGE
    width = HALF_W if scale * _table_width(table) <= SQUEEZE * HALF_W else CONTENT_W  # a little wider: font shrinks
    chunks = [table.iloc[i:i + per_block] for i in range(0, len(table), per_block)]
    blocks = []
    for i, chunk in enumerate(chunks):
        heading, heading_in = _heading(section.title + (f" ({i + 1}/{len(chunks)})" if len(chunks) > 1 else ""),
                                       width)
        note = _wrapped(f"Note: {section.note}", width) if section.note and i == len(chunks) - 1 else []

        def draw(page, left, top, height, heading=heading, chunk=chunk, note=note):
            return _draw_table(page, left, _draw_heading(page, left, top, heading), width, chunk, note, scale)

        note_in = NOTE_GAP_IN + LINE_IN * len(note) if note else 0.0
        blocks.append(Block(section.key, width, heading_in + scale * ROW_IN * (len(chunk) + 1) + 0.05 + note_in,
                            draw))
    return blocks


def _figure_block(section: Section) -> Block:
    """The figure as an image under its title, half the page wide where that is at least half its own size, else
    the page's width; at most a page high, at least 200 dpi there; it may shrink to FIGURE_SHRINK of that to share a page."""
    import matplotlib.image as mpimg

    width, height = section.figure.get_size_inches()
    box = HALF_W if width <= 2 * HALF_W else CONTENT_W  # half the page wide where that shows it at half size or more
    heading, heading_in = _heading(section.title, box)
    scale = min(box / width, (CONTENT_H - heading_in) / height)
    buf = io.BytesIO()
    section.figure.savefig(buf, format="png", dpi=max(150, round(200 * scale)), bbox_inches="tight")
    buf.seek(0)
    image = mpimg.imread(buf, format="png")  # (H, W, 4)
    aspect = image.shape[0] / image.shape[1]
    full = min(box * aspect, CONTENT_H - heading_in)  # image height filling the block's width or the page's height

    def draw(page, left, top, room):
        top = _draw_heading(page, left, top, heading)
        h = min(full, room - heading_in)
        w = h / aspect
        ax = page.add_axes([(left + (box - w) / 2) / A4_LANDSCAPE[0], (top - h) / A4_LANDSCAPE[1],
                            w / A4_LANDSCAPE[0], h / A4_LANDSCAPE[1]])
        # interpolation "none": the PDF embeds the pixels as rendered instead of resampling them to the page's dpi
        ax.imshow(image, interpolation="none")
        ax.axis("off")
        return top - h

    return Block(section.key, box, heading_in + full, draw, shrink=FIGURE_SHRINK)


def _title_block(report: Report) -> Block:
    title = "resbench " + report.title[0].lower() + report.title[1:] + (
        " (SUBSET of the test data)" if report.subset else "")

    def draw(page, left, top, height):
        _text(page, left, top, title, fontsize=15, weight="bold")
        return top - 0.3

    return Block("title", CONTENT_W, 0.3, draw)


EMPTY_TITLE = "Tables with no rows in this sweep"


def _empty_block(sections: list[Section]) -> Block:
    """The tables without rows as one block of lines, each its title and why it is empty."""
    block = _lines_block(sections[0].key, EMPTY_TITLE, [f"- {s.title}: {no_rows(s.table)}" for s in sections])
    block.also = tuple(s.key for s in sections[1:])
    return block


def report_blocks(report: Report):
    """The report's blocks in its sections' order (figures rendered as they come); the tables with no rows
    gathered in one block before the appendix, so that one-line tables do not break the page's columns."""
    yield _title_block(report)
    empty = [s for s in report.sections if s.table is not None and s.table.empty and s.figure is None]
    gathered = {id(s) for s in empty}
    for section in report.sections:
        if id(section) in gathered:
            continue
        if section.key == "provenance" and empty:
            yield _empty_block(empty)
            empty = []
        if section.lines is not None:
            yield from _text_blocks(section)
        elif section.figure is not None:
            yield _figure_block(section)
        else:
            yield from _table_blocks(section)
    if empty:
        yield _empty_block(empty)
