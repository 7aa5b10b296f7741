"""Tests for how the report reads: the heatmap grid, same-size PDF pages, the provenance pages, kernel plot labels."""

import hashlib

import matplotlib.pyplot as plt
import pytest
from matplotlib.text import Text
from pypdf import PdfReader

from resbench.report.figures import train_test_heatmaps
from resbench.report.pdf import A4_LANDSCAPE, pdf_pages
from resbench.report import kernel_analysis, write_report
from resbench.report.sections import Report, provenance_section, table_section
from test_report import grid, results_frame, synthetic_sweep


def models_grid(n_models: int) -> list[tuple]:
    """Two checkpoints (trained at 7 and 14) of each of `n_models` models, tested at 7, 14, 28."""
    return [cell for m in range(n_models) for train in (7, 14)
            for cell in grid(f"model{m}_{train}", f"model{m}", train, [7, 14, 28], policies=("native",),
                             accuracy=lambda s, p, b: 0.3 + 0.02 * int(s))]


def visible_texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def inside(inner, outer, tol=0.5) -> bool:
    return (inner.x0 >= outer.x0 - tol and inner.x1 <= outer.x1 + tol
            and inner.y0 >= outer.y0 - tol and inner.y1 <= outer.y1 + tol)


@pytest.mark.parametrize("n_models", [1, 6])
def test_heatmap_is_a_grid_of_readable_panels_with_a_colour_bar(n_models):
    fig = train_test_heatmaps(results_frame(models_grid(n_models)))
    try:
        width, height = fig.get_size_inches()
        assert 0.5 <= width / height <= 3  # 6 models were one 27.6 x 3.6 in strip
        panels = [ax for ax in fig.axes if ax.images]
        assert len(panels) == n_models
        assert len({round(ax.get_position().x0, 3) for ax in panels}) <= 3  # at most 3 panels per row
        bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert len(bars) == 1 and bars[0].get_ylabel() == "top-1 accuracy (%)"
        for ax in panels:
            assert len(ax.texts) == 2 * 3 and min(t.get_fontsize() for t in ax.texts) >= 8  # a value per cell
            labels = [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label]
            assert min(t.get_fontsize() for t in labels) >= 9
        assert bars[0].yaxis.label.get_fontsize() >= 9
    finally:
        plt.close(fig)


def test_every_pdf_page_is_a4_landscape(tmp_path, trained):
    """Figure pages (a wide heatmap, a tall kernel figure) have the table pages' size: A4 landscape."""
    out = tmp_path / "out" / "demo"
    result = write_report([synthetic_sweep(tmp_path / "sweep", models_grid(6))], out, ["pdf"],
                          kernels=str(trained["s4nd"]))
    pages = PdfReader(out.with_suffix(".pdf")).pages
    assert len(pages) == len(result["pages"]) and {"heatmap", "kernels"} <= {k for p in result["pages"] for k in p}
    sizes = {(round(float(p.mediabox.width) / 72, 2), round(float(p.mediabox.height) / 72, 2)) for p in pages}
    assert sizes == {A4_LANDSCAPE}


def pages_of(report: Report) -> list:
    """The PDF's pages of `report` as open figures (the caller closes them)."""
    figs = []
    pdf_pages(report, lambda page, keys: figs.append(page))
    return figs


def test_provenance_pages_use_9pt_text_that_stays_on_the_page():
    """40 checkpoints and a long command: the provenance wraps and continues on further pages instead of running
    off."""
    names = [f"s4nd_iso_long_checkpoint_name_{i}" for i in range(40)]
    metas = [{"command": "cli.py sweep " + " ".join(f"checkpoints/{n}.pt" for n in names) + " -o results/big",
              "started": "2025-01-01T00:00:00+00:00", "finished": "2025-01-01T01:00:00+00:00",
              "versions": {"torch": "2.14.1", "numpy": "2.3.0"},
              "checkpoints": [{"name": n, "model": "s4nd_iso", "train_res": "14",
                               "sha256": hashlib.sha256(n.encode()).hexdigest()} for n in names]}]
    frame = results_frame(grid("s4nd_iso_14", "s4nd_iso", 14, [7, 14]))
    figs = pages_of(Report("big", [provenance_section(frame, metas, ["results/big"])]))
    try:
        assert len(figs) > 1
        text = "\n".join(t.get_text() for fig in figs for t in visible_texts(fig))
        for meta in metas[0]["checkpoints"]:
            assert meta["sha256"] in text and f"checkpoint {meta['name']} (" in text
        assert "`" not in text and "**" not in text  # markdown marks are the markdown's, not the page's
        for fig in figs:
            assert tuple(round(float(v), 2) for v in fig.get_size_inches()) == A4_LANDSCAPE
            fig.canvas.draw()
            renderer = fig.canvas.get_renderer()
            for t in visible_texts(fig):
                assert t.get_fontsize() >= 9, t.get_text()[:40]
                assert inside(t.get_window_extent(renderer), fig.bbox), t.get_text()[:40]
    finally:
        for fig in figs:
            plt.close(fig)


def test_kernel_plot_has_y_labels_and_nyquist_labels_inside_their_axes(trained):
    sizes = [(7, 7), (14, 14), (28, 28)]
    fig, _, afig = kernel_analysis(str(trained["s4nd"]), sizes)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        plotted = [ax for ax in fig.axes if ax.lines]
        assert plotted and all(ax.get_ylabel().strip() for ax in plotted)
        labels = [(ax, t) for ax in fig.axes for t in ax.texts if t.get_text().startswith("Nyq")]
        assert len(labels) == len(sizes) * len(plotted) // 2  # one per test size on each spectrum axis
        for ax, t in labels:
            box = t.get_window_extent(renderer)
            assert inside(box, ax.get_window_extent(renderer)), t.get_text()
            assert not box.overlaps(ax.title.get_window_extent(renderer)), t.get_text()
    finally:
        plt.close(fig)
        plt.close(afig)


def test_full_table_pages_use_9pt_cells_that_end_above_the_note():
    import pandas as pd
    from matplotlib.table import Table

    from resbench.report.pdf_blocks import ROWS_PER_PDF_PAGE, TABLE_PT

    table = pd.DataFrame({"checkpoint": [f"s4nd_iso_{i}" for i in range(2 * ROWS_PER_PDF_PAGE)],
                          "native": [88.0] * (2 * ROWS_PER_PDF_PAGE), "winner": ["tie (95% CIs overlap)"] * 40})
    table.attrs["note"] = "winner: named only where the two cells' 95% Wilson intervals do not overlap. " * 3
    pages = pages_of(Report("t", [table_section("Policy comparison", table)]))
    parts = []
    for page in pages:
        page.canvas.draw()
        renderer = page.canvas.get_renderer()
        notes = [t.get_window_extent(renderer) for t in visible_texts(page) if t.get_text().startswith("Note:")]
        parts += [(tab, tab.get_window_extent(renderer), notes, page) for tab in page.findobj(Table)]
    try:
        assert len(parts) == 2  # two parts of ROWS_PER_PDF_PAGE rows (side by side: the table is narrow)
        for tab, box, notes, page in parts:
            assert all(cell.get_text().get_fontsize() >= TABLE_PT for cell in tab.get_celld().values())
            assert inside(box, page.bbox)
        tab, box, notes, _ = parts[-1]
        assert len(notes) == 1 and box.y0 > notes[0].y1, "the table runs into the note under it"
    finally:
        for page in pages:
            plt.close(page)
