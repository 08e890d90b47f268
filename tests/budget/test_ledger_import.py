"""The ledger: row-validated import of finance exports, entry by hand, nothing twice."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from taskforce.budget import ledger
from taskforce.budget.forms import DisbursementForm
from taskforce.budget.models import LedgerEntry, LedgerKind
from taskforce.errors import DomainError
from tests.budget.conftest import add_emergency, csv_text


@pytest.fixture
def ready(books):
    books.set_year("100000000.00")
    books.line("A-1", "1000000.00")
    books.propose("P-1", "1000.00")  # proposed, never approved
    return books


def _entries(books):
    return books.scalars(select(LedgerEntry).order_by(LedgerEntry.id))


def test_bad_rows_are_reported_by_row_and_field_and_valid_rows_land(ready):
    text = csv_text(
        "V1,2026-03-10,A-1,,1200.50,ACME,ok,",  # row 2: valid
        "V2,2026-13-01,A-1,,10,ACME,bad date,",  # row 3
        "V3,2026-03-10,A-1,,12.345,ACME,sub-fen,",  # row 4
        "V4,2026-03-10,A-1,,-5,ACME,negative,",  # row 5
        "V5,2026-03-10,NOPE,,5,ACME,unknown line,",  # row 6
        "V6,2026-03-10,A-1,gift,5,ACME,bad kind,",  # row 7
        "V7,2026-03-10,,,5,ACME,unknown emergency,999",  # row 8
        "V8,2031-03-10,,,5,ACME,no budget that year,",  # row 9
        "V9,2026/03/11,P-1,,7,ACME,valid shape on an unapproved line,",  # row 10: valid
        "V10,,A-1,,,ACME,missing both,",  # row 11
    )
    result = ready.import_csv(text)
    found = {(e["row"], e["field"]) for e in result.errors}
    assert found == {
        (3, "date"),
        (4, "amount"),
        (5, "amount"),
        (6, "line"),
        (7, "kind"),
        (8, "emergency"),
        (9, "date"),
        (11, "date"),
        (11, "amount"),
    }
    by_row = {e["row"]: e for e in result.errors}
    assert "two decimals" in by_row[4]["allowed"]
    assert "2026" in by_row[9]["allowed"]
    assert result.imported == 2 and result.imported_fen == 120_050 + 700
    entries = _entries(ready)
    assert [(e.external_ref, e.amount_fen) for e in entries] == [
        ("voucher:V1", 120_050),
        ("voucher:V9", 700),
    ]
    assert entries[1].entry_date == dt.date(2026, 3, 11)


def test_a_file_of_only_bad_rows_writes_nothing(ready):
    result = ready.import_csv(csv_text("V1,yesterday,A-1,,1,,,", "V2,2026-03-10,A-1,,abc,,,"))
    assert result.imported == 0 and result.error_rows == [2, 3]
    assert ready.scalar(select(func.count(LedgerEntry.id))) == 0


def test_a_file_without_the_required_columns_is_refused(ready):
    with pytest.raises(DomainError, match="header") as refused:
        ready.import_csv("voucher,payee\nV1,ACME\n")
    assert "amount" in str(refused.value) and "date" in str(refused.value)


def test_a_path_that_is_no_readable_file_is_refused_on_path(ready, tmp_path):
    """The flow's path is typed in a form and read on the worker: a mistyped one was a bare
    FileNotFoundError, the one refusal that named neither the field nor what is allowed."""
    folder = tmp_path / "exports.csv"
    folder.mkdir()
    device = tmp_path / "zero.csv"
    device.symlink_to("/dev/zero")
    for path, says in (
        (tmp_path / "missing.xlsx", "no file"),
        (folder, "is a folder"),
        (device, "is no regular file"),  # a device is never read (endless /dev/zero)
        (Path("/dev/zero"), "cannot read zero"),  # no export's suffix: never read
        (tmp_path / "notes.pdf", "cannot read notes.pdf"),
    ):
        with pytest.raises(DomainError, match=says) as refused, ready.tx() as s:
            ledger.import_file(s, ready.ctx, path, actor="C1")
        assert refused.value.field == "path"
        assert ".csv or .xlsx finance export" in refused.value.allowed
    assert ready.scalar(select(func.count(LedgerEntry.id))) == 0


def test_reimport_adds_nothing_twice(ready):
    text = csv_text("V1,2026-03-10,A-1,,100,ACME,,", ",2026-03-10,A-1,,200,ACME,no voucher,")
    first = ready.import_csv(text)
    again = ready.import_csv(text)
    assert (first.imported, again.imported, again.already_imported) == (2, 0, 2)
    # The same rows in another export (Chinese headers, other order, another file) add nothing either.
    other = "金额,日期,预算行,凭证号,收款人,摘要\n200,2026-03-10,A-1,,ACME,no voucher\n100,2026-03-10,A-1,V1,ACME,\n"
    third = ready.import_csv(other, name="财务导出.csv")
    assert third.imported == 0 and third.already_imported == 2
    assert ready.scalar(select(func.count(LedgerEntry.id))) == 2


def test_a_voucher_on_the_ledger_with_other_values_is_an_error_not_a_repeat(ready):
    ready.import_csv(csv_text("V1,2026-03-10,A-1,,100,ACME,,"))
    again = ready.import_csv(
        csv_text(
            "V1,2026-03-10,A-1,,100,ACME,,",  # row 2: the same entry, a repeat
            "V1,2026-03-11,A-1,,100,ACME,,",  # row 3: another date
            "V1,2026-03-10,A-1,,100.01,ACME,,",  # row 4: one fen more
            "V1,2026-03-10,,,100,ACME,,",  # row 5: no line
        )
    )
    assert again.imported == 0 and again.already_imported == 1
    assert [(e["row"], e["field"]) for e in again.errors] == [
        (3, "voucher"),
        (4, "voucher"),
        (5, "voucher"),
    ]
    assert "'V1' is already on the ledger" in again.errors[0]["message"]
    assert "new voucher" in again.errors[0]["allowed"]
    assert [(e.amount_fen, e.entry_date) for e in _entries(ready)] == [
        (10_000, dt.date(2026, 3, 10))
    ]


def test_repeated_rows_within_one_file_are_imported_once(ready):
    result = ready.import_csv(csv_text("V1,2026-03-10,A-1,,100,,,", "V1,2026-03-10,A-1,,100,,,"))
    assert result.imported == 1 and result.duplicates_in_file == [3]


def test_reserve_draw_rows_land_on_the_reserve_line(ready):
    emergency = add_emergency(ready)
    result = ready.import_csv(csv_text(f"R1,2026-03-10,,reserve_draw,500,Pumps,,{emergency}"))
    assert result.imported == 1
    entry = _entries(ready)[0]
    assert entry.kind == LedgerKind.reserve_draw and entry.emergency_id == emergency
    assert entry.line_id is not None


def test_xlsx_export_with_numeric_cells_is_exact(ready):
    book = Workbook()
    sheet = book.active
    sheet.append(["凭证号", "日期", "预算行", "金额", "收款人"])
    sheet.append([1001, dt.datetime(2026, 3, 10), "A-1", 0.1, "ACME"])
    sheet.append([1002, dt.date(2026, 3, 11), "A-1", 1234567.89, "ACME"])
    sheet.append([1003, dt.date(2026, 3, 11), "A-1", 0.001, "ACME"])  # sub-fen: refused
    buffer = io.BytesIO()
    book.save(buffer)
    with ready.tx() as s:
        result = ledger.import_file(
            s, ready.ctx, "export.xlsx", actor="C1", content=buffer.getvalue()
        )
    assert [(e["row"], e["field"]) for e in result.errors] == [(4, "amount")]
    assert [(e.external_ref, e.amount_fen) for e in _entries(ready)] == [
        ("voucher:1001", 10),
        ("voucher:1002", 123_456_789),
    ]


def test_entry_by_hand_is_recorded_once_and_warns_on_an_unapproved_line(ready):
    form = DisbursementForm(
        line_code="P-1", entry_date=dt.date(2026, 3, 10), amount=Decimal("10.01"), voucher="H-1"
    )
    with ready.tx() as s:
        first = ledger.record_disbursement(s, ready.ctx, form, actor="E3")
    with ready.tx() as s:
        again = ledger.record_disbursement(s, ready.ctx, form, actor="E3")
    assert not first.duplicate and again.duplicate and again.entry_id == first.entry_id
    assert first.warnings and "not approved" in first.warnings[0]
    assert ready.scalar(select(func.sum(LedgerEntry.amount_fen))) == 1001


def test_a_voucher_entered_again_with_another_amount_is_refused_not_dropped(ready):
    """The voucher number is the entry's identity: a second entry under it with another
    amount used to complete silently, recording nothing and saying nothing."""
    form = DisbursementForm(
        line_code="P-1", entry_date=dt.date(2026, 3, 10), amount=Decimal("5000.00"), voucher="V-11"
    )
    with ready.tx() as s:
        ledger.record_disbursement(s, ready.ctx, form, actor="E3")
    changed = form.model_copy(update={"amount": Decimal("7000.00")})
    with ready.tx() as s, pytest.raises(DomainError, match="voucher 'V-11' is already on") as e:
        ledger.record_disbursement(s, ready.ctx, changed, actor="E3")
    assert e.value.field == "voucher" and "5,000.00" in str(e.value)
    assert ready.scalar(select(func.sum(LedgerEntry.amount_fen))) == 500_000
    # A payment dated after today is recorded with a warning to check its date.
    later = ready.ctx.today() + dt.timedelta(days=30)
    future = DisbursementForm(
        line_code="P-1", entry_date=later, amount=Decimal("1"), voucher="V-12"
    )
    with ready.tx() as s:
        result = ledger.record_disbursement(s, ready.ctx, future, actor="E3")
    assert any("after today" in w for w in result.warnings)


def test_entry_by_hand_refuses_unknown_lines_naming_the_field(ready):
    form = DisbursementForm(
        line_code="NOPE", entry_date=dt.date(2026, 3, 10), amount=Decimal("1"), voucher="H-1"
    )
    with ready.tx() as s, pytest.raises(DomainError, match="line_code") as refused:
        ledger.record_disbursement(s, ready.ctx, form, actor="E3")
    # The form requires a line: the import's "or empty" is not offered; the year's lines are.
    allowed = refused.value.allowed
    assert allowed.startswith("the code of a budget line of 2026: ") and "empty" not in allowed
    assert {"A-1", "P-1"} <= set(allowed.split(": ", 1)[1].split(", "))


def test_rows_dated_after_today_are_recorded_and_listed_for_a_check(ready):
    """As an entry by hand is recorded with a warning when dated after today, an import
    records such rows and lists them; today itself is not "after today"."""
    today = ready.ctx.today()
    tomorrow = today + dt.timedelta(days=1)
    result = ready.import_csv(
        csv_text(
            f"V1,{today.isoformat()},A-1,,100,ACME,,",
            f"V2,{tomorrow.isoformat()},A-1,,100,ACME,,",
            f"V3,{tomorrow.isoformat()},NOPE,,100,ACME,,",  # refused: an error, not a notice
        )
    )
    assert result.imported == 2 and [e["row"] for e in result.errors] == [4]
    assert [(n["row"], n["field"]) for n in result.to_check] == [(3, "date")]
    assert f"dated {tomorrow.isoformat()}, after today" in result.to_check[0]["message"]
    again = ready.import_csv(csv_text(f"V2,{tomorrow.isoformat()},A-1,,100,ACME,,"))
    assert again.already_imported == 1 and again.to_check == []  # nothing new recorded


def test_reserve_draws_the_audit_will_report_for_their_emergency_are_listed(ready):
    """As the audit's reserve check judges them: a draw for a drill, and a draw dated before
    its emergency was opened, by the local (Shanghai) day. The day it opened is fine."""
    today = ready.ctx.today()
    yesterday = today - dt.timedelta(days=1)
    shanghai = ZoneInfo(ready.ctx.policy.timezone)
    # Opened at 00:30 Shanghai time today, which is still yesterday in UTC.
    opened = dt.datetime.combine(today, dt.time(0, 30), shanghai).astimezone(dt.UTC)
    drill = add_emergency(ready, drill=True, opened=opened)
    real = add_emergency(ready, opened=opened)
    result = ready.import_csv(
        csv_text(
            f"V1,{today},,reserve_draw,100,ACME,,{real}",  # row 2: the day it opened: fine
            f"V2,{yesterday},,reserve_draw,100,ACME,,{real}",  # row 3: the day before
            f"V3,{today},,reserve_draw,100,ACME,,{drill}",  # row 4: a drill
        )
    )
    assert result.imported == 3 and result.errors == []
    assert [(n["row"], n["field"]) for n in result.to_check] == [(3, "emergency"), (4, "emergency")]
    assert f"dated {yesterday}, before its emergency was opened" in result.to_check[0]["message"]
    assert "for a drill" in result.to_check[1]["message"]
    # The audit reports the same two draws, and only them.
    week = ready.audit(ready.ctx.today().strftime("%G-W%V"))
    refs = set(week.findings.loc[week.findings["check"] == "reserve_without_emergency", "summary"])
    assert {r.split(" ")[2] for r in refs} == {"voucher:V2", "voucher:V3"}, refs


def test_payments_the_audit_will_report_are_recorded_and_listed_for_a_check(ready):
    """A finance export records payments made: a reserve draw without an emergency, a
    payment on a line not approved or on no line are kept (the weekly audit's findings) and
    listed by row, so the office hears of them at the import, not a week later."""
    emergency = add_emergency(ready)
    day = ready.ctx.today().isoformat()
    result = ready.import_csv(
        csv_text(
            f"V1,{day},A-1,,100,ACME,,",  # row 2: fine
            f"V2,{day},,reserve_draw,100,ACME,,",  # row 3: a draw without an emergency
            f"V3,{day},,reserve_draw,100,ACME,,{emergency}",  # row 4: a draw, fine
            f"V4,{day},P-1,,100,ACME,,",  # row 5: a proposed line
            f"V5,{day},,,100,ACME,,",  # row 6: no line
        )
    )
    assert result.imported == 5 and result.errors == []
    assert [(n["row"], n["field"]) for n in result.to_check] == [
        (3, "emergency"),
        (5, "line"),
        (6, "line"),
    ]
    assert "without an emergency" in result.to_check[0]["message"]
    assert result.to_check[1]["message"].startswith("line P-1 is not approved")
    assert result.to_check[2]["message"].startswith("no budget line")
