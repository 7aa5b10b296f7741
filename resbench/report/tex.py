"""The LaTeX version of a report: the sections of report.sections.Report, in their order.

OUT.tex has no preamble, so `\\input{OUT.tex}` works inside any document whose preamble loads booktabs (table
rules), graphicx (figures and wide tables shrunk to the line width, by a box of its own) and textcomp (the dagger,
plus-minus and minus signs; part of the LaTeX kernel since 2020). Figures are the PDFs OUT_<figure>.pdf, named
relative to OUT.tex: a document in another folder adds that folder with `\\graphicspath{{folder/}}`.
OUT_standalone.tex is a minimal article that loads these packages and inputs OUT.tex, to compile as it is.
"""

from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path

import pandas as pd

from resbench.errors import ResbenchError
from resbench.report.markup import bullet, inline, no_rows, table_text
from resbench.report.sections import Report, Section
from resbench.store import atomic_write_bytes

__all__ = ["write_tex", "tex_escape"]

# a wide table is set in a box and shrunk to the line width (graphicx's \resizebox), a narrow one left as it is:
# what adjustbox's max width does, with the packages of texlive-latex-recommended alone
SAVEBOX = r"\ifdefined\resbenchtable\else\newsavebox{\resbenchtable}\fi"
FIT_TABLE = (r"\ifdim\wd\resbenchtable>\linewidth\resizebox{\linewidth}{!}{\usebox{\resbenchtable}}"
             r"\else\usebox{\resbenchtable}\fi")

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
              r"\usepackage{graphicx}", r"\begin{document}"]
# a report name that \input and \includegraphics take as it is (a dot would read as a file extension)
_TEX_FILE_NAME = re.compile(r"[A-Za-z0-9_-]+")


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
    return inline(text, tex_escape, (r"\textbf{", "}"), (r"\texttt{", "}"))


def _tex_table(table: pd.DataFrame, note: str) -> list[str]:
    """A booktabs tabular, shrunk to the line width when wider (never enlarged), and its note."""
    if table.empty:  # one line, its reason in it: no note
        return [rf"\emph{{{tex_escape(no_rows(table))}}}", ""]
    columns, rows, numeric = table_text(table)
    spec = "".join("r" if n else "l" for n in numeric)
    lines = [r"\begin{center}", r"\begin{lrbox}{\resbenchtable}", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(map(tex_escape, columns)) + r" \\", r"\midrule",
             *[" & ".join(map(tex_escape, row)) + r" \\" for row in rows],
             r"\bottomrule", r"\end{tabular}", r"\end{lrbox}", FIT_TABLE, r"\end{center}", ""]
    if note:
        lines += [rf"\noindent{{\small Note: {tex_escape(note)}\par}}", ""]
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


def _tex_section(out: Path, section: Section) -> tuple[list[str], list[str]]:
    """(LaTeX lines, files written) of one section: a figure is saved beside OUT.tex as OUT_<key>.pdf."""
    heading = [rf"\subsection*{{{tex_escape(section.title)}}}", ""]
    if section.lines is not None:
        lead = [_tex_inline(section.lead), ""] if section.lead else []
        return [*heading, *lead, *_itemize([_tex_inline(bullet(line)) for line in section.lines])], []
    if section.figure is None:
        return [*heading, *_tex_table(section.table, section.note)], []
    name = f"{out.name}_{section.key}.pdf"
    buf = io.BytesIO()
    section.figure.savefig(buf, format="pdf", bbox_inches="tight")
    atomic_write_bytes(out.with_name(name), buf.getvalue())
    return _tex_figure(section.title, name), [name]


def write_tex(out: Path, report: Report) -> list[str]:
    """Write OUT.tex (for \\input), OUT_standalone.tex (to compile) and each figure as OUT_<key>.pdf.

    Returns the names of the files written."""
    out = Path(out)
    if not _TEX_FILE_NAME.fullmatch(out.name):
        raise ResbenchError(f"{out}: LaTeX cannot name this file in \\input; for --format tex use a report name "
                            f"of letters, digits, _ and - only")
    written = []
    tex = [rf"% {tex_escape(report.title)}. Written by resbench; \input this file from a document that loads",
           "% booktabs, graphicx and textcomp (see the _standalone.tex file beside it).",
           SAVEBOX,
           rf"\section*{{{tex_escape(report.title)}}}", ""]
    for section in report.sections:
        lines, files = _tex_section(out, section)
        tex += lines
        written += files
    atomic_write_bytes(out.with_name(f"{out.name}.tex"), "\n".join(tex).encode())
    standalone = [*STANDALONE, rf"\input{{{out.name}.tex}}", r"\end{document}", ""]
    atomic_write_bytes(out.with_name(f"{out.name}_standalone.tex"), "\n".join(standalone).encode())
    return written + [f"{out.name}.tex", f"{out.name}_standalone.tex"]
