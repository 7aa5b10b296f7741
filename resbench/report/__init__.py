"""Reports of one or more sweeps, every table and figure derived from the results frame.

The way of a section: load (sweep folders -> one frame) -> tables, stats, figures -> sections (one ordered
list: title, note, table or figure) -> one writer per format (markdown, pdf, tex, html). Calling this module,
``resbench.report(...)``, is ``resbench.api.report(...)``.
"""

from resbench.report.aliasing import ALIASING_TITLE, aliasing_drop_cells, kernel_analysis, write_kernel_plots
from resbench.report.figures import save_figure
from resbench.report.goals import GOAL_TITLE, goal_table
from resbench.report.load import (load_sweeps, missing_cells, native_as_resize_reference, subset_mark,
                                  subset_note)
from resbench.report.markdown import markdown_table
from resbench.report.metric_order import ORDER_TITLE, metric_order_table
from resbench.report.stats import SEEDS_TITLE, seed_spread_table
from resbench.report.tables import ECE_TITLE, FLIP_TITLE, TOP5_TITLE, report_tables
from resbench.report.write import FORMATS, parse_formats, write_report

__all__ = ["FORMATS", "load_sweeps", "report_tables", "missing_cells", "write_report", "parse_formats",
           "aliasing_drop_cells", "metric_order_table", "markdown_table", "kernel_analysis", "write_kernel_plots",
           "save_figure", "subset_note", "subset_mark", "native_as_resize_reference", "goal_table",
           "seed_spread_table", "ALIASING_TITLE", "GOAL_TITLE", "SEEDS_TITLE", "TOP5_TITLE", "FLIP_TITLE",
           "ECE_TITLE", "ORDER_TITLE"]

from resbench._callable import make_callable  # noqa: E402  (last: the module is complete)

make_callable(__name__, "report")  # resbench.report(...) is resbench.api.report(...)
