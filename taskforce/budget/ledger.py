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
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.budget.forms import DisbursementForm
from taskforce.budget.models import BudgetLine, FiscalYear, LedgerEntry, LedgerKind, LineStatus
from taskforce.context import Context
from taskforce.emergency.models import Emergency
from taskforce.errors import DomainError
from taskforce.money import MoneyError, to_fen

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
    "": LedgerKind.disbursement,
    "disbursement": LedgerKind.disbursement,
    "支出": LedgerKind.disbursement,
    "支付": LedgerKind.disbursement,
    "reserve_draw": LedgerKind.reserve_draw,
    "应急动用": LedgerKind.reserve_draw,
    "应急支出": LedgerKind.reserve_draw,
}
PAYEE_MAX = 200
VOUCHER_MAX = 150
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d")
# Rows looked up per statement; bounds the size of an IN list on every backend.
_CHUNK = 2000


@dataclass(frozen=True)
class RowError:
    row: int  # spreadsheet row number: the header is row 1
    field: str
    message: str
    allowed: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message} (allowed: {self.allowed})"


class ImportResult(BaseModel):
    source: str
    file_sha256: str
    rows: int
    imported: int
    already_imported: int  # rows whose external_ref is on the ledger already
    duplicates_in_file: list[int]  # row numbers repeating an earlier row of the same file
    imported_fen: int
    errors: list[dict[str, Any]]

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


# --- reading files -----------------------------------------------------------


def read_rows(path: Path | str, content: bytes | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(row number, {canonical column: raw value}) for each non-empty row of a CSV or XLSX file."""
    path = Path(path)
    data = content if content is not None else path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        table = _xlsx_table(data)
    elif suffix in (".csv", ".txt"):
        table = _csv_table(data)
    else:
        raise DomainError(
            f"cannot read {path.name}", field="file", allowed="a .csv or .xlsx finance export"
        )
    if not table:
        raise DomainError(
            f"{path.name} is empty", field="file", allowed="a header row and data rows"
        )
    header, *body = table
    mapping = _map_header(header)
    rows = []
    for offset, values in enumerate(body, start=2):
        if all(v is None or str(v).strip() == "" for v in values):
            continue
        rows.append(
            (offset, {name: values[i] if i < len(values) else None for name, i in mapping.items()})
        )
    return rows


def _csv_table(data: bytes) -> list[list[Any]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows writes GB18030
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise DomainError(
            "the file is neither UTF-8 nor GB18030 text", field="file", allowed="a CSV export"
        )
    return [list(r) for r in csv.reader(io.StringIO(text))]


def _xlsx_table(data: bytes) -> list[list[Any]]:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        return [list(r) for r in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


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


# --- validating rows ---------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a voucher number typed into Excel comes back as 1001.0
    return str(value).strip()


def _parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = _text(value)
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date")


def _parse_amount(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount")
    if isinstance(value, float):
        # XLSX stores numbers as doubles; repr gives the shortest decimal that round-trips,
        # i.e. what the clerk typed. Sub-fen noise is refused by to_fen below.
        value = repr(value)
    try:
        # to_fen drops thousands separators; currency signs are dropped here.
        fen = to_fen(str(value).strip().replace("¥", "").replace("￥", ""))
    except (InvalidOperation, MoneyError, ValueError) as exc:
        raise ValueError(
            f"{_text(value)!r} is not an amount in yuan with at most two decimals"
        ) from exc
    if fen <= 0:
        raise ValueError(f"{_text(value)} is not positive")
    return fen


def content_ref(values: dict[str, Any]) -> str:
    """A voucher-less row's identity: a hash of its own content, independent of the file."""
    canonical = "\x1f".join(
        str(values.get(k, ""))
        for k in ("date", "line", "kind", "amount_fen", "payee", "description", "emergency")
    )
    return "row:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _lookup(session: Session, rows: list[tuple[int, dict[str, Any]]]) -> _Lookup:
    codes = {_text(r.get("line")) for _, r in rows} - {""}
    emergency_refs = {_text(r.get("emergency")) for _, r in rows} - {""}
    years = set(session.scalars(select(FiscalYear.year)))
    lines: dict[str, tuple[int, int, bool, str]] = {}
    for chunk in _chunks(sorted(codes)):
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
    if emergency_refs:
        ids = [int(r) for r in emergency_refs if r.isdigit()]
        for em_id, public_id in session.execute(
            select(Emergency.id, Emergency.public_id).where(
                Emergency.id.in_(ids) | Emergency.public_id.in_(sorted(emergency_refs))
            )
        ):
            emergencies[public_id] = em_id
            emergencies[str(em_id)] = em_id
    return _Lookup(years=years, lines=lines, reserve_lines=reserve_lines, emergencies=emergencies)


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def validate_row(
    row_no: int, raw: dict[str, Any], lookup: _Lookup
) -> tuple[dict[str, Any] | None, list[RowError]]:
    """A row's insert values, or the errors that keep it out."""
    errors: list[RowError] = []

    def err(field_name: str, message: str, allowed: str) -> None:
        errors.append(RowError(row_no, field_name, message, allowed))

    entry_date = amount = None
    try:
        entry_date = _parse_date(raw.get("date"))
    except ValueError as exc:
        err(
            "date",
            str(exc) if _text(raw.get("date")) else "missing",
            "a date as YYYY-MM-DD (or YYYY/MM/DD, YYYYMMDD)",
        )
    if entry_date is not None and entry_date.year not in lookup.years:
        err(
            "date",
            f"no budget is set for {entry_date.year}",
            f"a date in a budgeted year ({', '.join(map(str, sorted(lookup.years))) or 'none set'})",
        )
    try:
        amount = _parse_amount(raw.get("amount"))
    except ValueError as exc:
        err(
            "amount",
            str(exc) if _text(raw.get("amount")) else "missing",
            "a positive amount in yuan, at most two decimals, e.g. 1234.56",
        )
    kind_text = _text(raw.get("kind")).casefold()
    kind = KIND_ALIASES.get(kind_text)
    if kind is None:
        err(
            "kind",
            f"{kind_text!r} is not a ledger kind",
            "disbursement (支出) or reserve_draw (应急动用), or empty",
        )
    code = _text(raw.get("line"))
    line_id = None
    if code:
        found = lookup.lines.get(code)
        if found is None:
            err(
                "line",
                f"no budget line {code!r}",
                "the code of a budget line, or empty for spending without a line",
            )
        else:
            line_id, line_year, is_reserve, _status = found
            if entry_date is not None and line_year != entry_date.year:
                err(
                    "line",
                    f"line {code} belongs to fiscal year {line_year}, the entry is dated {entry_date}",
                    f"a line of {entry_date.year}",
                )
            if is_reserve:
                kind = LedgerKind.reserve_draw if kind is not None else kind
    elif kind == LedgerKind.reserve_draw and entry_date is not None:
        line_id = lookup.reserve_lines.get(entry_date.year)
    emergency_text = _text(raw.get("emergency"))
    emergency_id = None
    if emergency_text:
        emergency_id = lookup.emergencies.get(emergency_text)
        if emergency_id is None:
            err(
                "emergency",
                f"no emergency {emergency_text!r}",
                "an emergency id or public id, or empty",
            )
    payee, description = _text(raw.get("payee")), _text(raw.get("description"))
    if len(payee) > PAYEE_MAX:
        err("payee", f"{len(payee)} characters", f"at most {PAYEE_MAX}")
    voucher = _text(raw.get("voucher"))
    if len(voucher) > VOUCHER_MAX:
        err("voucher", f"{len(voucher)} characters", f"at most {VOUCHER_MAX}")
    if errors:
        return None, errors
    values = {
        "date": entry_date.isoformat(),
        "line": code,
        "kind": kind.value,
        "amount_fen": amount,
        "payee": payee,
        "description": description,
        "emergency": emergency_text,
    }
    ref = f"voucher:{voucher}" if voucher else content_ref(values)
    return {
        "fiscal_year": entry_date.year,
        "line_id": line_id,
        "kind": kind,
        "emergency_id": emergency_id,
        "entry_date": entry_date,
        "amount_fen": amount,
        "payee": payee,
        "description": description,
        "external_ref": ref,
    }, []


# --- writing -----------------------------------------------------------------


def import_rows(
    session: Session,
    ctx: Context,
    rows: list[tuple[int, dict[str, Any]]],
    *,
    actor: str,
    source: str,
    file_sha256: str = "",
) -> ImportResult:
    """Validate every row, insert the valid ones that are not on the ledger yet, report the rest."""
    lookup = _lookup(session, rows)
    valid: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    for row_no, raw in rows:
        values, row_errors = validate_row(row_no, raw, lookup)
        if values is None:
            errors.extend(row_errors)
        else:
            valid.append((row_no, values))
    refs = sorted({v["external_ref"] for _, v in valid})
    for chunk in _chunks(refs):
        lookup.existing_refs.update(
            session.scalars(
                select(LedgerEntry.external_ref).where(LedgerEntry.external_ref.in_(chunk))
            )
        )
    now = ctx.now()
    seen: set[str] = set()
    fresh: list[dict[str, Any]] = []
    already = 0
    repeated: list[int] = []
    for row_no, values in valid:
        ref = values["external_ref"]
        if ref in lookup.existing_refs:
            already += 1
        elif ref in seen:
            repeated.append(row_no)
        else:
            seen.add(ref)
            fresh.append({**values, "created_at": now})
    for chunk in _chunks(fresh):
        session.execute(insert(LedgerEntry), chunk)
    imported_fen = sum(v["amount_fen"] for v in fresh)
    result = ImportResult(
        source=source,
        file_sha256=file_sha256,
        rows=len(rows),
        imported=len(fresh),
        already_imported=already,
        duplicates_in_file=repeated,
        imported_fen=imported_fen,
        errors=[e.__dict__ for e in errors],
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
            "rows": len(rows),
            "imported": len(fresh),
            "imported_fen": imported_fen,
            "already_imported": already,
            "duplicates_in_file": repeated,
            "error_rows": result.error_rows,
        },
        notify="ledger_imported",
        context={"source": source, "imported": len(fresh), "errors": len(result.error_rows)},
    )
    return result


def import_file(
    session: Session, ctx: Context, path: Path | str, *, actor: str, content: bytes | None = None
) -> ImportResult:
    path = Path(path)
    data = content if content is not None else path.read_bytes()
    rows = read_rows(path, data)
    return import_rows(
        session,
        ctx,
        rows,
        actor=actor,
        source=path.name,
        file_sha256=hashlib.sha256(data).hexdigest(),
    )


def record_disbursement(
    session: Session, ctx: Context, form: DisbursementForm, *, actor: str
) -> EntryResult:
    """One disbursement from the UI. The voucher number is its idempotency key."""
    form = DisbursementForm.model_validate(form.model_dump())
    raw = {
        "voucher": form.voucher,
        "date": form.entry_date,
        "line": form.line_code,
        "amount": str(form.amount),
        "payee": form.payee,
        "description": form.description,
    }
    lookup = _lookup(session, [(1, raw)])
    values, errors = validate_row(1, raw, lookup)
    if values is None:
        first = errors[0]
        field_name = {"date": "entry_date", "line": "line_code"}.get(first.field, first.field)
        raise DomainError(first.message, field=field_name, allowed=first.allowed)
    existing = session.scalar(
        select(LedgerEntry.id).where(LedgerEntry.external_ref == values["external_ref"])
    )
    if existing is not None:
        return EntryResult(
            entry_id=existing, external_ref=values["external_ref"], duplicate=True, warnings=[]
        )
    if values["kind"] == LedgerKind.reserve_draw:
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
    now = ctx.now()
    entry = LedgerEntry(**values, created_at=now)
    session.add(entry)
    session.flush()
    events.record(
        session,
        ctx.policy,
        at=now,
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
