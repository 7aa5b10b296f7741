"""What a report holds, once for every format: its header lines, missing cells, and ONE ordered list of sections
(each a title, a note, and a table or a figure). Each writer (markdown, pdf, tex, html) walks that list, so a
section added here appears in every format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from resbench.report.load import subset_note
from resbench.report.markup import md_code

__all__ = ["Section", "Report", "table_section", "figure_section", "header_lines", "NO_RECORDS_NOTE"]


@dataclass


class Section:
    """One section of a report: a table or an (open matplotlib) figure, under a title, with a note."""

    title: str  # as every format shows it (with the report's subset mark, where it has one)
    key: str  # a figure: its part of the file names (OUT_<key>.png); a table: its title without the mark
    table: pd.DataFrame | None = None
    figure: object | None = None
    note: str = ""  # printed under the table
    lead: str = ""  # markdown before the table: the markdown's own (it links files written beside it)


@dataclass


class Report:
    """A report ready to write: `header` holds markdown lines (sweeps, commands, versions, checkpoints)."""

    name: str  # OUT's last part: the report's files are NAME.md, NAME.pdf, NAME_<figure>.png
    header: list[str]
    missing: list[str] = field(default_factory=list)  # planned cells without a result
    sections: list[Section] = field(default_factory=list)
    subset: bool = False  # some cells used only part of their test split

    @property
    def title(self) -> str:
        return f"Resolution report: {self.name}"

    @property
    def figures(self) -> list[Section]:
        return [s for s in self.sections if s.figure is not None]


def table_section(title: str, table: pd.DataFrame, key: str | None = None, lead: str = "") -> Section:
    """A table's section; its note is the table's attrs["note"]."""
    return Section(title=title, key=title if key is None else key, table=table,
                   note=table.attrs.get("note") or "", lead=lead)


def figure_section(key: str, title: str, figure) -> Section:
    return Section(title=title, key=key, figure=figure)


NO_RECORDS_NOTE = ("This sweep has no per-image records (run it with sweep --log-samples): prediction flips, "
                   "calibration and paired policy tests are left out.")


def _records_line(df: pd.DataFrame) -> str:
    ok = df[df["error"] == ""]
    logged = int((ok["samples"].fillna("").astype(str) != "").sum()) if "samples" in ok else 0
    if not logged:
        return f"- per-image records: none. {NO_RECORDS_NOTE}"
    return (f"- per-image records (sweep --log-samples): {logged} of {len(ok)} evaluated cells; flips, calibration "
            f"and paired tests use those cells only")


def header_lines(df: pd.DataFrame, metas: list[dict], dirs, missing: list[str]) -> list[str]:
    """The header as markdown lines: subset warning, sweeps, commands, versions, cells, warnings, checkpoints."""
    versions = metas[0].get("versions", {}) if metas else {}
    subset = subset_note(df, metas)
    lines = [*([f"- **{subset}**"] if subset else []),
             f"- generated: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- sweeps: {', '.join(map(md_code, dirs))}",
             *[f"- command: {md_code(m.get('command', '?'))} (started {m.get('started')}, finished {m.get('finished')})"
               for m in metas],
             f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
             f"- dataset: {', '.join(sorted(df['dataset'].astype(str).unique()))}; images per cell: "
             f"{', '.join(str(n) for n in sorted(df.loc[df['error'] == '', 'n'].unique()))}",
             f"- cells: {int((df['error'] == '').sum())} evaluated, {int((df['error'] != '').sum())} failed, "
             f"{len(missing)} missing",
             _records_line(df)]
    if "warning" in df:
        warned = df[df["warning"].fillna("").astype(str) != ""].groupby("checkpoint")["warning"].agg(
            lambda w: "; ".join(sorted(set(w))))
        lines += [f"- **warning** for {md_code(name)}: {text}" for name, text in warned.items()]
    seen = set()
    for m in metas:
        for c in m.get("checkpoints", []):
            if c.get("sha256") not in seen:
                seen.add(c.get("sha256"))
                lines.append(f"- checkpoint {md_code(c.get('name'))} ({c.get('model')}, trained at {c.get('train_res')}): "
                             f"sha256 `{c.get('sha256')}`")
    return lines
