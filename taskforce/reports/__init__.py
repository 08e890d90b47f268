"""The reports machinery, shared by the PDCA reviews and the budget audit.

* render_report(template, context, locale, audience, out_dir) -> {"html": Path, "md": Path}
* write_workbook(sheets: {name: DataFrame}, path, timezone=None) -> Path
* svg_chart(fig, chart_id=, title=) -> str, with bar_chart, line_chart, small_multiples,
  matrix_chart; draw your own with new_figure() inside chart_style() (or @styled)
* translator(locale) -> t(key, **values); cleared_for / visible / assert_cleared for audiences
"""

import importlib

# Where each name lives. Loaded on first use (PEP 562): a process that only writes
# workbooks (a review's workbook process) need not import matplotlib and jinja2.
_HOMES = {
    "NotCleared": "audience",
    "assert_cleared": "audience",
    "cleared_for": "audience",
    "visible": "audience",
    "PALETTE": "charts",
    "bar_chart": "charts",
    "chart_style": "charts",
    "line_chart": "charts",
    "matrix_chart": "charts",
    "new_figure": "charts",
    "small_multiples": "charts",
    "styled": "charts",
    "svg_chart": "charts",
    "LOCALES": "i18n",
    "TEMPLATES_DIR": "i18n",
    "translator": "i18n",
    "render_report": "render",
    "write_workbook": "workbook",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


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
