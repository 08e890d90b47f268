"""Builders for budget tests: a fiscal year, issues, lines through their reviews, ledgers."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from taskforce.budget import ledger, service
from taskforce.budget.audit import AuditResult, run_audit
from taskforce.budget.forms import (
    ProposeAdjustmentForm,
    ProposeLineForm,
    ReviewForm,
    ScheduledDisbursement,
    SetFiscalYearForm,
    SubjectKind,
)
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop.forms import ReportIssueForm
from taskforce.loop.report import report_issue

YEAR = 2026
APPROVERS = {"executive": "E1", "leadership": "L1"}


class Books:
    """A small budget world on the test's engine, moved by the test's ManualClock."""

    def __init__(self, engine, clock, policy) -> None:
        self.engine, self.clock = engine, clock
        self.ctx = Context(policy=policy, clock=clock)
        self._issues = 0

    def tx(self):
        return unit_of_work(self.engine)

    def set_year(self, total: str = "100000000.00", year: int = YEAR):
        with self.tx() as s:
            return service.set_fiscal_year(
                s,
                self.ctx,
                SetFiscalYearForm(year=year, total=Decimal(total), decided_by="L1"),
                actor="L1",
            )

    def issue(self) -> str:
        self._issues += 1
        with self.tx() as s:
            return report_issue(
                s,
                self.ctx,
                ReportIssueForm(
                    title=f"{self._issues}: {uuid.uuid4().hex}", reporting_unit="finance"
                ),
                actor="W5",
            ).issue_number

    def propose(
        self, code: str, amount: str, *, cross: bool = False, schedule=(), year: int = YEAR
    ):
        issue = self.issue()
        form = ProposeLineForm(
            code=code,
            fiscal_year=year,
            issue_number=issue,
            purpose="pay for the one-window system",
            output_target="system live in 12 districts",
            benefit_target="approval time down 30 %",
            amount=Decimal(amount),
            cross_department=cross,
            owner_unit="data-bureau",
            schedule=[ScheduledDisbursement(due_date=d, amount=Decimal(a)) for d, a in schedule],
        )
        with self.tx() as s:
            return service.propose_line(s, self.ctx, form, actor="W3")

    def review(
        self,
        reviewer: str,
        *,
        code: str | None = None,
        adjustment: int | None = None,
        approved=True,
    ):
        form = ReviewForm(
            subject=SubjectKind.line if code else SubjectKind.adjustment,
            line_code=code,
            adjustment_id=adjustment,
            reviewer=reviewer,
            approved=approved,
        )
        with self.tx() as s:
            return service.review(s, self.ctx, form, actor=reviewer)

    def line(self, code: str, amount: str, *, approver: str = "E1", cross=False, schedule=()):
        """A line proposed and approved through compliance → evaluator → approver."""
        result = self.propose(code, amount, cross=cross, schedule=schedule)
        for reviewer in ("C1", "V1", approver):
            self.clock.advance(minutes=5)
            self.review(reviewer, code=code)
        return result

    def adjust(self, code: str, delta: str, *, approver: str | None = "E1"):
        with self.tx() as s:
            adj = service.propose_adjustment(
                s,
                self.ctx,
                ProposeAdjustmentForm(line_code=code, delta=Decimal(delta), reason="more work"),
                actor="W3",
            )
        if approver:
            for reviewer in ("C1", "V1", approver):
                self.clock.advance(minutes=5)
                self.review(reviewer, adjustment=adj.adjustment_id)
        return adj

    def import_csv(self, text: str, name: str = "export.csv") -> ledger.ImportResult:
        with self.tx() as s:
            return ledger.import_file(s, self.ctx, name, actor="C1", content=text.encode())

    def audit(self, week: str) -> AuditResult:
        with self.tx() as s:
            return run_audit(s, self.ctx, week)

    def scalar(self, query):
        with self.tx() as s:
            return s.scalar(query)

    def scalars(self, query):
        with self.tx() as s:
            return list(s.scalars(query))


@pytest.fixture
def books(engine, clock, policy) -> Books:
    return Books(engine, clock, policy)


def csv_text(
    *rows: str, header: str = "voucher,date,line,kind,amount,payee,description,emergency"
) -> str:
    return "\n".join([header, *rows]) + "\n"


__all__ = ["YEAR", "Books", "add_emergency", "csv_text", "dt", "select"]


def add_emergency(
    books: Books, *, status: str = "acknowledged", drill: bool = False, opened=None
) -> int:
    """An emergency row as the emergency branch's gateway would persist it."""
    import uuid

    from taskforce.emergency.models import Emergency, EmergencyStatus, Level

    with books.tx() as s:
        em = Emergency(
            public_id=str(uuid.uuid4()),
            source="test",
            dedup_key=uuid.uuid4().hex,
            level=Level.II,
            title="Flooded service hall",
            status=EmergencyStatus(status),
            is_drill=drill,
            leading_group="executive",
            opened_at=opened or books.clock.now(),
        )
        s.add(em)
        s.flush()
        return em.id
