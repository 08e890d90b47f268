"""The streaming XLSX writer gives the workbook openpyxl gave: same sheets, values, formats,
header, frozen row, filter and widths (checked against the openpyxl writer it replaced)."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from taskforce.reports import write_workbook

# --- the openpyxl writer this module replaced, kept as the reference --------------------


def _display_width(value) -> int:
    text = "" if value is None else str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cell(value, timezone):
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        from zoneinfo import ZoneInfo

        value = value.astimezone(ZoneInfo(timezone or "UTC")).replace(tzinfo=None)
    if hasattr(value, "value") and not isinstance(value, int | float | Decimal):
        value = value.value
    return value


def reference_workbook(sheets: dict[str, pd.DataFrame], path: Path, *, timezone=None) -> Path:
    wb = Workbook()
    wb.remove(wb.active)
    for name, frame in sheets.items():
        ws = wb.create_sheet(title=name[:31])
        headers = [str(c) for c in frame.columns]
        ws.append(headers)
        for cell in ws[1]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDE7F0")
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
                60, widths[col_idx - 1] + 2
            )
        ws.freeze_panes = "A2"
        if headers:
            ws.auto_filter.ref = ws.dimensions
    wb.save(path)
    return path


def read_back(path: Path) -> dict:
    """What a reader sees. Trailing rows of nothing but empty cells are left out: openpyxl
    wrote no row for them, the streaming writer writes empty ones (invisible either way)."""
    wb = load_workbook(path)
    out = {}
    for ws in wb.worksheets:
        rows = [
            [(c.value, c.number_format if c.value is not None else None) for c in row]
            for row in ws.iter_rows()
        ]
        while len(rows) > 1 and all(value is None for value, _ in rows[-1]):
            rows.pop()
        out[ws.title] = {
            "rows": rows,
            "header_bold": [c.font.b for c in ws[1]],
            "header_fill": [c.fill.fgColor.rgb[-6:] for c in ws[1]],
            "freeze": ws.freeze_panes,
            "filter": re.sub(r"\d+$", "", ws.auto_filter.ref or ""),  # the columns filtered
            "widths": [
                ws.column_dimensions[get_column_letter(i)].width
                for i in range(1, ws.max_column + 1)
            ],
        }
    return out


# --- values a ledger frame holds -------------------------------------------------------

TEXT = st.text(
    alphabet=st.sampled_from(list("abcXYZ 0129.,-<>&\"'") + list("市场监管局资金台账行动项")),
    max_size=30,
)
MOMENTS = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 12, 31))
COLUMNS = {
    "text": st.one_of(st.none(), TEXT),
    "int": st.integers(-(10**12), 10**12),
    "float": st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False).map(lambda f: round(f, 4))),
    "money": st.one_of(st.none(), st.integers(0, 10**12).map(lambda fen: Decimal(fen).scaleb(-2))),
    "day": st.one_of(st.none(), st.dates(dt.date(2000, 1, 1), dt.date(2040, 12, 31))),
    "naive": st.one_of(st.none(), MOMENTS.map(lambda m: m.replace(microsecond=0))),
    "aware": st.one_of(
        st.none(), MOMENTS.map(lambda m: m.replace(second=0, microsecond=0, tzinfo=dt.UTC))
    ),
    "flag": st.booleans(),
}


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(st.integers(0, 12))
    chosen = draw(st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=6, unique=True))
    data = {name: draw(st.lists(COLUMNS[name], min_size=n, max_size=n)) for name in chosen}
    frame = pd.DataFrame(data)
    if "aware" in frame and draw(st.booleans()):
        frame["aware"] = pd.to_datetime(frame["aware"], utc=True)  # a datetime64[ns, UTC] column
    if "int" in frame:
        frame["int"] = frame["int"].astype("int64")
    return frame


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sheets=st.lists(frames(), min_size=1, max_size=3))
def test_the_streaming_writer_gives_the_workbook_openpyxl_gave(tmp_path, sheets):
    named = {f"台账{i}": frame for i, frame in enumerate(sheets)}
    ours = write_workbook(named, tmp_path / "ours.xlsx", timezone="Asia/Shanghai")
    reference = reference_workbook(named, tmp_path / "reference.xlsx", timezone="Asia/Shanghai")
    assert read_back(ours) == read_back(reference)


def test_a_frame_longer_than_a_sheet_continues_on_numbered_sheets(tmp_path):
    frame = pd.DataFrame({"任务": [f"行动项{i}" for i in range(7)], "n": range(7)})
    path = write_workbook(
        {"任务台账": frame, "资金台账": frame.head(2)}, tmp_path / "x.xlsx", max_rows=4
    )
    wb = load_workbook(path)
    assert wb.sheetnames == ["任务台账", "任务台账 (2)", "任务台账 (3)", "资金台账"]
    rows = [list(ws.iter_rows(values_only=True)) for ws in wb.worksheets[:3]]
    assert all(r[0] == ("任务", "n") for r in rows)  # every part has the header
    assert [v for part in rows for v in part[1:]] == list(frame.itertuples(index=False, name=None))


def test_same_content_gives_the_same_bytes(tmp_path):
    frame = pd.DataFrame({"a": ["x", None], "b": [Decimal("1.50"), Decimal("2.00")]})
    one = write_workbook({"s": frame}, tmp_path / "1.xlsx").read_bytes()
    two = write_workbook({"s": frame}, tmp_path / "2.xlsx").read_bytes()
    assert one == two


def test_a_note_sits_above_the_header_of_every_part(tmp_path):
    from taskforce.reports.workbook import SheetView

    frame = pd.DataFrame({"任务": [f"行动项{i}" for i in range(5)], "n": range(5)})
    note = "本表列出 2026-11 的任务节点 <&>"
    path = write_workbook(
        {"任务台账": SheetView.of(frame, note=note)}, tmp_path / "x.xlsx", max_rows=4
    )
    wb = load_workbook(path)
    # Four rows a sheet: the note, the header and two rows of data.
    assert wb.sheetnames == ["任务台账", "任务台账 (2)", "任务台账 (3)"]
    rows = [list(ws.iter_rows(values_only=True)) for ws in wb.worksheets]
    assert all(part[0][0] == note and part[1] == ("任务", "n") for part in rows)
    assert [v for part in rows for v in part[2:]] == list(frame.itertuples(index=False, name=None))
    assert all(ws.freeze_panes == "A3" and ws.auto_filter.ref.startswith("A2:") for ws in wb)


def test_an_error_while_writing_stops_the_deflating_thread(tmp_path):
    import threading

    class Unwritable:
        def __str__(self):
            raise RuntimeError("no text")

    frame = pd.DataFrame({"a": [Unwritable()]})
    with pytest.raises(RuntimeError, match="no text"):
        write_workbook({"s": frame}, tmp_path / "x.xlsx")
    assert not [t for t in threading.enumerate() if t.name == "xlsx-deflate"]
