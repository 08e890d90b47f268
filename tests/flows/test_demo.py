"""The README's main job, shortened: the scenario through the real flows, money included."""

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flows.demo import run_demo
from taskforce.budget.models import BudgetLine, LedgerEntry, LineStatus
from taskforce.clock import SystemClock
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop.models import Issue
from taskforce.notify.delivery import MessageSnapshot
from taskforce.notify.models import OutboxMessage
from taskforce.notify.render import render_message
from taskforce.policy import load_policy
from taskforce.policy.schema import Classification
from taskforce.trail import verify
from taskforce.trail.models import TrailEntry


@pytest.mark.slow
def test_a_short_demo_funds_plans_pays_them_and_reviews_the_periods(flow_db, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKFORCE_REPORTS_DIR", str(tmp_path / "reports"))
    exports = tmp_path / "exports"
    # Nine weeks from Monday 4 May, to Monday 6 July: two month-ends (May, June), June's
    # review and Q2's.
    scenario = asyncio.run(run_demo(seed=7, weeks=9, start=dt.date(2026, 5, 4), exports=exports))

    # The process's own time again: the suite (or anything else in the process) runs on.
    assert isinstance(Context.default().clock, SystemClock)
    with unit_of_work() as s:
        issues = s.scalar(select(func.count(Issue.id)))
        approved = s.scalars(
            select(BudgetLine.code).where(
                BudgetLine.status == LineStatus.approved, BudgetLine.is_reserve.is_(False)
            )
        ).all()
        paid = s.execute(
            select(BudgetLine.code, func.sum(LedgerEntry.amount_fen), BudgetLine.amount_fen)
            .join(BudgetLine, BudgetLine.id == LedgerEntry.line_id)
            .group_by(BudgetLine.code, BudgetLine.amount_fen)
        ).all()
        assert verify(s).ok
        # Each Monday's compliance audit (周合规检查) ran, one per simulated week, for the
        # reviews to count its findings.
        audited = s.scalars(
            select(TrailEntry.subject_id).where(TrailEntry.action == "budget.audit_run")
        ).all()
        assert len(set(audited)) == 9
        messages = [MessageSnapshot.of(row) for row in s.scalars(select(OutboxMessage))]
    _every_message_reads_in_chinese(messages)
    assert issues >= 5
    assert approved, "no plan was funded"
    assert paid, "no finance export reached the ledger"
    assert all(spent <= amount for _, spent, amount in paid)  # never beyond the line
    assert {code for code, _, _ in paid} <= set(approved)
    # Each imported export is kept for the operator to look at: one per month with payments.
    # June's is imported on Monday 6 July, before the reviews read June (an operator trial:
    # the demo's last month was reviewed as if nothing had been spent in it).
    names = {p.name for p in exports.iterdir()}
    assert names == {"finance-export-2026-05.csv", "finance-export-2026-06.csv"}
    assert scenario.total_actions > scenario.actions  # the budget's actions are counted
    kinds = {(r["kind"], r["period"]) for r in scenario.reviews}
    assert kinds == {("monthly", "2026-06"), ("quarterly", "2026-Q2")}
    for review in scenario.reviews:
        assert all(Path(p).exists() for p in review["files"].values())


# Codes a step stores (stages, outcomes, statuses, colours, reviewers, the sample units, review
# kinds) that a Chinese message must name in words.
RAW_CODES = re.compile(
    r"(?<![\w.-])(reported|coordinating|planning|executing|evaluating|solved|partly|unsolved"
    r"|proposed|in_review|approved|rejected|compliance|evaluator|yellow|orange|red|None|nan"
    r"|dev-reform|finance|industry|commerce|market-reg"
    r"|weekly|monthly|quarterly|semiannual)(?![\w.-])"
)


def _every_message_reads_in_chinese(messages: list[MessageSnapshot]) -> None:
    """Every message the demo's steps wrote, rendered as a cleared zh-CN reader gets it."""
    limits = load_policy().notifications
    assert len({m.event_kind for m in messages}) >= 10, "too few kinds of message to judge"
    for message in messages:
        rendered = render_message(
            message, clearance=Classification.secret, locale="zh-CN", limits=limits
        )
        text = f"{rendered.title}\n{rendered.body}"
        words = re.sub(r"\S*/\S*", "", text)  # a report's file path may name its kind
        assert not RAW_CODES.search(words), (message.event_kind, text)
        assert ": " not in words and ", " not in words, (message.event_kind, text)
        assert "  " not in text and "：。" not in text and "（）" not in text, (
            message.event_kind,
            text,
        )
