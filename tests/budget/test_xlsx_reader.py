"""The ledger import's XLSX reader gives the values openpyxl's read-only
`iter_rows(values_only=True)` gives (the reader it replaced), for workbooks made by openpyxl
(shared strings, gaps) and by the reports' streaming writer (inline strings, date styles)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from taskforce.budget.ledger import _sheet_values
from taskforce.reports import write_workbook

VALUES = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list("ab 12.,-&<>\"'") + list("凭证金额支出")), max_size=12),
    st.integers(-(10**9), 10**9),
    st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.dates(dt.date(1990, 1, 1), dt.date(2040, 12, 31)),
    st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2040, 12, 31)).map(
        lambda d: d.replace(microsecond=0)
    ),
)


def reference(data: bytes) -> list[tuple]:
    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        return list(book.worksheets[0].iter_rows(values_only=True))
    finally:
        book.close()


def ours(data: bytes) -> list[tuple]:
    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        return _sheet_values(book)
    finally:
        book.close()


def _normal(rows: list[tuple]) -> list[tuple]:
    """Rows without trailing empty cells, and no trailing empty rows (openpyxl pads rows to
    the sheet's dimension; the import reads cells by position, so padding is immaterial)."""
    out = [
        tuple(row[: max((i + 1 for i, v in enumerate(row) if v is not None), default=0)])
        for row in rows
    ]
    while out and not out[-1]:
        out.pop()
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cells=st.dictionaries(
        st.tuples(st.integers(1, 12), st.integers(1, 6)), VALUES, min_size=1, max_size=40
    )
)
def test_openpyxl_workbooks_read_the_same(cells):
    wb = Workbook()
    ws = wb.active
    for (row, column), value in cells.items():
        ws.cell(row=row, column=column, value=value)
    buffer = io.BytesIO()
    wb.save(buffer)
    data = buffer.getvalue()
    assert _normal(ours(data)) == _normal(reference(data))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(max_size=10)),
            st.dates(dt.date(2000, 1, 1), dt.date(2040, 1, 1)),
            st.integers(0, 10**12).map(lambda fen: Decimal(fen).scaleb(-2)),
            st.booleans(),
        ),
        max_size=15,
    )
)
def test_streamed_workbooks_read_the_same(tmp_path_factory, rows):
    frame = pd.DataFrame(rows, columns=["凭证号", "日期", "金额", "flag"], dtype=object)
    path = write_workbook({"ledger": frame}, tmp_path_factory.mktemp("x") / "x.xlsx")
    data = path.read_bytes()
    assert _normal(ours(data)) == _normal(reference(data))
