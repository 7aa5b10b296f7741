"""What a report holds, once for every format: ONE ordered list of sections (each a title, a note, and a table, a
figure or a list of lines). Each writer (markdown, pdf, tex, html) walks that list, so a section added here appears
in every format, in the same place: the scope, the summary, the headline figure, the rest, the provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from resbench.report.load import subset_note
from resbench.report.markup import MISSING_TEXT, MISSING_TITLE, md_code
from resbench.resolution import sort_sizes

__all__ = ["Section", "Report", "table_section", "figure_section", "text_section", "scope_section",
           "missing_section", "provenance_section", "scope_lines", "provenance_lines", "NO_RECORDS_NOTE", "SCOPE_TITLE",
           "PROVENANCE_TITLE"]

SCOPE_TITLE = "Scope"
PROVENANCE_TITLE = "Appendix: provenance"
MAX_SCOPE_NAMES = 8  # checkpoints named in the scope; more are counted


@dataclass


class Section:
    """One section of a report: a table, an (open matplotlib) figure or markdown lines, under a title."""

    title: str  # as every format shows it (with the report's subset mark, where it has one)
    key: str  # a figure: its part of the file names (OUT_<key>.png); a table: its title without the mark
    table: pd.DataFrame | None = None
    figure: object | None = None
    note: str = ""  # printed under the table
    lead: str = ""  # text before the table or the lines (markdown)
    lines: list[str] | None = None  # markdown bullets ("- ..."): the scope, missing cells, provenance


@dataclass


class Report:
    """A report ready to write: its name and its sections in the order every format shows them."""

    name: str  # OUT's last part: the report's files are NAME.md, NAME.pdf, NAME_<figure>.png
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


def _evaluated(df: pd.DataFrame) -> pd.DataFrame:
    """The cells evaluated without an error, less the native rows that stand in for resize-input ones."""
    ok = df[df["error"] == ""]
    return ok[~ok["stands_in"].fillna(False).astype(bool)] if "stands_in" in ok else ok


def _records_line(df: pd.DataFrame) -> str:
    ok = _evaluated(df)
    logged = int((ok["samples"].fillna("").astype(str) != "").sum()) if "samples" in ok else 0
    if not logged:
        return f"- per-image records: none. {NO_RECORDS_NOTE}"
    return (f"- per-image records (sweep --log-samples): {logged} of {len(ok)} evaluated cells; flips, calibration "
            f"and paired tests use those cells only")


def _listed(values, limit: int = MAX_SCOPE_NAMES) -> str:
    values = list(values)
    return ", ".join(map(str, values[:limit])) + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _warning_lines(df: pd.DataFrame) -> list[str]:
    if "warning" not in df:
        return []
    warned = df[df["warning"].fillna("").astype(str) != ""].groupby("checkpoint")["warning"].agg(
        lambda w: "; ".join(sorted(set(w))))
    return [f"- **warning** for {md_code(name)}: {text}" for name, text in warned.items()]


def scope_lines(df: pd.DataFrame, metas: list[dict], missing: list[str]) -> list[str]:
    """What was swept, as markdown lines: subset warning, checkpoints, sizes, settings, images, cells, warnings."""
    subset = subset_note(df, metas)
    ok = df[df["error"] == ""]
    evaluated = len(_evaluated(df))
    names = list(dict.fromkeys(df["checkpoint"]))
    failed = int((df["error"] != "").sum())
    return [*([f"- **{subset}**"] if subset else []),
            f"- checkpoints: {len(names)}"
            + (f" ({_listed(map(md_code, names))})" if len(names) <= MAX_SCOPE_NAMES else " (each in the appendix)")
            + f" of the models {', '.join(sorted(df['model'].astype(str).unique()))}",
            f"- swept: training sizes {_listed(sort_sizes(df['train_res'].unique()), 8)}; test sizes "
            f"{_listed(sort_sizes(df['test_res'].unique()), 8)}; policies {', '.join(sorted(df['policy'].unique()))}; "
            f"bandlimit settings {', '.join(sorted(df['bandlimit'].astype(str).unique()))}",
            f"- dataset: {', '.join(sorted(df['dataset'].astype(str).unique()))}; images per cell: "
            f"{', '.join(str(n) for n in sorted(ok['n'].unique()))}; cells: {evaluated} evaluated, {failed} failed, "
            f"{len(missing)} missing" + (f" ({MISSING_TITLE.lower()} are listed at the end)" if missing else "")
            + "; " + _records_line(df)[2:], *_warning_lines(df)]


def provenance_lines(df: pd.DataFrame, metas: list[dict], dirs) -> list[str]:
    """Where the numbers come from, as markdown lines: generation time, sweeps, commands, versions, checkpoints."""
    versions = metas[0].get("versions", {}) if metas else {}
    lines = [f"- generated: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- sweeps: {', '.join(map(md_code, dirs))}",
             *[f"- command: {md_code(m.get('command', '?'))} (started {m.get('started')}, finished {m.get('finished')})"
               for m in metas],
             f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}"]
    seen = set()
    for m in metas:
        for c in m.get("checkpoints", []):
            if c.get("sha256") not in seen:
                seen.add(c.get("sha256"))
                lines.append(f"- checkpoint {md_code(c.get('name'))} ({c.get('model')}, trained at {c.get('train_res')}): "
                             f"sha256 `{c.get('sha256')}`")
    return lines


def text_section(title: str, key: str, lines: list[str], lead: str = "") -> Section:
    return Section(title=title, key=key, lines=list(lines), lead=lead)


def scope_section(df: pd.DataFrame, metas: list[dict], missing: list[str]) -> Section:
    return text_section(SCOPE_TITLE, "scope", scope_lines(df, metas, missing))


def missing_section(missing: list[str]) -> list[Section]:
    """The planned cells without a result: a section of its own, none when every cell has one."""
    return [text_section(MISSING_TITLE, "missing", [f"- {md_code(m)}" for m in missing], lead=MISSING_TEXT)] if missing else []


def provenance_section(df: pd.DataFrame, metas: list[dict], dirs) -> Section:
    return text_section(PROVENANCE_TITLE, "provenance", provenance_lines(df, metas, dirs))
