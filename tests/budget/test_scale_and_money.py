"""Set-based audits (statement count independent of ledger size) and exact money end to end."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event

from taskforce.budget.audit import run_audit
from taskforce.budget.ledger import _text, amounts_to_fen
from taskforce.budget.models import AuditFinding
from taskforce.budget.performance import run_performance_audit
from tests.budget.conftest import csv_text

WEEK = "2026-W11"
DAYS = [
    "2026-03-09",
    "2026-03-10",
    "2026-03-11",
    "2026-03-12",
    "2026-03-13",
    "2026-03-14",
    "2026-03-15",
]


class StatementCounter:
    def __init__(self, engine) -> None:
        self.engine, self.count = engine, 0

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany):
        self.count += 1

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._on_execute)


def _bulk_rows(start: int, n: int) -> str:
    lines = ["A-1", "A-2", "A-3"]
    return csv_text(
        *(
            f"B{i},{DAYS[i % 7]},{lines[i % 3]},,{1 + i % 97}.{i % 100:02d},Payee {i % 13},bulk,"
            for i in range(start, start + n)
        )
    )


def _audit_statements(books, fn) -> int:
    with StatementCounter(books.engine) as counter, books.tx() as s:
        fn(s)
    return counter.count


@pytest.mark.slow
def test_audit_statement_count_does_not_grow_with_the_ledger(books):
    books.set_year("1000000000.00")
    for code in ("A-1", "A-2", "A-3"):
        books.line(code, "100000000.00", approver="L1", schedule=[("2026-03-10", "1.00")])
    books.line("O-1", "0.01")
    books.clock.advance(days=1)
    # The same findings in both ledgers: one overspend, one payment without a line.
    books.import_csv(
        csv_text("O1,2026-03-10,O-1,,0.01,,,", "O2,2026-03-11,O-1,,0.01,,,", "N1,2026-03-11,,,5,,,")
    )

    books.import_csv(_bulk_rows(0, 60))
    small = _audit_statements(books, lambda s: run_audit(s, books.ctx, WEEK))
    small_perf = _audit_statements(books, lambda s: run_performance_audit(s, books.ctx, "2026-H1"))
    with books.tx() as s:
        s.execute(
            delete(AuditFinding)
        )  # so the second run inserts its findings afresh, like the first

    books.import_csv(_bulk_rows(60, 3000))
    large = _audit_statements(books, lambda s: run_audit(s, books.ctx, WEEK))
    large_perf = _audit_statements(books, lambda s: run_performance_audit(s, books.ctx, "2026-H1"))
    assert small == large, (small, large)
    assert small_perf == large_perf
    assert small < 30  # a handful of set-based reads and writes, not one per entry


def _parse_amount(value) -> int:
    """One cell through the import's column-at-a-time amount parser."""
    fen, error = amounts_to_fen(pd.Series([_text(value)]))
    assert error[0] == "", error[0]
    return int(fen[0])


def _yuan_text(fen: int, style: str) -> str:
    yuan, cents = divmod(fen, 100)
    if style == "grouped":
        return f"{yuan:,}.{cents:02d}"
    if style == "symbol":
        return f"¥{yuan}.{cents:02d}"
    if style == "short" and cents % 10 == 0:
        return f"{yuan}.{cents // 10}"
    if style == "integer" and cents == 0:
        return str(yuan)
    return f"{yuan}.{cents:02d}"


STYLES = st.sampled_from(["plain", "grouped", "symbol", "short", "integer"])


# No deadline: each example goes through pandas, whose timing varies on a loaded machine.
@settings(deadline=None, max_examples=300)
@given(fen=st.integers(min_value=1, max_value=10**15 - 1), style=STYLES)  # 13 yuan digits
def test_every_amount_format_parses_to_the_exact_fen(fen, style):
    assert _parse_amount(_yuan_text(fen, style)) == fen


@settings(deadline=None)
@given(fen=st.integers(min_value=1, max_value=10**13))
def test_xlsx_doubles_parse_to_the_exact_fen_when_they_hold_it(fen):
    value = float(Decimal(fen) / 100)
    if Decimal(repr(value)) * 100 == fen:  # the double represents the amount the clerk typed
        assert _parse_amount(value) == fen


@pytest.fixture
def money_books(books):
    books.set_year("100000000000.00")
    for code in ("M-0", "M-1", "M-2"):
        books.line(code, "10000000000.00", approver="L1")
    return books


@settings(
    max_examples=20,
    deadline=None,
    # One database per test (the engine fixture); generation may be slow on a loaded machine.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        # At most 40 × 10^10 fen on a line of 10^12 fen: never an overspend finding (with
        # 10^11 per row, hypothesis found ledgers over the line, which the audit rightly flags).
        st.tuples(st.integers(0, 2), st.integers(1, 10**10), STYLES, st.sampled_from(DAYS)),
        min_size=1,
        max_size=40,
    )
)
def test_random_ledgers_sum_to_the_fen_through_import_and_audit(money_books, rows):
    books = money_books
    before = books.audit(WEEK)
    spent_before = dict(zip(before.lines["code"], before.lines["spent_fen"], strict=True))
    prefix = uuid.uuid4().hex[:8]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["voucher", "date", "line", "amount"])
    expected = {"M-0": 0, "M-1": 0, "M-2": 0}
    for i, (line, fen, style, day) in enumerate(rows):
        writer.writerow([f"{prefix}-{i}", day, f"M-{line}", _yuan_text(fen, style)])
        expected[f"M-{line}"] += fen
    result = books.import_csv(buffer.getvalue())
    assert result.errors == [] and result.imported == len(rows)
    assert result.imported_fen == sum(expected.values())
    after = books.audit(WEEK)
    spent_after = dict(zip(after.lines["code"], after.lines["spent_fen"], strict=True))
    for code, fen in expected.items():
        assert int(spent_after[code]) - int(spent_before[code]) == fen
    assert after.summary["ledger_total_fen"] - before.summary["ledger_total_fen"] == sum(
        expected.values()
    )
    assert after.findings.empty


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("9999999999999.99", ""),  # 13 digits of yuan: the most the ledger holds
        ("99999999999999", "'99999999999999' is too large (at most 13 digits of yuan)"),
        ("99,999,999,999,999.00", "is too large (at most 13 digits of yuan)"),
        ("12.345", "is not an amount in yuan with at most two decimals"),
        ("五万", "is not an amount in yuan with at most two decimals"),
        ("-5", "'-5' is not positive"),
    ],
)
def test_an_amount_the_ledger_cannot_hold_says_why(typed, says):
    """An operator trial: 99999999999999999 was "not an amount in yuan with at most two
    decimals"; it is one, too large."""
    _, error = amounts_to_fen(pd.Series([typed]))
    if says:
        assert says in error[0], error[0]
    else:
        assert error[0] == ""


@given(
    drawn=st.integers(min_value=0, max_value=10**15),
    share=st.decimals(min_value=Decimal("0.0001"), max_value=1, places=4),
)
def test_the_least_total_covering_a_reserve_draw_is_exact_to_the_fen(drawn, share):
    """budget set-year refuses a total whose reserve is below what was drawn from it and
    names this total: its reserve covers the draw, one fen less does not."""
    from taskforce.budget.service import minimum_total_for_drawn_fen, required_reserve_fen
    from taskforce.policy import load_policy

    base = load_policy()
    budget = base.budget.model_copy(update={"emergency_reserve_share": share})
    policy = base.model_copy(update={"budget": budget})
    least = minimum_total_for_drawn_fen(drawn, policy)
    assert required_reserve_fen(least, policy) >= drawn
    if least > 0:
        assert required_reserve_fen(least - 1, policy) < drawn


def test_no_total_covers_a_draw_when_the_reserve_share_is_zero():
    from taskforce.budget.service import minimum_total_for_drawn_fen
    from taskforce.policy import load_policy

    base = load_policy()
    budget = base.budget.model_copy(update={"emergency_reserve_share": Decimal(0)})
    policy = base.model_copy(update={"budget": budget})
    assert minimum_total_for_drawn_fen(1, policy) is None
    assert minimum_total_for_drawn_fen(0, policy) == 0
