"""XLSX workbooks with openpyxl: one sheet per DataFrame, the way the office keeps its ledgers."""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

HEADER_FILL = PatternFill("solid", fgColor="DDE7F0")
MAX_WIDTH = 60


def _display_width(value) -> int:
    text = "" if value is None else str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cell(value, timezone: str | None):
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        # Excel has no time zones: write local wall-clock time of the task force.
        from zoneinfo import ZoneInfo

        value = value.astimezone(ZoneInfo(timezone or "UTC")).replace(tzinfo=None)
    if hasattr(value, "value") and not isinstance(value, int | float | Decimal):
        value = value.value  # enum members
    return value


def write_workbook(
    sheets: dict[str, pd.DataFrame], path: Path, *, timezone: str | None = None
) -> Path:
    """Write one sheet per frame: bold header, frozen first row, filters, fitted widths.

    Decimal cells get a two-decimal number format (money in yuan); aware
    datetimes are written as local time in `timezone`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    wb.remove(wb.active)
    fixed = dt.datetime(2000, 1, 1)
    wb.properties.created = wb.properties.modified = fixed
    for name, frame in sheets.items():
        ws = wb.create_sheet(title=name[:31])
        headers = [str(c) for c in frame.columns]
        ws.append(headers)
        for cell in ws[1]:
            cell.font = Font(bold=True)
            cell.fill = HEADER_FILL
            cell.alignment = Alignment(vertical="center")
        widths = [_display_width(h) for h in headers]
        for row in frame.itertuples(index=False, name=None):
            values = [_cell(v, timezone) for v in row]
            ws.append(values)
            for i, v in enumerate(values):
                widths[i] = max(widths[i], _display_width(v))
        for col_idx, column in enumerate(ws.iter_cols(min_row=2), start=1):
            for cell in column:
                if isinstance(cell.value, Decimal):
                    cell.number_format = "#,##0.00"
                elif isinstance(cell.value, dt.datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm"
                elif isinstance(cell.value, dt.date):
                    cell.number_format = "yyyy-mm-dd"
            ws.column_dimensions[get_column_letter(col_idx)].width = min(
                MAX_WIDTH, widths[col_idx - 1] + 2
            )
        ws.freeze_panes = "A2"
        if headers:
            ws.auto_filter.ref = ws.dimensions
    wb.save(path)
    return path
