"""The PDF version of a report, page by page: the header, then the sections in their order, every page A4
landscape whatever the figure or table on it."""

from __future__ import annotations

import io
import textwrap

from pathlib import Path

import pandas as pd

from resbench.report.sections import Report
from resbench.store import atomic_write_bytes

__all__ = ["A4_LANDSCAPE", "HEADER_PT", "TABLE_PT", "figure_page", "table_pages", "text_pages", "header_pages",
           "pdf_bytes", "write_pdf"]


ROWS_PER_PDF_PAGE = 20  # rows of TABLE_PT text that fit an A4 landscape page with its title and note
TABLE_PT = 9  # font size of table cells
A4_LANDSCAPE = (11.69, 8.27)  # inches: the size of every PDF page
PAGE_MARGIN = 0.5  # inches around a header page's text
HEADER_PT = 9  # font size of the header pages and of the notes under tables
# characters in a line of HEADER_PT text between the margins: DejaVu Sans Mono is 0.6 em wide (sans text is narrower)
PAGE_CHARS = int((A4_LANDSCAPE[0] - 2 * PAGE_MARGIN) * 72 / (0.6 * HEADER_PT))
MAX_LISTED_MISSING = 40  # missing cells named on the header pages (the other formats name all)


def figure_page(fig):
    """`fig` drawn as an image on an A4 landscape page, aspect kept: every PDF page has one size, while the
    figure's own PNG/SVG files keep their natural size."""
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    box = (0.02, 0.02, 0.96, 0.96)  # figure fraction the image may fill
    width, height = fig.get_size_inches()
    scale = min(box[2] * A4_LANDSCAPE[0] / width, box[3] * A4_LANDSCAPE[1] / height)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=max(150, round(200 * scale)), bbox_inches="tight")  # >= 200 dpi on the page
    buf.seek(0)
    page = plt.figure(figsize=A4_LANDSCAPE)
    ax = page.add_axes(box)
    # interpolation "none": the PDF embeds the pixels as rendered instead of resampling them to the page's dpi
    ax.imshow(mpimg.imread(buf, format="png"), interpolation="none")  # (H, W, 4)
    ax.axis("off")
    return page


def _fit_width(fig, ax, tab) -> None:
    """A table wider than the page at TABLE_PT gets a smaller font (its columns are sized from the text), so no
    column is cut off at the page's edge."""
    fig.canvas.draw()  # the automatic column widths exist only once drawn
    renderer = fig.canvas.get_renderer()
    width, room = tab.get_window_extent(renderer).width, ax.get_window_extent(renderer).width
    if width > room:
        tab.set_fontsize(TABLE_PT * 0.97 * room / width)


def table_pages(title: str, table: pd.DataFrame, note: str | None = None):
    """A table on as many A4 landscape pages as its rows need, its note (default: attrs["note"]) under it."""
    import matplotlib.pyplot as plt

    note = table.attrs.get("note") if note is None else note
    chunks = [table.iloc[i:i + ROWS_PER_PDF_PAGE] for i in range(0, max(1, len(table)), ROWS_PER_PDF_PAGE)]
    for i, chunk in enumerate(chunks):
        fig, ax = plt.subplots(figsize=A4_LANDSCAPE)
        ax.axis("off")
        ax.set_title(title + (f" ({i + 1}/{len(chunks)})" if len(chunks) > 1 else ""), fontsize=10)
        if chunk.empty:
            ax.text(0.5, 0.5, "(no rows)", ha="center")
        else:
            cells = [[("" if pd.isna(v) else f"{v:.2f}") if isinstance(v, float) else str(v) for v in row]
                     for row in chunk.itertuples(index=False)]
            tab = ax.table(cellText=cells, colLabels=[str(c) for c in chunk.columns], loc="upper center",
                           cellLoc="center")
            tab.auto_set_font_size(False)
            tab.set_fontsize(TABLE_PT)
            tab.scale(1, 1.6)  # row height for TABLE_PT text (matplotlib sizes rows for about 6 pt)
            tab.auto_set_column_width(list(range(len(chunk.columns))))
            _fit_width(fig, ax, tab)
        if note:
            fig.text(PAGE_MARGIN / A4_LANDSCAPE[0], PAGE_MARGIN / A4_LANDSCAPE[1],
                     textwrap.fill(f"Note: {note}", PAGE_CHARS), fontsize=HEADER_PT, va="bottom")
        yield fig


def text_pages(title: str, lines: list[str]) -> list:
    """`lines` in HEADER_PT monospace on A4 landscape pages: wrapped to the page width, continued on new pages."""
    import matplotlib.pyplot as plt

    width, height = A4_LANDSCAPE
    # a line, with matplotlib's spacing of 1.2, stays under 1.45 em high
    per_page = int((height - 2 * PAGE_MARGIN) * 72 / (1.45 * HEADER_PT)) - 2  # -2: the title and a blank line
    wrapped = [part for line in lines
               for part in textwrap.wrap(line, PAGE_CHARS, subsequent_indent="    ", break_on_hyphens=False) or [""]]
    chunks = [wrapped[i:i + per_page] for i in range(0, max(1, len(wrapped)), per_page)]
    pages = []
    for i, chunk in enumerate(chunks):
        page = plt.figure(figsize=A4_LANDSCAPE)
        heading = title + (f" (page {i + 1} of {len(chunks)})" if len(chunks) > 1 else "")
        page.text(PAGE_MARGIN / width, 1 - PAGE_MARGIN / height, "\n".join([heading, "", *chunk]), va="top",
                  ha="left", family="monospace", fontsize=HEADER_PT, linespacing=1.2)
        pages.append(page)
    return pages


def header_pages(report: Report) -> list:
    """The PDF's first pages: the header (sweeps, commands, versions, checkpoints) and the first missing cells."""
    lines = [line.replace("**", "") for line in report.header]  # markdown bold: not in a PDF
    if report.missing:
        extra = ["..."] if len(report.missing) > MAX_LISTED_MISSING else []
        lines += ["", "Missing cells:", *report.missing[:MAX_LISTED_MISSING], *extra]
    return text_pages("resbench resolution report" + (" (SUBSET of the test data)" if report.subset else ""), lines)


def pdf_bytes(report: Report) -> tuple[bytes, list[str]]:
    """The PDF's bytes and what each page shows: "header", then each section's key (a figure's key, a table's
    title without the subset mark), a page per figure and as many as each table needs."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    buf, names = io.BytesIO(), []
    with PdfPages(buf) as pdf:
        def add(name: str, page) -> None:
            try:
                pdf.savefig(page)
            finally:  # a page is a figure of its own: close it at once
                plt.close(page)
            names.append(name)

        for page in header_pages(report):
            add("header", page)
        for section in report.sections:
            if section.figure is not None:
                add(section.key, figure_page(section.figure))
            else:
                for page in table_pages(section.title, section.table, section.note):
                    add(section.key, page)
    return buf.getvalue(), names


def write_pdf(out: Path, report: Report) -> tuple[list[str], list[str]]:
    """Write OUT.pdf; returns (the names of the files written, what each page shows)."""
    pdf, pages = pdf_bytes(report)
    atomic_write_bytes(out.with_name(f"{out.name}.pdf"), pdf)
    return [f"{out.name}.pdf"], pages
