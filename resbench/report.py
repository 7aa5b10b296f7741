"""Markdown + PDF report of one or more sweeps: figures and tables derived from the results frame only."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from resbench.checkpoints import atomic_write_bytes
from resbench.data import parse_size
from resbench.errors import ResbenchError
from resbench.plots import accuracy_vs_test_res, aliasing_figure, kernel_figure, side, train_test_heatmaps

__all__ = ["FORMATS", "load_sweeps", "report_tables", "missing_cells", "write_report", "parse_formats",
           "markdown_table", "kernel_analysis", "save_figure"]

FORMATS = ("md", "pdf", "png", "svg")
ROWS_PER_PDF_PAGE = 28


def parse_formats(text: str) -> list[str]:
    items = [t.strip().lower() for t in str(text).split(",")]
    bad = [t for t in items if t not in FORMATS]
    if not text or bad:
        raise ResbenchError(f"--format {text!r}: expected a comma list of {', '.join(FORMATS)}")
    return items


def load_sweeps(dirs) -> tuple[pd.DataFrame, list[dict]]:
    """Results frame of several sweep folders (concatenated) and their meta records."""
    from resbench.sweep import read_results

    frames, metas = [], []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise ResbenchError(f"{d}: not a sweep folder (expected a folder with results.csv)")
        frames.append(read_results(d))
        for m in sorted(d.glob("meta*.json")):
            try:
                metas.append(json.loads(m.read_text()))
            except (OSError, json.JSONDecodeError):
                raise ResbenchError(f"{m}: unreadable sweep metadata (expected JSON)") from None
    df = pd.concat(frames, ignore_index=True)
    df["error"] = df["error"].fillna("").astype(str)
    df = df.drop_duplicates(subset=["checkpoint_sha256", "test_res", "policy", "bandlimit", "seed"], keep="last")
    df = current_checkpoints_only(df, metas)
    if df.empty:
        raise ResbenchError(f"{', '.join(map(str, dirs))}: the sweep holds no results")
    return df.reset_index(drop=True), metas


def current_checkpoints_only(df: pd.DataFrame, metas: list[dict]) -> pd.DataFrame:
    """Drop the rows of a checkpoint file that has since been replaced (same name, other sha256).

    A sweep folder keeps every row it ever computed; the newest sweep's meta.json names the file
    each checkpoint name refers to now. Names no meta mentions are kept as they are.
    """
    current = {}
    for meta in sorted(metas, key=lambda m: str(m.get("started") or "")):
        current.update({c["name"]: c["sha256"] for c in meta.get("checkpoints", []) if "name" in c and "sha256" in c})
    now = df["checkpoint"].map(current)
    return df[now.isna() | (df["checkpoint_sha256"] == now)]


def missing_cells(df: pd.DataFrame, metas: list[dict]) -> list[str]:
    """Cells the sweeps planned (meta.json) that have no successful row."""
    done = {(r.checkpoint, r.test_res, r.policy, r.bandlimit) for r in df[df["error"] == ""].itertuples()}
    planned = {tuple(c) for m in metas for c in m.get("planned_cells", [])}
    return [" / ".join(c) for c in sorted(planned - done)]


def _pivot(frame: pd.DataFrame, index: list[str], values: str) -> pd.DataFrame:
    table = frame.pivot_table(index=index, columns="test_res", values=values, aggfunc="first")
    return table[sorted(table.columns, key=side)].reset_index()


def report_tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The report's tables, in order: native accuracy, drop from native, bandlimit ablation, policy comparison."""
    ok = df[df["error"] == ""].copy()
    ok["acc"] = (100 * ok["accuracy"]).round(2)
    native_pol = ok[ok["policy"] == "native"]
    reference = native_pol[native_pol["bandlimit"].isin(["on", "none"])]
    at_train = reference[reference["test_res"] == reference["train_res"]]
    native = at_train[["checkpoint", "model", "train_res", "acc", "ci_low", "ci_high", "n"]].copy()
    native["ci95"] = [f"{100 * lo:.1f}-{100 * hi:.1f}" for lo, hi in zip(native.pop("ci_low"), native.pop("ci_high"))]
    native = native.rename(columns={"acc": "native accuracy (%)"}).sort_values(["model", "checkpoint"])

    base = dict(zip(at_train["checkpoint"], at_train["acc"]))
    drop = native_pol[native_pol["checkpoint"].isin(base)].copy()
    drop["drop"] = (drop["acc"] - drop["checkpoint"].map(base)).round(2)
    drop_table = _pivot(drop, ["checkpoint", "train_res", "bandlimit"], "drop")

    s4 = native_pol[native_pol["bandlimit"].isin(["on", "off"])]
    on = s4[s4["bandlimit"] == "on"].set_index(["checkpoint", "train_res", "test_res"])["acc"]
    off = s4[s4["bandlimit"] == "off"].set_index(["checkpoint", "train_res", "test_res"])["acc"]
    ablation = (on - off).dropna().round(2).rename("on - off").reset_index()
    ablation_table = _pivot(ablation, ["checkpoint", "train_res"], "on - off") if len(ablation) else ablation

    ref_bl = ok[ok["bandlimit"].isin(["on", "none"])]
    pol = ref_bl.pivot_table(index=["checkpoint", "train_res", "test_res"], columns="policy", values="acc",
                             aggfunc="first").reset_index()
    if {"native", "resize-input"} <= set(pol.columns):
        pol = pol.dropna(subset=["native", "resize-input"])
        pol = pol[pol["test_res"] != pol["train_res"]]
        pol["winner"] = ["native (zero-shot)" if a > b else "resize-input" if b > a else "tie"
                         for a, b in zip(pol["native"], pol["resize-input"])]
        pol = pol.assign(_s=pol["test_res"].map(side)).sort_values(["checkpoint", "_s"], kind="stable")
        pol = pol.drop(columns="_s")
        pol.columns.name = None
    return {"Native accuracy (test size = train size, native policy)": native.reset_index(drop=True),
            "Drop from native accuracy (points; native policy)": drop_table,
            "Bandlimit ablation: accuracy with it on minus off (points; native policy)": ablation_table,
            "Policy comparison: zero-shot (native) vs resize-input, accuracy (%)": pol.reset_index(drop=True)}


def markdown_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "_(no rows)_\n"

    def cell(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.2f}"
        return str(v)

    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def kernel_analysis(ckpt_path: str, test_sizes) -> tuple[object, pd.DataFrame, object]:
    """(kernel figure, aliasing table, aliasing figure) of one S4ND or ckconv checkpoint."""
    from resbench.checkpoints import load_checkpoint
    from resbench.kernels import aliasing_table, kernel_spectra, resampled_taps

    ckpt = load_checkpoint(ckpt_path)
    spectra = kernel_spectra(ckpt)
    table = aliasing_table(ckpt, test_sizes, spectra)
    has_s4nd = any(s.group in ("forward", "backward") for s in spectra)
    taps = (lambda size, layer, bl: resampled_taps(ckpt, size, layer, 0, 0, bl)) if has_s4nd else None
    return kernel_figure(ckpt, test_sizes, spectra, taps), table, aliasing_figure(table)


def save_figure(fig, base: Path, formats: list[str]) -> list[str]:
    written = []
    for ext in ("png", "svg"):
        if ext in formats or (ext == "png" and "md" in formats):  # the markdown links PNGs
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=130, bbox_inches="tight")
            atomic_write_bytes(base.with_name(f"{base.name}.{ext}"), buf.getvalue())
            written.append(f"{base.name}.{ext}")
    return written


def _table_pages(title: str, table: pd.DataFrame):
    import matplotlib.pyplot as plt

    chunks = [table.iloc[i:i + ROWS_PER_PDF_PAGE] for i in range(0, max(1, len(table)), ROWS_PER_PDF_PAGE)]
    for i, chunk in enumerate(chunks):
        fig, ax = plt.subplots(figsize=(11.7, 8.3))
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
            tab.set_fontsize(6.5)
            tab.auto_set_column_width(list(range(len(chunk.columns))))
        yield fig


def _header(df: pd.DataFrame, metas: list[dict], dirs, missing: list[str]) -> list[str]:
    versions = metas[0].get("versions", {}) if metas else {}
    lines = [f"- generated: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
             f"- sweeps: {', '.join(map(str, dirs))}",
             *[f"- command: `{m.get('command', '?')}` (started {m.get('started')}, finished {m.get('finished')})"
               for m in metas],
             f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
             f"- dataset: {', '.join(sorted(df['dataset'].astype(str).unique()))}; images per cell: "
             f"{', '.join(str(n) for n in sorted(df.loc[df['error'] == '', 'n'].unique()))}",
             f"- cells: {int((df['error'] == '').sum())} evaluated, {int((df['error'] != '').sum())} failed, "
             f"{len(missing)} missing"]
    seen = set()
    for m in metas:
        for c in m.get("checkpoints", []):
            if c.get("sha256") not in seen:
                seen.add(c.get("sha256"))
                lines.append(f"- checkpoint `{c.get('name')}` ({c.get('model')}, trained at {c.get('train_res')}): "
                             f"sha256 `{c.get('sha256')}`")
    return lines


def write_report(dirs, out: str | Path, formats=("md", "pdf", "png", "svg"), kernels: str | None = None,
                 kernel_sizes=None) -> dict:
    """Write OUT.md / OUT.pdf and each figure as OUT_<figure>.png/.svg. Returns what was written."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    out = Path(out)
    if out.is_dir():
        raise ResbenchError(f"{out}: is a folder; expected OUT/NAME (the report is written as NAME.md, NAME.pdf)")
    df, metas = load_sweeps(dirs)
    missing = missing_cells(df, metas)
    tables = report_tables(df)
    aliasing = None
    figures = {}
    try:
        figures["accuracy"] = ("Accuracy vs test resolution", accuracy_vs_test_res(df))
        figures["heatmap"] = ("Train x test accuracy", train_test_heatmaps(df))
        if kernels:
            sizes = kernel_sizes or sorted({parse_size(s) for s in df["test_res"]}, key=lambda s: s[0] * s[1])
            kfig, aliasing, afig = kernel_analysis(kernels, sizes)
            figures["kernels"] = ("Continuous kernels and test-grid Nyquist limits", kfig)
            figures["aliasing"] = ("Aliasing of the kernels", afig)
        written: list[str] = []
        links = {}
        for key, (_, fig) in figures.items():
            files = save_figure(fig, out.with_name(f"{out.name}_{key}"), formats)
            written += files
            links[key] = next((f for f in files if f.endswith(".png")), files[0] if files else None)
        if aliasing is not None:
            atomic_write_bytes(out.with_name(f"{out.name}_aliasing.csv"), aliasing.to_csv(index=False).encode())
            written.append(f"{out.name}_aliasing.csv")
        pages: list[str] = []
        if "pdf" in formats:
            buf = io.BytesIO()
            with PdfPages(buf) as pdf:
                fig, ax = plt.subplots(figsize=(11.7, 8.3))
                ax.axis("off")
                text = "resbench resolution report\n\n" + "\n".join(_header(df, metas, dirs, missing))
                if missing:
                    text += "\n\nMissing cells:\n" + "\n".join(missing[:40]) + ("\n..." if len(missing) > 40 else "")
                ax.text(0, 1, text, va="top", family="monospace", fontsize=6.5, wrap=True)
                pdf.savefig(fig)
                pages.append("header")
                plt.close(fig)
                for key, (title, fig) in figures.items():
                    pdf.savefig(fig)
                    pages.append(key)
                for title, table in tables.items():
                    for page in _table_pages(title, table):
                        pdf.savefig(page)
                        pages.append(title)
                        plt.close(page)
            atomic_write_bytes(out.with_name(f"{out.name}.pdf"), buf.getvalue())
            written.append(f"{out.name}.pdf")
    finally:  # on an error too (a bad --kernels file, an unwritable OUT): no figure is left open
        for _, fig in figures.values():
            plt.close(fig)
    if "md" in formats:
        md = [f"# Resolution report: {out.name}", "", *_header(df, metas, dirs, missing), ""]
        if missing:
            md += ["## Missing cells", "", "This report covers a partial sweep; these planned cells have no result:",
                   "", *[f"- {m}" for m in missing], ""]
        for key, (title, _) in figures.items():
            if links.get(key):
                md += [f"## {title}", "", f"![{title}]({links[key]})", ""]
        for title, table in tables.items():
            md += [f"## {title}", "", markdown_table(table)]
        if aliasing is not None:
            summary = aliasing.groupby(["test_res", "bandlimit"])["aliasing"].mean().reset_index()
            summary = summary.assign(_s=summary["test_res"].map(side)).sort_values(["_s", "bandlimit"]).drop(columns="_s")
            md += ["## Kernel aliasing (fraction of spectral energy above the test grid's Nyquist)", "",
                   f"Checkpoint `{kernels}`; mean over layers, axes and directions; per-layer values in "
                   f"[{out.name}_aliasing.csv]({out.name}_aliasing.csv).", "", markdown_table(summary)]
        atomic_write_bytes(out.with_name(f"{out.name}.md"), "\n".join(md).encode())
        written.append(f"{out.name}.md")
    return {"written": written, "pages": pages, "missing": missing, "tables": tables}
