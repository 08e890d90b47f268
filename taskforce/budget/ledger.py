"""The ledger (台账): disbursements entered by hand or imported from a finance export.

Import is row-validated: every bad row is reported with its spreadsheet row
number, the field and what is allowed, and is not written; valid rows land in
one set-based insert. Each entry carries an `external_ref` (the voucher number,
or a hash of the row's own content when the export has none), so importing the
same rows again — from the same file or another — adds nothing twice.

What the import checks is the *shape* of a row (a date in a budgeted year, an
exact positive amount, a line and an emergency that exist). Whether the
spending was *allowed* (an approved line, within its amount, a reserve draw
with an emergency) is the weekly compliance audit's question: the ledger
records what finance paid, the audit judges it.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.budget.forms import DisbursementForm
from taskforce.budget.models import BudgetLine, FiscalYear, LedgerEntry, LedgerKind, LineStatus
from taskforce.bulk import chunks
from taskforce.context import Context
from taskforce.emergency.models import Emergency
from taskforce.errors import DomainError
from taskforce.money import format_yuan

# Canonical column -> the headers a finance export may use (matched case-insensitively).
COLUMNS: dict[str, tuple[str, ...]] = {
    "voucher": ("voucher", "voucher_no", "voucher number", "凭证号", "凭证编号"),
    "date": ("date", "entry_date", "payment date", "日期", "支付日期", "记账日期"),
    "line": ("line", "line_code", "budget line", "预算行", "预算行编号", "预算科目"),
    "kind": ("kind", "type", "类型", "支出类型"),
    "amount": ("amount", "amount_cny", "金额", "支付金额"),
    "payee": ("payee", "收款人", "收款单位"),
    "description": ("description", "memo", "摘要", "说明"),
    "emergency": ("emergency", "emergency_id", "应急事件", "应急事件编号"),
}
REQUIRED_COLUMNS = ("date", "amount")
KIND_ALIASES = {
    "": LedgerKind.disbursement.value,
    "disbursement": LedgerKind.disbursement.value,
    "支出": LedgerKind.disbursement.value,
    "支付": LedgerKind.disbursement.value,
    "reserve_draw": LedgerKind.reserve_draw.value,
    "应急动用": LedgerKind.reserve_draw.value,
    "应急支出": LedgerKind.reserve_draw.value,
}
PAYEE_MAX = 200
VOUCHER_MAX = 150
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d")
# Rows looked up per statement; bounds the size of an IN list on every backend.
_CHUNK = 2000
# Rows per INSERT executemany call.
_INSERT_CHUNK = 20_000


@dataclass(frozen=True)
class RowError:
    row: int  # spreadsheet row number: the header is row 1
    field: str
    message: str
    allowed: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message} (allowed: {self.allowed})"


TRAIL_ROWS = 1_000  # row numbers of an import's notices kept in its trail entry


class ImportResult(BaseModel):
    source: str
    file_sha256: str
    rows: int
    imported: int
    already_imported: int  # rows whose external_ref is on the ledger already
    duplicates_in_file: list[int]  # row numbers repeating an earlier row of the same file
    imported_fen: int
    errors: list[dict[str, Any]]
    # Rows recorded that the office should look at (row, field, message): dated after today,
    # on a line not approved, a reserve draw without an emergency, for a drill, or dated
    # before its emergency opened. A finance export records payments made, so they are kept,
    # as `record_disbursement` keeps such an entry with a warning; the weekly audit reports
    # all but the first as findings. (Overspending and a payment dated before its line's
    # approval are the audit's alone: they need the line's whole ledger and its reviews.)
    to_check: list[dict[str, Any]] = []

    @property
    def error_rows(self) -> list[int]:
        return sorted({e["row"] for e in self.errors})


class EntryResult(BaseModel):
    entry_id: int
    external_ref: str
    duplicate: bool
    warnings: list[str]


@dataclass
class _Lookup:
    years: set[int]
    lines: dict[str, tuple[int, int, bool, str]]  # code -> id, fiscal year, is_reserve, status
    reserve_lines: dict[int, int]  # fiscal year -> reserve line id
    emergencies: dict[str, int]  # id or public id -> id
    existing_refs: set[str] = field(default_factory=set)
    # id -> (is a drill, when opened): what the audit judges a reserve draw's emergency by
    emergency_facts: dict[int, tuple[bool, dt.datetime]] = field(default_factory=dict)


# --- reading files -----------------------------------------------------------


XLSX_SUFFIXES = (".xlsx", ".xlsm")
CSV_SUFFIXES = (".csv", ".txt")
# Far above a year's export (a million rows of CSV are about 100 MB): a bigger file is a
# mistyped path, not a ledger, and is refused before it is read into memory.
LEDGER_FILE_MAX_BYTES = 1 << 30


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in XLSX_SUFFIXES + CSV_SUFFIXES:
        raise DomainError(
            f"cannot read {path.name}", field="path", allowed="a .csv or .xlsx finance export"
        )


def _file_bytes(path: Path) -> bytes:
    """The export's bytes, or a refusal on `path` saying what is expected: the flow's path
    is typed in a form and read on the worker, where a mistyped one was a bare
    FileNotFoundError. Only a regular file of a ledger's size is read."""
    allowed = "the path of a .csv or .xlsx finance export on the worker that runs the import"
    try:
        if not path.is_file():
            what = "a folder" if path.is_dir() else "no regular file" if path.exists() else None
            reason = f"{str(path)!r} is {what}" if what else f"no file {str(path)!r}"
            raise DomainError(reason, field="path", allowed=allowed)
        size = path.stat().st_size
        if size > LEDGER_FILE_MAX_BYTES:
            raise DomainError(
                f"{path.name} is {size:,} bytes", field="path", allowed="an export under 1 GiB"
            )
        return path.read_bytes()
    except PermissionError:
        raise DomainError(
            f"{str(path)!r} may not be read by this worker", field="path", allowed=allowed
        ) from None


def read_frame(path: Path | str, content: bytes | None = None) -> pd.DataFrame:
    """The export as text columns named canonically, plus `row` (spreadsheet row number);
    blank rows dropped. Optional columns the export lacks are empty."""
    path = Path(path)
    _check_suffix(path)
    data = content if content is not None else _file_bytes(path)
    if path.suffix.lower() in XLSX_SUFFIXES:
        header, body, typed = *_xlsx_table(data), True
    else:
        header, body, typed = *_csv_table(data), False
    if header is None:
        raise DomainError(
            f"{path.name} is empty", field="path", allowed="a header row and data rows"
        )
    mapping = _map_header(header)
    table = pd.DataFrame(body, dtype=object)
    frame = pd.DataFrame(index=table.index)
    for name in COLUMNS:
        if name in mapping and mapping[name] in table.columns:
            column = table[mapping[name]]
            frame[name] = column.map(_text) if typed else column.fillna("").astype(str).str.strip()
        else:
            frame[name] = ""
    frame["row"] = frame.index + 2  # the header is row 1
    blank = (frame[list(COLUMNS)] == "").all(axis=1)
    return frame[~blank].reset_index(drop=True)


def _csv_table(data: bytes) -> tuple[list | None, list[list[str]]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows writes GB18030
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise DomainError(
            "the file is neither UTF-8 nor GB18030 text", field="path", allowed="a CSV export"
        )
    rows = list(csv.reader(io.StringIO(text)))
    return (rows[0], rows[1:]) if rows else (None, [])


def _xlsx_table(data: bytes) -> tuple[list | None, list[tuple]]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (BadZipFile, KeyError, ValueError, OSError) as exc:  # not an Excel workbook at all
        raise DomainError(
            f"not a readable Excel workbook ({type(exc).__name__}: {exc})",
            field="path",
            allowed="an .xlsx file saved by Excel or LibreOffice, or a .csv export",
        ) from None
    try:
        rows = _sheet_values(book)
    finally:
        book.close()
    return (list(rows[0]), rows[1:]) if rows else (None, [])


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_ROW, _CELL, _VALUE, _INLINE = f"{_MAIN}row", f"{_MAIN}c", f"{_MAIN}v", f"{_MAIN}is"
_TEXT, _RUN = f"{_MAIN}t", f"{_MAIN}r"


def _sheet_values(book) -> list[tuple]:
    """The first sheet's cell values, as openpyxl's `iter_rows(values_only=True)` gives them
    (a missing row is an empty tuple, so list positions stay sheet row numbers - 1).

    openpyxl builds a descriptor object per cell (a rich-text object per inline string):
    on a 100,000-row export that took longer than the whole rest of the import. This reads
    the sheet XML with ElementTree's C parser and converts each value as openpyxl does,
    using the workbook openpyxl opened for the shared strings, date styles and epoch.
    """
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils.cell import column_index_from_string
    from openpyxl.utils.datetime import from_excel, from_ISO8601

    sheet = book.worksheets[0]
    shared, epoch = sheet._shared_strings, book.epoch
    dates, durations = book._date_formats, book._timedelta_formats
    rows: list[tuple] = []
    row_number, column, cells = 0, 0, {}
    with sheet._get_source() as source:
        for event, element in iterparse(source, events=("start", "end")):
            tag = element.tag
            if event == "start":
                if tag == _ROW:
                    number = element.get("r")
                    row_number = int(number) if number else row_number + 1
                    column, cells = 0, {}
                continue
            if tag == _CELL:
                ref = element.get("r")
                if ref:
                    column = column_index_from_string(ref.rstrip("0123456789"))
                else:
                    column += 1
                kind = element.get("t", "n")
                if kind == "inlineStr":
                    node = element.find(_INLINE)
                    value = None if node is None else _rich_text(node)
                else:
                    value = element.findtext(_VALUE, None) or None
                    if value is not None:
                        if kind == "n":
                            value = (
                                float(value)
                                if ("." in value or "E" in value or "e" in value)
                                else int(value)
                            )
                            style = int(element.get("s", 0) or 0)
                            if style in dates:
                                try:
                                    value = from_excel(value, epoch, timedelta=style in durations)
                                except (OverflowError, ValueError):
                                    value = "#VALUE!"
                        elif kind == "s":
                            value = shared[int(value)]
                        elif kind == "b":
                            value = bool(int(value))
                        elif kind == "d":
                            value = from_ISO8601(value)
                cells[column] = value
                element.clear()
            elif tag == _ROW:
                while len(rows) < row_number - 1:
                    rows.append(())
                width = max(cells, default=0)
                rows.append(tuple(cells.get(c) for c in range(1, width + 1)))
                element.clear()
    return rows


def _rich_text(node) -> str:
    """An inline string's text: its plain text and its runs' text (not phonetic hints)."""
    parts = [node.findtext(_TEXT) or ""]
    parts.extend(run.findtext(_TEXT) or "" for run in node.findall(_RUN))
    return "".join(parts)


def _map_header(header: list[Any]) -> dict[str, int]:
    wanted = {alias.casefold(): name for name, aliases in COLUMNS.items() for alias in aliases}
    mapping: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = wanted.get(str(cell or "").strip().casefold())
        if name and name not in mapping:
            mapping[name] = i
    missing = [c for c in REQUIRED_COLUMNS if c not in mapping]
    if missing:
        raise DomainError(
            f"row 1: no column for {', '.join(missing)}",
            field="header",
            allowed="; ".join(f"{c}: {' / '.join(COLUMNS[c])}" for c in missing),
        )
    return mapping


def _text(value: Any) -> str:
    """A typed spreadsheet cell as the text a clerk typed."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        # XLSX stores numbers as doubles; repr gives the shortest decimal that round-trips,
        # i.e. what was typed (1001.0 for a voucher typed 1001). Sub-fen noise fails below.
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value).strip()


# --- validating rows (column at a time) --------------------------------------

# Yuan with at most two decimals (trailing zeros allowed), thousands separators and a
# currency sign removed first. Exact: parsed as digits into integer fen, never a float.
_AMOUNT = r"^(\d{1,13})(?:\.(\d{0,2})0*)?$"
_NEGATIVE = r"^-\s*\d"
_CURRENCY = r"[,，¥￥\s]"


def amounts_to_fen(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(fen as int64, error message or "") for a column of amount texts."""
    cleaned = text.astype(str).str.replace(_CURRENCY, "", regex=True)
    parts = cleaned.str.extract(_AMOUNT)
    ok = parts[0].notna()
    fen = pd.Series(0, index=text.index, dtype="int64")
    if ok.any():
        whole = parts.loc[ok, 0].astype("int64")
        cents = parts.loc[ok, 1].fillna("").str.ljust(2, "0").astype("int64")
        fen.loc[ok] = whole * 100 + cents
    message = pd.Series("", index=text.index, dtype=object)
    message[text == ""] = "missing"
    bad = ~ok & (text != "")
    message[bad] = "'" + text[bad] + "' is not an amount in yuan with at most two decimals"
    # Digits beyond what the ledger holds (13 before the point: under ten trillion yuan)
    # say so, not "not an amount" (an operator trial typed 99999999999999999).
    too_large = bad & cleaned.str.fullmatch(r"\d{14,}(?:\.\d*)?")
    message[too_large] = "'" + text[too_large] + "' is too large (at most 13 digits of yuan)"
    negative = bad & cleaned.str.match(_NEGATIVE)
    message[negative] = "'" + text[negative] + "' is not positive"
    zero = ok & (fen == 0)
    message[zero] = "'" + text[zero] + "' is not positive"
    return fen, message


def _dates(text: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    for fmt in _DATE_FORMATS[1:]:
        todo = parsed.isna() & (text != "")
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce")
    return parsed


def content_ref(values: dict[str, Any]) -> str:
    """A voucher-less row's identity: a hash of its own content, independent of the file."""
    canonical = "\x1f".join(
        str(values.get(k, ""))
        for k in ("date", "line", "kind", "amount_fen", "payee", "description", "emergency")
    )
    return "row:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _lookup(session: Session, frame: pd.DataFrame) -> _Lookup:
    codes = set(frame["line"]) - {""}
    emergency_refs = set(frame["emergency"]) - {""}
    years = set(session.scalars(select(FiscalYear.year)))
    lines: dict[str, tuple[int, int, bool, str]] = {}
    for chunk in chunks(sorted(codes), _CHUNK):
        for line_id, code, year, is_reserve, status in session.execute(
            select(
                BudgetLine.id,
                BudgetLine.code,
                BudgetLine.fiscal_year,
                BudgetLine.is_reserve,
                BudgetLine.status,
            ).where(BudgetLine.code.in_(chunk))
        ):
            lines[code] = (line_id, year, bool(is_reserve), LineStatus(status).value)
    reserve_lines = dict(
        session.execute(
            select(BudgetLine.fiscal_year, BudgetLine.id).where(BudgetLine.is_reserve.is_(True))
        ).all()
    )
    emergencies: dict[str, int] = {}
    facts: dict[int, tuple[bool, dt.datetime]] = {}
    if emergency_refs:
        ids = [int(r) for r in emergency_refs if r.isdigit()]
        for em_id, public_id, is_drill, opened_at in session.execute(
            select(
                Emergency.id, Emergency.public_id, Emergency.is_drill, Emergency.opened_at
            ).where(Emergency.id.in_(ids) | Emergency.public_id.in_(sorted(emergency_refs)))
        ):
            emergencies[public_id] = em_id
            emergencies[str(em_id)] = em_id
            facts[em_id] = (bool(is_drill), opened_at)
    return _Lookup(
        years=years,
        lines=lines,
        reserve_lines=reserve_lines,
        emergencies=emergencies,
        emergency_facts=facts,
    )


def validate_frame(frame: pd.DataFrame, lookup: _Lookup) -> tuple[pd.DataFrame, list[RowError]]:
    """The insert values of the valid rows, and the errors that keep the others out.

    Column at a time (vectorised), so a 100,000-row export is validated in pandas
    rather than in a Python loop per row; messages are built only for bad rows.
    """
    errors: list[RowError] = []
    bad = pd.Series(False, index=frame.index)

    def flag(mask: pd.Series, field_name: str, message: Callable[[pd.Index], Any], allowed) -> None:
        nonlocal bad
        if not mask.any():
            return
        bad |= mask
        where = mask[mask].index
        messages = message(where)
        allowed_ = allowed(where) if callable(allowed) else [allowed] * len(where)
        errors.extend(
            RowError(int(r), field_name, str(m), str(a))
            for r, m, a in zip(frame.loc[where, "row"], messages, allowed_, strict=True)
        )

    text = frame["date"]
    dates = _dates(text)
    no_date = dates.isna()
    flag(
        no_date,
        "date",
        lambda w: [f"{t!r} is not a date" if t else "missing" for t in text[w]],
        "a date as YYYY-MM-DD (or YYYY/MM/DD, YYYYMMDD)",
    )
    years = dates.dt.year
    budgeted = ", ".join(map(str, sorted(lookup.years))) or "none set"
    flag(
        ~no_date & ~years.isin(lookup.years),
        "date",
        lambda w: [f"no budget is set for {int(y)}" for y in years[w]],
        f"a date in a budgeted year ({budgeted})",
    )

    fen, amount_error = amounts_to_fen(frame["amount"])
    flag(
        amount_error != "",
        "amount",
        lambda w: amount_error[w],
        "a positive amount in yuan, at most two decimals, e.g. 1234.56",
    )

    kind = frame["kind"].str.casefold().map(KIND_ALIASES)
    flag(
        kind.isna(),
        "kind",
        lambda w: [f"{k!r} is not a ledger kind" for k in frame.loc[w, "kind"]],
        "disbursement (支出) or reserve_draw (应急动用), or empty",
    )

    code = frame["line"]
    line_id = code.map({c: f[0] for c, f in lookup.lines.items()})
    line_year = code.map({c: f[1] for c, f in lookup.lines.items()})
    is_reserve = code.map({c: f[2] for c, f in lookup.lines.items()}).eq(True)
    known = line_id.notna()
    flag(
        (code != "") & ~known,
        "line",
        lambda w: [f"no budget line {c!r}" for c in code[w]],
        "the code of a budget line, or empty for spending without a line",
    )
    flag(
        known & ~no_date & (line_year != years),
        "line",
        lambda w: [
            f"line {c} belongs to fiscal year {int(y)}, the entry is dated {t}"
            for c, y, t in zip(code[w], line_year[w], text[w], strict=True)
        ],
        lambda w: [f"a line of {int(y)}" for y in years[w]],
    )
    # A payment on the reserve line is a reserve draw; a reserve draw without a line is
    # booked on its year's reserve line.
    draw = LedgerKind.reserve_draw.value
    kind = kind.where(~is_reserve | kind.isna(), draw)
    no_line_draw = (code == "") & (kind == draw) & ~no_date
    if no_line_draw.any():
        line_id = line_id.where(~no_line_draw, years.map(lookup.reserve_lines))

    emergency = frame["emergency"]
    emergency_id = emergency.map(lookup.emergencies)
    flag(
        (emergency != "") & emergency_id.isna(),
        "emergency",
        lambda w: [f"no emergency {e!r}" for e in emergency[w]],
        "an emergency id or public id, or empty",
    )
    for column, limit in (("payee", PAYEE_MAX), ("voucher", VOUCHER_MAX)):
        lengths = frame[column].str.len()
        flag(
            lengths > limit,
            column,
            lambda w, lengths=lengths: [f"{n} characters" for n in lengths[w]],
            f"at most {limit}",
        )

    ok = ~bad
    good = pd.DataFrame(
        {
            "fiscal_year": years[ok].astype("int64"),
            "line_id": line_id[ok],
            "kind": kind[ok],
            "emergency_id": emergency_id[ok],
            "entry_date": dates[ok].dt.date,
            "amount_fen": fen[ok],
            "payee": frame.loc[ok, "payee"],
            "description": frame.loc[ok, "description"],
            "voucher": frame.loc[ok, "voucher"],
            "line": code[ok],
            "emergency": emergency[ok],
            "row": frame.loc[ok, "row"],
        }
    )
    good["external_ref"] = _external_refs(good)
    errors.sort(key=lambda e: (e.row, e.field))
    return good, errors


def _external_refs(good: pd.DataFrame) -> pd.Series:
    refs = "voucher:" + good["voucher"]
    blank = good["voucher"] == ""
    if blank.any():
        refs[blank] = [
            content_ref(
                {
                    "date": d.isoformat(),
                    "line": line,
                    "kind": k,
                    "amount_fen": int(a),
                    "payee": p,
                    "description": desc,
                    "emergency": em,
                }
            )
            for d, line, k, a, p, desc, em in zip(
                good.loc[blank, "entry_date"],
                good.loc[blank, "line"],
                good.loc[blank, "kind"],
                good.loc[blank, "amount_fen"],
                good.loc[blank, "payee"],
                good.loc[blank, "description"],
                good.loc[blank, "emergency"],
                strict=True,
            )
        ]
    return refs


# --- writing -----------------------------------------------------------------

_INSERT_COLUMNS = [
    "fiscal_year",
    "line_id",
    "kind",
    "emergency_id",
    "entry_date",
    "amount_fen",
    "payee",
    "description",
    "external_ref",
]


def _records(frame: pd.DataFrame, now: dt.datetime) -> list[dict[str, Any]]:
    out = frame[_INSERT_COLUMNS].astype(object).where(frame[_INSERT_COLUMNS].notna(), None)
    records = out.to_dict("records")
    for r in records:
        r["created_at"] = now
        for key in ("line_id", "emergency_id", "fiscal_year", "amount_fen"):
            if r[key] is not None:
                r[key] = int(r[key])
    return records


def _optional_ints(values: list) -> list[int | None]:
    return [None if v is None or v != v else int(v) for v in values]  # v != v: NaN


def _bulk_insert(session: Session, frame: pd.DataFrame, now: dt.datetime) -> None:
    """One executemany per chunk straight to the driver.

    Values are bound column at a time with each column type's own bind processor
    (the same conversion SQLAlchemy applies, e.g. dates as text on SQLite), which
    avoids SQLAlchemy's per-row parameter processing: on a 100,000-row export that
    processing costs more than the insert itself.
    """
    if frame.empty:
        return
    connection = session.connection()
    dialect = connection.dialect
    table = LedgerEntry.__table__
    columns = [*_INSERT_COLUMNS, "created_at"]
    data: dict[str, list] = {
        "fiscal_year": [int(v) for v in frame["fiscal_year"]],
        "line_id": _optional_ints(frame["line_id"].tolist()),
        "kind": frame["kind"].tolist(),
        "emergency_id": _optional_ints(frame["emergency_id"].tolist()),
        "entry_date": frame["entry_date"].tolist(),
        "amount_fen": [int(v) for v in frame["amount_fen"]],
        "payee": frame["payee"].tolist(),
        "description": frame["description"].tolist(),
        "external_ref": frame["external_ref"].tolist(),
        "created_at": [now] * len(frame),
    }
    for name in columns:
        process = table.c[name].type.bind_processor(dialect)
        if process is None:
            continue
        cache: dict[Any, Any] = {}
        data[name] = [
            None if v is None else cache[v] if v in cache else cache.setdefault(v, process(v))
            for v in data[name]
        ]
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([marker] * len(columns))}) "
        # A concurrent import of the same rows: the first one wins, the other adds nothing.
        "ON CONFLICT (external_ref) DO NOTHING"
    )
    rows = list(zip(*(data[c] for c in columns), strict=True))
    for chunk in chunks(rows, _INSERT_CHUNK):
        connection.exec_driver_sql(sql, chunk)


def import_frame(
    session: Session,
    ctx: Context,
    frame: pd.DataFrame,
    *,
    actor: str,
    source: str,
    file_sha256: str = "",
) -> ImportResult:
    """Validate every row, insert the valid ones that are not on the ledger yet, report the rest."""
    lookup = _lookup(session, frame)
    good, errors = validate_frame(frame, lookup)
    recorded = _recorded(session, sorted(set(good["external_ref"])))
    lookup.existing_refs.update(recorded)
    good, conflicts = _drop_conflicts(good, recorded)
    errors = sorted([*errors, *conflicts], key=lambda e: (e.row, e.field))
    already = good["external_ref"].isin(lookup.existing_refs)
    fresh = good[~already]
    repeated = fresh["external_ref"].duplicated(keep="first")
    fresh = fresh[~repeated]
    now = ctx.now()
    _bulk_insert(session, fresh, now)
    imported_fen = int(fresh["amount_fen"].sum()) if len(fresh) else 0
    result = ImportResult(
        source=source,
        file_sha256=file_sha256,
        rows=len(frame),
        imported=len(fresh),
        already_imported=int(already.sum()),
        duplicates_in_file=[int(r) for r in good[~already].loc[repeated[repeated].index, "row"]],
        imported_fen=imported_fen,
        errors=[e.__dict__ for e in errors],
        to_check=_to_check(fresh, lookup, ctx.today(), ZoneInfo(ctx.policy.timezone)),
    )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="budget.ledger_imported",
        subject_type="ledger_import",
        subject_id=file_sha256[:16] or source[:64],
        payload={
            "source": source,
            "file_sha256": file_sha256,
            "rows": result.rows,
            "imported": result.imported,
            "imported_fen": imported_fen,
            "already_imported": result.already_imported,
            "duplicates_in_file": result.duplicates_in_file,
            "error_rows": result.error_rows,
            "to_check": len(result.to_check),  # the first rows: the trail is no ledger copy
            "to_check_rows": sorted({n["row"] for n in result.to_check})[:TRAIL_ROWS],
        },
        notify="ledger_imported",
        context={"source": source, "imported": result.imported, "errors": len(result.error_rows)},
    )
    return result


def _to_check(
    rows: pd.DataFrame, lookup: _Lookup, today: dt.date, tz: ZoneInfo
) -> list[dict[str, Any]]:
    """Notices on the rows recorded (see ImportResult.to_check), by row. Masks over whole
    columns; messages only for the rows flagged."""
    if rows.empty:
        return []
    status = rows["line"].map({c: f[3] for c, f in lookup.lines.items()})
    draw = (rows["kind"] == LedgerKind.reserve_draw.value).to_numpy()
    later = (rows["entry_date"] > today).to_numpy(bool)
    unapproved = ~draw & (status != LineStatus.approved.value).to_numpy()
    no_emergency = draw & rows["emergency_id"].isna().to_numpy()
    # As the audit's reserve check judges a draw's emergency: a drill, or opened (its local
    # day) after the draw. Draws are few: row by row, only for them.
    drill, opened_later = np.zeros_like(draw), np.zeros_like(draw)
    emergency_ids, days = rows["emergency_id"].to_numpy(), rows["entry_date"].to_numpy()
    for pos in (draw & ~no_emergency).nonzero()[0]:
        fact = lookup.emergency_facts.get(int(emergency_ids[pos]))
        if fact is None:
            continue
        is_drill, opened_at = fact
        drill[pos] = is_drill
        opened_later[pos] = not is_drill and opened_at.astimezone(tz).date() > days[pos]
    checks = (
        (later, "date", lambda day, line: f"dated {day}, after today ({today}): check the date"),
        (
            unapproved,
            "line",
            lambda day, line: (
                (f"line {line} is not approved" if line else "no budget line")
                + ": the weekly audit will report it"
            ),
        ),
        (
            no_emergency,
            "emergency",
            lambda day, line: (
                "a reserve draw without an emergency (only an emergency may "
                "draw on the reserve): the weekly audit will report it"
            ),
        ),
        (
            drill,
            "emergency",
            lambda day, line: (
                "a reserve draw for a drill (a drill may not draw on the reserve): "
                "the weekly audit will report it"
            ),
        ),
        (
            opened_later,
            "emergency",
            lambda day, line: (
                f"a reserve draw dated {day}, before its emergency was opened: "
                "the weekly audit will report it"
            ),
        ),
    )
    notices = []
    for mask, field_name, message in checks:
        if not mask.any():
            continue
        flagged = rows[mask]
        notices += [
            {"row": int(row), "field": field_name, "message": message(day, line)}
            for row, day, line in zip(
                flagged["row"].tolist(),
                flagged["entry_date"].tolist(),
                flagged["line"].tolist(),
                strict=True,
            )
        ]
    return sorted(notices, key=lambda n: (n["row"], n["field"]))


def _recorded(session: Session, refs: list[str]) -> dict[str, tuple]:
    """The ledger's entries under these refs: (id, line id, amount in fen, ISO day)."""
    out: dict[str, tuple] = {}
    for chunk in chunks(refs, _CHUNK):
        rows = session.execute(
            select(
                LedgerEntry.external_ref,
                LedgerEntry.id,
                LedgerEntry.line_id,
                LedgerEntry.amount_fen,
                LedgerEntry.entry_date,
            ).where(LedgerEntry.external_ref.in_(chunk))
        )
        for ref, entry_id, line_id, amount_fen, day in rows:
            out[ref] = (entry_id, line_id, int(amount_fen), _day(day))
    return out


def _drop_conflicts(
    good: pd.DataFrame, recorded: dict[str, tuple]
) -> tuple[pd.DataFrame, list[RowError]]:
    """Rows whose voucher is on the ledger with another line, amount or date: errors to show,
    as `record_entry` refuses them, not rows to count as "already imported"."""
    on_ledger = good["external_ref"].isin(recorded)
    if not on_ledger.any():
        return good, []
    rows = good[on_ledger]
    conflicting, errors = [], []
    for index, ref, line_id, amount_fen, day, row in zip(
        rows.index,
        rows["external_ref"],
        rows["line_id"],
        rows["amount_fen"],
        rows["entry_date"],
        rows["row"],
        strict=True,
    ):
        entry_id, was_line, was_fen, was_day = recorded[ref]
        line = None if pd.isna(line_id) else int(line_id)
        if (line, int(amount_fen), _day(day)) == (was_line, was_fen, was_day):
            continue
        conflicting.append(index)
        errors.append(
            RowError(
                int(row),
                "voucher",
                f"{ref.removeprefix('voucher:')!r} is already on the ledger (entry {entry_id}: "
                f"{format_yuan(was_fen, 'en')} dated {was_day}) with another amount, line or date",
                "a new voucher number; a recorded payment is not changed (a further payment "
                "is a new entry with its own voucher)",
            )
        )
    return good.drop(index=conflicting), errors


def import_file(
    session: Session, ctx: Context, path: Path | str, *, actor: str, content: bytes | None = None
) -> ImportResult:
    path = Path(path)
    _check_suffix(path)
    data = content if content is not None else _file_bytes(path)
    frame = read_frame(path, data)
    return import_frame(
        session,
        ctx,
        frame,
        actor=actor,
        source=path.name,
        file_sha256=hashlib.sha256(data).hexdigest(),
    )


def _lines_of(session: Session, year: int, shown: int = 20) -> str:
    """The budget lines a disbursement of `year` may name, for a refusal's message."""
    codes = list(
        session.scalars(
            select(BudgetLine.code)
            .where(BudgetLine.fiscal_year == year)
            .order_by(BudgetLine.code)
            .limit(shown + 1)
        )
    )
    if not codes:
        return f"the code of a budget line of {year}; {year} has none yet"
    more = ", …" if len(codes) > shown else ""
    return f"the code of a budget line of {year}: {', '.join(codes[:shown])}{more}"


def record_disbursement(
    session: Session, ctx: Context, form: DisbursementForm, *, actor: str
) -> EntryResult:
    """One disbursement from the UI. The voucher number is its idempotency key."""
    form = DisbursementForm.model_validate(form.model_dump())
    frame = pd.DataFrame(
        [
            {
                "voucher": form.voucher,
                "date": form.entry_date.isoformat(),
                "line": form.line_code,
                "kind": "",
                "amount": str(form.amount),
                "payee": form.payee,
                "description": form.description,
                "emergency": "",
                "row": 1,
            }
        ]
    )
    lookup = _lookup(session, frame)
    good, errors = validate_frame(frame, lookup)
    if errors:
        first = errors[0]
        field_name = {"date": "entry_date", "line": "line_code"}.get(first.field, first.field)
        allowed = first.allowed
        if first.field == "line" and form.line_code not in lookup.lines:
            # The import's rule says "or empty", which this form (a line is required) is
            # not: name the lines the entry may go to instead (an operator trial).
            allowed = _lines_of(session, form.entry_date.year)
        raise DomainError(first.message, field=field_name, allowed=allowed)
    values = _records(good, ctx.now())[0]
    existing = session.execute(
        select(
            LedgerEntry.id, LedgerEntry.line_id, LedgerEntry.amount_fen, LedgerEntry.entry_date
        ).where(LedgerEntry.external_ref == values["external_ref"])
    ).one_or_none()
    if existing is not None:
        # The voucher number is the entry's identity: the same entry again is a replay; the
        # same voucher with another amount, line or date is a mistake to show, not to drop.
        same = (existing.line_id, existing.amount_fen, _day(existing.entry_date)) == (
            values["line_id"],
            values["amount_fen"],
            _day(values["entry_date"]),
        )
        if not same:
            raise DomainError(
                f"voucher {form.voucher!r} is already on the ledger (entry {existing.id}: "
                f"{format_yuan(existing.amount_fen, 'en')} dated {_day(existing.entry_date)}), "
                "with another amount, line or date",
                field="voucher",
                allowed="a new voucher number; a recorded payment is not changed (a further "
                "payment is a new entry with its own voucher)",
            )
        return EntryResult(
            entry_id=existing.id, external_ref=values["external_ref"], duplicate=True, warnings=[]
        )
    if values["kind"] == LedgerKind.reserve_draw.value:
        raise DomainError(
            f"{form.line_code} is the emergency reserve",
            field="line_code",
            allowed="a budget line; reserve draws go through budget-reserve-draw with an emergency",
        )
    warnings = []
    status = lookup.lines[form.line_code][3]
    if status != LineStatus.approved.value:
        warnings.append(
            f"line {form.line_code} is {status}, not approved: the weekly audit will report it"
        )
    if form.entry_date > ctx.today():
        warnings.append(f"dated {form.entry_date}, after today ({ctx.today()}): check the date")
    entry = LedgerEntry(**{**values, "kind": LedgerKind(values["kind"])})
    session.add(entry)
    session.flush()
    events.record(
        session,
        ctx.policy,
        at=values["created_at"],
        actor=actor,
        action="budget.disbursement_recorded",
        subject_type="ledger_entry",
        subject_id=entry.id,
        payload={
            "line": form.line_code,
            "amount_fen": entry.amount_fen,
            "entry_date": form.entry_date,
            "voucher": form.voucher,
            "warnings": warnings,
        },
    )
    return EntryResult(
        entry_id=entry.id, external_ref=entry.external_ref, duplicate=False, warnings=warnings
    )


def _day(value) -> str:
    """A stored or typed entry date as an ISO day (SQLite returns text, PostgreSQL dates)."""
    return str(value)[:10]
