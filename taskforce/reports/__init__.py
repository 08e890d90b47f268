"""The reports machinery, shared by the PDCA reviews and the budget audit.

* render_report(template, context, locale, audience, out_dir) -> {"html": Path, "md": Path}
* write_workbook(sheets: {name: DataFrame}, path, timezone=None) -> Path
* svg_chart(fig, chart_id=, title=) -> str, with bar_chart, line_chart, small_multiples,
  matrix_chart; draw your own with new_figure() inside chart_style() (or @styled)
* translator(locale) -> t(key, **values); cleared_for / visible / assert_cleared for audiences
"""

from taskforce.reports.audience import NotCleared, assert_cleared, cleared_for, visible
from taskforce.reports.charts import (
    PALETTE,
    bar_chart,
    chart_style,
    line_chart,
    matrix_chart,
    new_figure,
    small_multiples,
    styled,
    svg_chart,
)
from taskforce.reports.i18n import LOCALES, TEMPLATES_DIR, translator
from taskforce.reports.render import render_report
from taskforce.reports.workbook import write_workbook

__all__ = [
    "LOCALES",
    "PALETTE",
    "TEMPLATES_DIR",
    "NotCleared",
    "assert_cleared",
    "bar_chart",
    "chart_style",
    "cleared_for",
    "line_chart",
    "matrix_chart",
    "new_figure",
    "render_report",
    "small_multiples",
    "styled",
    "svg_chart",
    "translator",
    "visible",
    "write_workbook",
]
