"""The markdown version of a report: its sections in their order (figures as links to the PNGs written beside
it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from resbench.report.markup import md_link, md_text, no_rows
from resbench.report.sections import Report, Section
from resbench.store import atomic_write_bytes

__all__ = ["markdown_table", "write_markdown"]


def markdown_table(table: pd.DataFrame) -> str:
    if table.empty:
        return f"_{md_text(no_rows(table))}_\n"

    def cell(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.2f}"
        return str(v)

    cols = [md_text(c) for c in table.columns]  # names from files and options: literal, one cell each
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(md_text(cell(v)) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _markdown_section(out: Path, section: Section) -> list[str]:
    if section.lines is not None:  # markdown already
        return [f"## {md_text(section.title)}", "", *([section.lead, ""] if section.lead else []), *section.lines, ""]
    if section.figure is not None:  # the PNG save_figure wrote beside the markdown
        alt = md_text(section.title.replace("[", "(").replace("]", ")"))  # brackets would end the alt text
        return [f"## {md_text(section.title)}", "", f"![{alt}]({md_link(f'{out.name}_{section.key}.png')})", ""]
    lines = [f"## {md_text(section.title)}", "", *([section.lead, ""] if section.lead else []),
             markdown_table(section.table)]
    return lines + ([f"Note: {section.note}", ""] if section.note and not section.table.empty else [])


def write_markdown(out: Path, report: Report) -> list[str]:
    """Write OUT.md; returns the names of the files written."""
    md = [f"# Resolution report: {md_text(out.name)}", ""]
    for section in report.sections:
        md += _markdown_section(out, section)
    atomic_write_bytes(out.with_name(f"{out.name}.md"), "\n".join(md).encode())
    return [f"{out.name}.md"]
