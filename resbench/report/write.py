"""`resbench report`: sweep folders in, the report's files out. Tables and figures are made once, gathered into
one ordered list of sections (report.sections): the scope, the summary table, the headline figure, the other
figures and tables, the provenance; each requested format writes that list."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from resbench.device import resolve_device
from resbench.errors import ResbenchError
from resbench.report.ablation import arm_tables
from resbench.report.aliasing import ALIASING_TITLE, aliasing_drop_cells, aliasing_summary
from resbench.report.families import family_labels
from resbench.report.figure_set import draw_figures, mark_figures
from resbench.report.figures import save_figure
from resbench.report.goals import GOAL_TITLE, goal_table
from resbench.report.headline import HEADLINE_TITLE, headline_families, headline_figure
from resbench.report.load import SweptFiles, load_sweeps, missing_cells, subset_mark, subset_note
from resbench.report.markup import md_code, md_link, md_text
from resbench.report.metric_order import ORDER_TITLE, metric_order_table
from resbench.report.persample import Records
from resbench.report.sections import (Report, figure_section, missing_section, provenance_section, scope_section,
                                      table_section)
from resbench.report.stats import SEEDS_TITLE, seed_spread_table
from resbench.report.summary import FULL_SUMMARY_TITLE, SUMMARY_TITLE, leading_summary, summary_table
from resbench.report.tables import TRAINED_ABLATION_TITLE, report_tables
from resbench.resolution import KINDS
from resbench.store import atomic_write_bytes, csv_bytes, writable_folder

__all__ = ["FORMATS", "parse_formats", "write_report"]

FORMATS = ("md", "pdf", "png", "svg", "tex", "html")


def parse_formats(text: str) -> list[str]:
    items = [t.strip().lower() for t in str(text).split(",")]
    bad = [t for t in items if t not in FORMATS]
    if not text or bad:
        raise ResbenchError(f"--format {text!r}: expected a comma list of {', '.join(FORMATS)}")
    return items


def _check_inputs(out: Path, kernels: str | None, kernel_device: str) -> None:
    """Bad input is one line, before the first step line: a bad --device or --kernels, an unwritable OUT (made
    only once the rest is known good)."""
    resolve_device(kernel_device)
    if kernels:
        from resbench.checkpoints import load_checkpoint
        from resbench.kernels import check_continuous

        check_continuous(load_checkpoint(kernels))
    writable_folder(out.parent)


def _kind_tables(parts: dict[int, pd.DataFrame], records: Records, families: dict[str, str]) -> tuple[dict, dict]:
    """The tables of each kind of input, images first, each with its goal table; and the kind of each (title ->
    dims). Images, signals and clips apart: their sizes are not one axis (a signal's 8000 is no 8000 px square)."""
    tables, kind_of = {}, {}
    for dims in (2, 1, 3):
        if dims in parts:
            suffix = "" if dims == 2 else f" [{KINDS[dims]}]"
            kind = {f"{title}{suffix}": table for title, table in report_tables(parts[dims], records).items()}
            goals = goal_table(parts[dims], records, families, headline_families(parts[dims], families))
            if len(goals):
                kind[f"{GOAL_TITLE}{suffix}"] = goals
            tables.update(kind)
            kind_of.update(dict.fromkeys(kind, dims))
    return tables, kind_of


def _checkpoint_tables(tables: dict, df: pd.DataFrame, metas: list[dict], files: SweptFiles,
                       families: dict[str, str], device: str, say) -> None:
    """Add the tables that read the swept checkpoint files (loaded once): seeds and whether the aliasing metric
    orders the test sizes by their drop."""
    say("seed table")
    seeds = seed_spread_table(df, metas, files, families)
    if not seeds.empty:
        tables[SEEDS_TITLE] = seeds
    arms = arm_tables(df[df["dims"] == 2], files) if len(df) else {}
    if arms:  # the ablation by arm and seed answers what the one-pair table did, seed by seed
        tables.pop(TRAINED_ABLATION_TITLE, None)
        tables.update(arms)
    say("the aliasing metric's rank correlation: the continuous kernels of each swept checkpoint")
    cells = aliasing_drop_cells(df, metas, device, files, say)
    if not cells.empty:
        tables[ORDER_TITLE] = metric_order_table(cells)


def _headline(figures: dict, parts: dict[int, pd.DataFrame], families: dict[str, str]) -> int | None:
    """Draw the headline figure into `figures` (first) from the images, else the signals; returns their dims."""
    dims = _headline_dims(parts)
    if dims is not None:
        xlabel = "test resolution (side, px)" if dims == 2 else "test length (samples)"
        title = HEADLINE_TITLE + ("" if dims == 2 else f" [{KINDS[dims]}]")
        figures["headline"] = (title, headline_figure(parts[dims], families, xlabel))
    return dims


def _head_and_tail(df: pd.DataFrame, metas: list[dict], dirs, missing: list[str], summary: pd.DataFrame,
                   mark: str, lead: pd.DataFrame | None) -> tuple[list, list]:
    """The sections before the figures (the scope, the summary table or, for a long one, its `lead` rows) and
    after the tables (the missing cells, the provenance)."""
    head = [scope_section(df, metas, missing),
            table_section(f"{SUMMARY_TITLE} {mark}".strip(), summary if lead is None else lead, key=SUMMARY_TITLE)]
    return head, [*missing_section(missing), provenance_section(df, metas, dirs)]


def _headline_dims(parts: dict[int, pd.DataFrame]) -> int | None:
    """The kind of input the headline figure draws: images, else signals (None: neither has a result)."""
    return next((d for d in (2, 1) if d in parts and (parts[d]["error"] == "").any()), None)


def _lead(df: pd.DataFrame, summary: pd.DataFrame, parts: dict[int, pd.DataFrame], families: dict[str, str]
          ) -> pd.DataFrame | None:
    """The summary's leading rows where it is long: the families the headline figure draws."""
    dims = _headline_dims(parts)
    if dims is None:
        return None
    return leading_summary(df, families, summary, headline_families(parts[dims], families))


def _full_summary(body: list, summary: pd.DataFrame, lead: pd.DataFrame | None, mark: str) -> list:
    """`body` with every summary row right after the headline figure, where the report led with only some."""
    if lead is not None:
        full = f"{FULL_SUMMARY_TITLE} {mark}".strip()
        body.insert(int(bool(body) and body[0].key == "headline"), table_section(full, summary, key=FULL_SUMMARY_TITLE))
    return body


def _sections(out: Path, figures: dict, tables: dict, marks: dict, kind_of: dict,
              aliasing: pd.DataFrame | None, kernels: str | None) -> list:
    """The report's body in order: the figures (the headline first), the tables (titles marked where the cells are
    a subset), the kernels' aliasing."""
    sections = [figure_section(key, title, fig) for key, (title, fig) in figures.items()]
    for title, table in tables.items():
        mark = marks[kind_of.get(title)][0]
        sections.append(table_section(f"{title} {mark}" if mark else title, table, key=title))
    if aliasing is not None:
        lead = (f"Checkpoint {md_code(kernels)}; mean over layers, axes and directions; per-layer values in "
                f"[{md_text(out.name)}_aliasing.csv]({md_link(out.name + '_aliasing.csv')}).")
        sections.append(table_section(ALIASING_TITLE, aliasing_summary(aliasing), lead=lead))
    return sections


def _write_files(out: Path, report: Report, figures: dict, aliasing, formats, say) -> tuple[list[str], list[str]]:
    """Every file but the markdown (written once the figures are closed); returns (written, PDF pages)."""
    written, pages = [], []
    say(f"writing {len(figures)} figure" + ("s" if len(figures) != 1 else ""))
    for key, (_, fig) in figures.items():
        written += save_figure(fig, out.with_name(f"{out.name}_{key}"), formats)
    if aliasing is not None:
        atomic_write_bytes(out.with_name(f"{out.name}_aliasing.csv"), csv_bytes(aliasing))
        written.append(f"{out.name}_aliasing.csv")
    if "tex" in formats or "html" in formats:  # both need the figures still open
        from resbench.report.html import write_html
        from resbench.report.tex import write_tex

        say(" and ".join(f for f in ("tex", "html") if f in formats))
        written += write_tex(out, report) if "tex" in formats else []
        written += write_html(out, report) if "html" in formats else []
    if "pdf" in formats:
        from resbench.report.pdf import write_pdf

        say("pdf")
        files, pages = write_pdf(out, report)
        written += files
    return written, pages


def write_report(dirs, out: str | Path, formats=("md", "pdf", "png", "svg"), kernels: str | None = None,
                 kernel_sizes=None, kernel_device: str = "cpu", reliability: list[str] | None = None,
                 say: Callable[[str], None] | None = None) -> dict:
    """Write OUT.md / OUT.pdf and each figure as OUT_<figure>.png/.svg. Returns what was written.

    `kernels`: a checkpoint whose continuous kernels are analysed too, on `kernel_device`. `reliability`: the
    checkpoints of the reliability diagram (default: the headline pair; needs per-image records). `say`, when
    given, is called with a line as each step starts (a study's report takes a minute or two)."""
    import matplotlib.pyplot as plt

    say = say or (lambda line: None)
    out = Path(out)
    if out.is_dir():
        raise ResbenchError(f"{out}: is a folder; expected OUT/NAME (the report is written as NAME.md, NAME.pdf)")
    df, metas = load_sweeps(dirs)
    _check_inputs(out, kernels, kernel_device)
    missing = missing_cells(df, metas)
    say(f"{len(df)} cells from {', '.join(map(str, dirs))}; tables")
    records, files = Records(), SweptFiles(metas)
    parts = {int(d): g for d, g in df.groupby("dims")} if len(df) else {2: df}
    families = family_labels(df, metas, files)
    tables, kind_of = _kind_tables(parts, records, families)
    _checkpoint_tables(tables, df, metas, files, families, kernel_device, say)
    # a report of subset cells: every title says so, each with what its own kind of input used
    marks = {dims: (subset_mark(part), subset_note(part, metas)) for dims, part in parts.items()}
    marks[None] = (subset_mark(df), subset_note(df, metas))
    summary = summary_table(df, families)
    lead = _lead(df, summary, parts, families)
    head, tail = _head_and_tail(df, metas, dirs, missing, summary, marks[None][0], lead)
    figures = {}
    try:
        say("figures" + (f" and the kernels of {kernels}" if kernels else ""))
        headline_kind = _headline(figures, parts, families)
        aliasing, figure_kind = draw_figures(figures, parts, kernels, kernel_sizes, kernel_device, records,
                                             reliability)
        mark_figures(figures, {**figure_kind, "headline": headline_kind}, marks)
        body = _full_summary(_sections(out, figures, tables, marks, kind_of, aliasing, kernels), summary, lead,
                             marks[None][0])
        report = Report(out.name, [*head, *body, *tail], bool(marks[None][1]))
        written, pages = _write_files(out, report, figures, aliasing, formats, say)
    finally:  # on an error too (a bad --kernels file, an unwritable OUT): no figure is left open
        for _, fig in figures.values():
            plt.close(fig)
    if "md" in formats:
        from resbench.report.markdown import write_markdown

        written += write_markdown(out, report)
    return {"written": written, "pages": pages, "missing": missing, "tables": tables, "summary": summary}
