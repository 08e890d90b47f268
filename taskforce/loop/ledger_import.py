"""Bulk import of an existing issue ledger (台账) from CSV or XLSX.

Every row is validated on its own: an invalid row is reported with its
spreadsheet row number and field, valid rows are imported, and a re-import of
the same file imports nothing twice (each row's key is its ledger number, or a
hash of its content when the ledger has none).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zipfile import BadZipFile

import pandas as pd
from pydantic import ValidationError
from sqlalchemy import select

from taskforce.context import Context
from taskforce.errors import DomainError, NotFound, problem_text
from taskforce.loop.duplicates import OpenTitles
from taskforce.loop.forms import ReportIssueForm
from taskforce.loop.models import IssueReport
from taskforce.loop.report import report_issue
from taskforce.money import TYPED_YUAN_ALLOWED, untyped_yuan
from taskforce.org.models import Unit
from taskforce.org.service import listing
from taskforce.policy.schema import Classification
from taskforce.reports.i18n import translator
from taskforce.text import as_one_line, as_text

COLUMNS = {  # ledger header (zh-CN or en) -> form field
    "编号": "ledger_no",
    "ledger_no": "ledger_no",
    "标题": "title",
    "title": "title",
    "问题描述": "description",
    "description": "description",
    "上报单位": "reporting_unit",
    "reporting_unit": "reporting_unit",
    "首接单位": "received_by",
    "received_by": "received_by",
    "类别": "category",
    "category": "category",
    "相关单位": "related_units",
    "related_units": "related_units",
    "密级": "classification",
    "classification": "classification",
    "预估经费": "estimated_budget",
    "estimated_budget": "estimated_budget",
}
REQUIRED = ("title", "reporting_unit")
UNIT_FIELDS = ("reporting_unit", "received_by", "related_units")
_LIST_SEPARATORS = str.maketrans({"、": ";", "，": ";", "；": ";", ",": ";"})
# A ledger kept by the office writes 密级 in Chinese: the work plan's 公开 / 内部 / 秘密 (the
# reports' terms, audience.*). 机密, the next level up in common use, is taken as our
# strictest, secret: never a lower clearance than the ledger asked for.
_ZH = translator("zh-CN")
CLASSIFICATION_WORDS = {_ZH(f"audience.{c.value}"): c.value for c in Classification}
CLASSIFICATION_ALLOWED = " / ".join(CLASSIFICATION_WORDS)
CLASSIFICATION_WORDS["机密"] = Classification.secret.value


@dataclass
class RowError:
    row: int  # as the operator sees it in the spreadsheet (header is row 1)
    field: str  # the form's field (estimated_budget)
    message: str
    column: str = ""  # the field as the ledger's header names it (预估经费), if it does

    @property
    def where(self) -> str:
        """What the operator looks for in the spreadsheet: its column, else the field."""
        return self.column or self.field


@dataclass
class ImportResult:
    rows: int = 0
    imported: list[str] = field(default_factory=list)
    # (spreadsheet row, the issue it was linked to): an operator looks the row up.
    linked_rows: list[tuple[int, str]] = field(default_factory=list)
    already_imported: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def linked_duplicates(self) -> list[str]:
        """The issues rows were linked to as duplicate reports, in row order."""
        return [number for _, number in self.linked_rows]


def _csv_text(path: Path) -> str:
    """The file's text: UTF-8 (with or without a byte-order mark), else GB18030, which
    Excel on Chinese Windows writes (the budget ledger's import reads both too)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DomainError(
            f"{path.name} cannot be read ({exc.strerror or exc})",
            field="path",
            allowed="a .csv or .xlsx file this user may read",
        ) from None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DomainError(
        f"{path.name} is neither UTF-8 nor GB18030 text",
        field="path",
        allowed="comma-separated UTF-8 or GB18030 text with a header row",
    )


def _one_line(exc: Exception) -> str:
    # pandas' parser ends its messages with a line break: a refusal is one line.
    return " ".join(str(exc).split())


def read_ledger(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DomainError(
            f"no file {str(path)!r}", field="path", allowed="an existing .csv or .xlsx file"
        )
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx", ".xlsm"):
        raise DomainError(
            f"{path.name} is neither CSV nor XLSX", field="path", allowed=".csv, .xlsx"
        )
    # Decoded before the parse: its refusal (a DomainError is a ValueError) must not be
    # caught below as an unreadable workbook.
    text = _csv_text(path) if suffix == ".csv" else None
    try:
        if text is not None:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        else:
            frame = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
    except pd.errors.EmptyDataError:
        raise DomainError(
            f"{path.name} is empty", field="path", allowed="a header row and data rows"
        ) from None
    except pd.errors.ParserError as exc:
        raise DomainError(
            f"{path.name} is not a readable CSV file ({_one_line(exc)})",
            field="path",
            allowed="comma-separated UTF-8 or GB18030 text with a header row",
        ) from None
    except (BadZipFile, KeyError, ValueError, OSError) as exc:
        raise DomainError(
            f"{path.name} is not a readable Excel workbook "
            f"({type(exc).__name__}: {_one_line(exc)})",
            field="path",
            allowed="an .xlsx file saved by Excel or LibreOffice, or a .csv export",
        ) from None
    unknown = [c for c in frame.columns if str(c).strip() not in COLUMNS]
    if unknown:
        raise DomainError(
            f"unknown columns {unknown}", field="columns", allowed=", ".join(sorted(set(COLUMNS)))
        )
    headers = {COLUMNS[str(c).strip()]: str(c).strip() for c in frame.columns}
    frame = frame.rename(columns=lambda c: COLUMNS[str(c).strip()])
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DomainError(f"missing columns {missing}", field="columns")
    frame.attrs["headers"] = headers  # form field -> the header as the file has it
    return frame


def _column(field_path: str, headers: dict[str, str]) -> str:
    """A problem's place as the ledger names it: 预估经费 for estimated_budget, 相关单位.1 for
    related_units.1 (the second unit); "" where the file has no such column (the row)."""
    name, dot, rest = field_path.partition(".")
    return headers[name] + dot + rest if name in headers else ""


def _row_key(row: dict) -> str:
    if row.get("ledger_no"):
        return f"ledger:{row['ledger_no'].strip()}"
    content = "\x1f".join(
        str(row.get(k, "")).strip() for k in ("title", "reporting_unit", "description")
    )
    return "ledger:sha256:" + hashlib.sha256(content.encode()).hexdigest()[:32]


class UnitNames:
    """Unit codes by code, Chinese name and English name (any case): a ledger kept by hand
    names units as people do (财政局), the forms take codes (finance)."""

    def __init__(self, session) -> None:
        self._codes: dict[str, str] = {}
        for code, name, name_en in session.execute(select(Unit.code, Unit.name, Unit.name_en)):
            for key in (code, name, name_en):
                if key:
                    self._codes[key.casefold()] = code
        self._listing = listing(sorted(set(self._codes.values())))

    def code(self, value: str, field_name: str) -> str:
        """The code of a unit named by code or name; unknown: refused as report_issue does."""
        found = self._codes.get(value.strip().casefold())
        if found is None:
            raise NotFound(
                f"unknown unit {value.strip()!r}",
                field=field_name,
                allowed=f"a unit code or name of config/org.yaml: {self._listing}",
            )
        return found


class RowInvalid(Exception):
    """Everything wrong with one ledger row, as (field, message) pairs: an operator fixes a
    row once, not once per problem."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(problems)
        self.problems = problems


def _form(row: dict, units: UnitNames) -> ReportIssueForm:
    """The row as the report form; raises RowInvalid with every problem the row has."""
    problems: list[tuple[str, str]] = []

    def unit_code(value, name: str) -> str:
        try:
            return units.code(str(value), name)
        except DomainError as exc:  # a unit the organisation lacks
            problems.append((exc.field or name, str(exc).split(": ", 1)[-1]))
            return str(value)  # the form's own checks still run on the rest of the row

    data = {k: v for k, v in row.items() if k != "ledger_no" and str(v).strip() != ""}
    # A cell's line breaks (Alt+Enter) and pasted control characters are the spreadsheet's,
    # not the matter's: a title is one line (taskforce/text.py), a description text.
    for name in ("title", "category"):
        if isinstance(data.get(name), str):
            data[name] = as_one_line(data[name])
    if isinstance(data.get("description"), str):
        data["description"] = as_text(data["description"])
    if "related_units" in data:
        # Separated as the office writes a list: 、 (the enumeration comma), ， or ；, or
        # ASCII , and ;.
        data["related_units"] = [
            u.strip()
            for u in str(data["related_units"]).translate(_LIST_SEPARATORS).split(";")
            if u.strip()
        ]
    for name in UNIT_FIELDS:
        if name not in data:
            continue
        if isinstance(data[name], list):
            data[name] = [unit_code(v, name) for v in data[name]]
        else:
            data[name] = unit_code(data[name], name)
    if isinstance(data.get("estimated_budget"), str):
        # As a spreadsheet writes money (86,000,000.00, ¥120,000), which the budget commands
        # and the budget ledger's import take too; the form takes digits. Anything else is
        # refused here: Decimal would read 1e7, 1_000 and +5 as amounts (slips, not money).
        typed_budget = data.pop("estimated_budget")
        if (amount := untyped_yuan(typed_budget)) is not None:
            data["estimated_budget"] = amount
        else:
            shown = (
                typed_budget if len(typed_budget) <= _ECHO_MAX else typed_budget[:_ECHO_MAX] + "…"
            )
            problems.append(
                (
                    "estimated_budget",
                    f"{shown!r} is not an amount of money (allowed: {TYPED_YUAN_ALLOWED})",
                )
            )
    if "classification" in data:
        word = str(data["classification"]).strip()
        data["classification"] = CLASSIFICATION_WORDS.get(word, word.casefold())
    try:
        form = ReportIssueForm.model_validate(data)
    except ValidationError as exc:
        unknown = {where for where, _ in problems}  # their pattern errors say it again
        errors = exc.errors()
        for err in errors:  # a refused amount is shown as the ledger wrote it
            if err["loc"][:1] == ("estimated_budget",) and "estimated_budget" in row:
                err["input"] = row["estimated_budget"]
        problems += [
            _problem(err) for err in errors if not (err["loc"] and str(err["loc"][0]) in unknown)
        ]
    if problems:
        raise RowInvalid(problems)
    return form


# Fields whose text is not repeated in an error: the report's own words may be classified,
# and the errors reach the Prefect UI and the terminal whoever reads them.
_NOT_ECHOED = ("title", "description")
_ECHO_MAX = 40  # characters of a refused value repeated in its error


def _problem(err: dict) -> tuple[str, str]:
    where = ".".join(str(p) for p in err["loc"]) or "row"
    value = err.get("input")
    got = ""
    if isinstance(value, str | int) and where.split(".")[0] not in _NOT_ECHOED:
        text = str(value)
        shown = text if len(text) <= _ECHO_MAX else text[:_ECHO_MAX] + "…"
        got = f" (got {shown!r})"
    if where == "classification":  # the ledger's own words are accepted too
        got = f" or {CLASSIFICATION_ALLOWED}{got}"
    if where == "estimated_budget":  # pydantic says "a valid decimal", not what one looks like
        got = f"{got} (allowed: {TYPED_YUAN_ALLOWED})"
    return where, problem_text(err) + got


def import_ledger(
    session_factory: Callable[[], object],
    ctx: Context,
    path: Path,
    *,
    actor: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import a ledger; each valid row is its own transaction, so one bad row loses nothing else."""
    frame = read_ledger(path)
    rows = frame.to_dict(orient="records")
    result = ImportResult(rows=len(rows))
    keys = [_row_key(r) for r in rows]
    with session_factory() as session:
        done = set(
            session.scalars(
                select(IssueReport.idempotency_key).where(IssueReport.idempotency_key.in_(keys))
            )
        )
        units = UnitNames(session)
    open_titles = OpenTitles()  # each lead unit's open titles read once, not once a row
    for index, (row, key) in enumerate(zip(rows, keys, strict=True)):
        line = index + 2
        if key in done:
            result.already_imported += 1
        else:
            _import_row(session_factory, ctx, row, key, line, actor, result, open_titles, units)
            done.add(key)
        if on_progress:
            on_progress(index + 1, len(rows))
    headers = frame.attrs.get("headers", {})
    for error in result.errors:
        error.column = _column(error.field, headers)
    return result


def _import_row(
    session_factory,
    ctx,
    row,
    key,
    line,
    actor,
    result: ImportResult,
    open_titles: OpenTitles,
    units: UnitNames,
) -> None:
    try:
        form = _form(row, units)
    except RowInvalid as exc:
        result.errors += [RowError(line, where, message) for where, message in exc.problems]
        return
    try:
        # The block ends after the commit: only a committed issue is kept for later rows.
        with open_titles.row(), session_factory() as session, session.begin():
            outcome = report_issue(
                session,
                ctx,
                form,
                actor=actor,
                key=key,
                origin="import",
                origin_ref=key,
                open_titles=open_titles,
            )
    except DomainError as exc:
        result.errors.append(RowError(line, exc.field or "row", str(exc).split(": ", 1)[-1]))
        return
    if outcome.duplicate:
        result.linked_rows.append((line, outcome.issue_number))
    else:
        result.imported.append(outcome.issue_number)


def error_report(result: ImportResult) -> pd.DataFrame:
    """The refused rows: spreadsheet row, its column as the ledger names it, the problem."""
    return pd.DataFrame(
        [(e.row, e.where, e.message) for e in result.errors], columns=["row", "field", "message"]
    )
