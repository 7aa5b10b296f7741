"""The PDF version of a report: its sections' blocks (pdf_blocks) laid on A4 landscape pages in reading order, in
two columns (a half-width block goes under the column that ends higher, a full-width one under both), a new page
only when the next block does not fit: a small sweep's report is a few pages, a study's as long as its tables."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

from resbench.report.pdf_blocks import A4_LANDSCAPE, COLUMN_GAP, HALF_W, PAGE_MARGIN, report_blocks
from resbench.report.sections import Report
from resbench.store import atomic_write_bytes

__all__ = ["A4_LANDSCAPE", "pdf_pages", "pdf_bytes", "write_pdf"]

BLOCK_GAP = 0.2  # inches between two rows of blocks
PAGE_TOP = A4_LANDSCAPE[1] - PAGE_MARGIN


def _fits(block, top: float) -> bool:
    """Whether `block` fits between `top` and the bottom margin (a figure: shrunk as far as it may)."""
    return block.height * block.shrink <= top - PAGE_MARGIN + 1e-9


class _Pages:
    """The page being filled: its figure, where each of its two columns ends, and the sections on it."""

    def __init__(self, emit: Callable[[object, list[str]], None]):
        self.emit, self.page, self.keys, self.bottoms = emit, None, [], [PAGE_TOP, PAGE_TOP]

    def new(self) -> None:
        import matplotlib.pyplot as plt

        self.flush()
        self.page, self.keys, self.bottoms = plt.figure(figsize=A4_LANDSCAPE), [], [PAGE_TOP, PAGE_TOP]

    def flush(self) -> None:
        if self.page is not None:
            page, self.page = self.page, None
            self.emit(page, self.keys)

    def _top(self, columns: tuple[int, ...]) -> float:
        """Where a block across `columns` starts: under what they hold, a gap apart."""
        bottom = min(self.bottoms[c] for c in columns)
        return bottom - BLOCK_GAP if bottom < PAGE_TOP else PAGE_TOP

    def _spot(self, block) -> tuple[tuple[int, ...], float]:
        """(columns, top) of `block`: a full-width block spans both, a half-width one goes to the column that ends
        higher (the left one on a tie); on a new page when it does not fit there."""
        if block.width > HALF_W + 1e-9:
            columns = (0, 1)
        else:
            columns = (max((0, 1), key=lambda c: (self.bottoms[c], -c)),)
        if self.keys and not _fits(block, self._top(columns)):
            self.new()
            columns = columns if len(columns) == 2 else (0,)
        return columns, self._top(columns)

    def place(self, block) -> None:
        """Draw `block` where it fits next (a figure shrunk to the room left, where it must)."""
        columns, top = self._spot(block)
        left = PAGE_MARGIN + columns[0] * (HALF_W + COLUMN_GAP)
        bottom = block.draw(self.page, left, top, min(block.height, top - PAGE_MARGIN))
        for c in columns:
            self.bottoms[c] = bottom
        for key in (block.key, *block.also):
            if key not in self.keys:
                self.keys.append(key)


def pdf_pages(report: Report, emit: Callable[[object, list[str]], None]) -> None:
    """Call `emit(page, keys)` with each page (an A4 landscape matplotlib figure, the caller's to close) and the
    keys of the sections on it ("title" for the report's title), in order."""
    import matplotlib.pyplot as plt

    pages = _Pages(emit)
    try:
        pages.new()
        for block in report_blocks(report):
            pages.place(block)
        pages.flush()
    finally:  # on an error: the page being filled is closed, not left open
        if pages.page is not None:
            plt.close(pages.page)


def pdf_bytes(report: Report) -> tuple[bytes, list[list[str]]]:
    """The PDF's bytes and the keys of the sections on each page (a figure's key, a table's title without the
    subset mark, "scope", "provenance", ...)."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    buf, names = io.BytesIO(), []
    with PdfPages(buf) as pdf:
        def add(page, keys: list[str]) -> None:
            try:
                pdf.savefig(page)
            finally:  # a page is a figure of its own: close it at once
                plt.close(page)
            names.append(keys)

        pdf_pages(report, add)
    return buf.getvalue(), names


def write_pdf(out: Path, report: Report) -> tuple[list[str], list[list[str]]]:
    """Write OUT.pdf; returns (the names of the files written, the keys of the sections on each page)."""
    pdf, pages = pdf_bytes(report)
    atomic_write_bytes(out.with_name(f"{out.name}.pdf"), pdf)
    return [f"{out.name}.pdf"], pages
