"""The weekly compliance audit: each check on a ledger built to trigger it, a clean ledger
that triggers none, and the lifecycle of findings (no duplicates, resolved, any past week)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from taskforce.budget import service
from taskforce.budget.audit import _authority_rule_zh
from taskforce.budget.forms import ReserveDrawForm
from taskforce.budget.models import (
    AuditFinding,
    BudgetAdjustment,
    BudgetLine,
    BudgetReview,
    LineStatus,
    ReviewStage,
)
from taskforce.budget.performance import run_performance_audit
from taskforce.budget.periods import week_of
from taskforce.budget.report import render_audit, write_audit_reports
from taskforce.errors import DomainError
from taskforce.notify.models import OutboxMessage
from taskforce.trail.models import TrailEntry
from tests.budget.conftest import YEAR, add_emergency, csv_text

WEEK = "2026-W11"  # Monday 9 March to Sunday 15 March 2026; the clock starts on that Monday


def keys(result) -> set[str]:
    # Every finding also reads in Chinese, for the zh-CN report's 说明 column.
    for text in result.findings["summary_zh"]:
        assert text and "CNY" not in text and re.search(r"[\u4e00-\u9fff]", text), text
    return set(result.findings.loc[result.findings["status"] != "resolved", "finding_key"])


@pytest.fixture
def clean(books):
    """A compliant ledger: approved lines, spending within them and on schedule, a reserve
    draw for an open emergency."""
    books.set_year("100000000.00")
    books.line("A-1", "1000000.00", schedule=[("2026-03-10", "300000"), ("2026-06-30", "700000")])
    books.line("B-1", "6000000.00", approver="L1")
    books.clock.advance(days=1)
    books.import_csv(
        csv_text(
            "V1,2026-03-10,A-1,,299999.99,ACME,first instalment,",
            "V2,2026-03-11,A-1,,0.01,ACME,rounding,",
            "V3,2026-03-12,B-1,,6000000.00,BuildCo,the whole line,",
        )
    )
    emergency = add_emergency(books)
    with books.tx() as s:
        service.draw_reserve(
            s,
            books.ctx,
            ReserveDrawForm(
                fiscal_year=YEAR,
                emergency=str(emergency),
                entry_date=dt.date(2026, 3, 10),
                amount=Decimal("50000"),
                description="pumps",
                voucher="R1",
                approver="E1",
            ),
            actor="E1",
        )
    return books


def test_a_clean_ledger_triggers_no_check(clean):
    result = clean.audit(WEEK)
    assert result.findings.empty, result.findings.to_string()
    assert result.summary["open"] == 0
    assert result.summary["spent_fen"] == 30_000_000 + 600_000_000
    assert result.summary["reserve_drawn_fen"] == 5_000_000


def test_unapproved_spending_on_a_proposed_line(clean):
    clean.propose("P-1", "100.00")
    clean.import_csv(csv_text("V9,2026-03-12,P-1,,10,ACME,,"))
    result = clean.audit(WEEK)
    assert keys(result) == {"unapproved_spending:budget_line:P-1"}
    row = result.findings.iloc[0]
    assert (row["severity"], row["owner"], row["amount_fen"]) == ("high", "data-bureau", 1000)
    assert row["summary_zh"] == "P-1：10.00 元支出时预算行尚未批准（状态：待审）"


def test_unapproved_spending_without_any_line(clean):
    clean.import_csv(csv_text("V9,2026-03-12,,,10,ACME,,"))
    result = clean.audit(WEEK)
    (key,) = keys(result)
    assert key.startswith("unapproved_spending:ledger_entry:")
    row = result.findings.iloc[0]
    assert row["summary"].startswith("entry voucher:V9 of 2026-03-12: 10.00 CNY")
    assert row["summary_zh"].startswith("台账分录 voucher:V9（2026-03-12）：10.00 元")


def test_a_payment_without_a_voucher_is_named_by_its_entry_not_its_content_hash(clean):
    """An operator trial: a row with an empty voucher was "row:b5388dd19093…" in the
    findings (its content's hash, the ledger's key for it)."""
    clean.import_csv(csv_text(",2026-03-12,,,10,ACME,,"))
    result = clean.audit(WEEK)
    row = result.findings.iloc[0]
    entry_id = row["subject_id"]
    assert row["summary"].startswith(f"entry {entry_id} (no voucher) of 2026-03-12: 10.00 CNY")
    assert row["summary_zh"].startswith(f"无凭证号的台账分录 {entry_id}（2026-03-12）：10.00 元")
    assert "row:" not in row["summary"] + row["summary_zh"]


def test_unapproved_spending_before_the_line_was_approved(clean):
    # A-1 was approved on 9 March; a payment dated the 6th preceded the approval.
    clean.import_csv(csv_text("V9,2026-03-06,A-1,,10,ACME,,"))
    result = clean.audit(WEEK)
    assert keys(result) == {"unapproved_spending:budget_line:A-1"}
    assert int(result.findings.iloc[0]["amount_fen"]) == 1000
    assert (
        result.findings.iloc[0]["summary_zh"] == "A-1：10.00 元支出早于预算行批准日（2026-03-09）"
    )


def test_a_week_audited_after_its_line_was_approved_judges_the_line_as_it_was(clean):
    """A payment of the week on a line approved only after the week ended: the finding says
    so (not "a line that is approved, not approved"), the week's line list shows the line
    approved after the period, and the week's approved total leaves it out."""
    clean.clock.advance(days=7)  # Tuesday 17 March, in the next week
    clean.line("L-9", "100.00")
    clean.import_csv(csv_text("V9,2026-03-12,L-9,,10,ACME,,"))
    result = clean.audit(WEEK)
    assert keys(result) == {"unapproved_spending:budget_line:L-9"}
    finding = result.findings.iloc[0]
    assert finding["summary"] == (
        "L-9: 10.00 CNY spent on a line not yet approved when the period ended "
        "(approved on 2026-03-17)"
    )
    assert finding["summary_zh"] == "L-9：10.00 元支出时预算行尚未批准（2026-03-17 才获批准）"
    line = result.lines.set_index("code").loc["L-9"]
    assert line["status"] == "approved_later"
    assert result.summary["allocated_fen"] == 100_000_000 + 600_000_000  # A-1 and B-1 only
    for locale, label in (("zh-CN", "期后批准"), ("en", "approved after the period")):
        assert label in render_audit(result, fmt="html", locale=locale), locale


def test_a_line_rejected_after_the_audited_week_is_listed_as_it_stood(clean):
    """Two lines proposed in the week and rejected after it: the week's list shows the one
    reviewed in the week as in review, the other as proposed, not 已驳回; the finding about
    spending on the first says so too."""
    clean.propose("R-1", "100.00")
    clean.review("C1", code="R-1")  # the compliance review, within the week
    clean.propose("R-2", "100.00")
    clean.import_csv(csv_text("V9,2026-03-12,R-1,,10,ACME,,"))
    clean.clock.advance(days=7)  # into the next week: both are rejected there
    clean.review("V1", code="R-1", approved=False)
    clean.review("C1", code="R-2", approved=False)
    result = clean.audit(WEEK)
    status = result.lines.set_index("code")["status"]
    assert (status["R-1"], status["R-2"]) == ("in_review", "proposed")
    (finding,) = result.findings[result.findings["subject_id"] == "R-1"].itertuples()
    assert finding.summary_zh == "R-1：10.00 元支出时预算行尚未批准（状态：审核中）"
    assert clean.audit("2026-W12").lines.set_index("code")["status"]["R-1"] == "rejected"


def test_a_week_still_running_is_marked_so_in_its_reports(clean):
    """An operator may audit the week in progress (the schedule audits the last finished
    one): the reports say the ledger was read as of now and may still change."""
    from zoneinfo import ZoneInfo

    local = clean.clock.now().astimezone(ZoneInfo(clean.ctx.policy.timezone))
    running = clean.audit(WEEK)  # Tuesday of the week
    assert running.summary["in_progress"] is True
    assert running.summary["as_of"] == f"{local:%Y-%m-%d %H:%M}"
    html = render_audit(running, fmt="html", locale="zh-CN")
    assert f"本周尚未结束：本报告按 {local:%Y-%m-%d %H:%M} 时的台账检查" in html
    assert "This week has not ended" in render_audit(running, fmt="md", locale="en")
    clean.clock.advance(days=7)
    finished = clean.audit(WEEK)
    assert finished.summary["in_progress"] is False
    assert finished.summary["as_of"] == "2026-03-16 00:00"  # the end of Sunday
    assert "本周尚未结束" not in render_audit(finished, fmt="html", locale="zh-CN")
    assert "has not ended" not in render_audit(finished, fmt="html", locale="en")


def test_overspend_by_one_fen(clean):
    # B-1 is spent to the fen: compliant. One more fen is overspending.
    assert clean.audit(WEEK).findings.empty
    clean.import_csv(csv_text("V9,2026-03-13,B-1,,0.01,BuildCo,,"))
    result = clean.audit(WEEK)
    assert keys(result) == {"overspend:budget_line:B-1"}
    assert int(result.findings.iloc[0]["amount_fen"]) == 1
    assert result.findings.iloc[0]["summary_zh"] == (
        "B-1：预算 6,000,000.00 元，已支出 6,000,000.01 元，超支 0.01 元"
    )


def _approve_directly(books, code: str, group: str):
    """An approval recorded outside the service (e.g. a legacy import): no authority check."""
    with books.tx() as s:
        line = s.scalar(select(BudgetLine).where(BudgetLine.code == code))
        s.add(
            BudgetReview(
                line_id=line.id,
                stage=ReviewStage(group)
                if group in ("executive", "leadership")
                else ReviewStage.executive,
                reviewer_group=group,
                approved=True,
                amount_fen=line.amount_fen,
                at=books.clock.now(),
            )
        )
        line.status, line.approved_by, line.approved_at = (
            LineStatus.approved,
            group,
            books.clock.now(),
        )


@pytest.mark.parametrize(
    ("amount", "finding"), [("5000000.00", False), ("5000000.01", True), ("10000000.00", True)]
)
def test_approval_beyond_authority(clean, amount, finding):
    clean.propose("X-1", amount)
    clean.review("C1", code="X-1")
    clean.review("V1", code="X-1")
    _approve_directly(clean, "X-1", "executive")
    result = clean.audit(WEEK)
    if not finding:
        assert result.findings.empty
        return
    assert keys(result) == {"approval_beyond_authority:budget_line:X-1"}
    row = result.findings.iloc[0]
    assert row["severity"] == "critical" and row["owner"] == "executive"
    assert "exceed the executive group's authority" in row["summary"]
    assert row["summary_zh"] == (
        f"X-1：{Decimal(amount):,} 元由执行小组批准；"
        "金额超过 5,000,000.00 元，超出执行小组审批权限，须报领导小组审批"
    )


@pytest.mark.parametrize(
    ("group", "amount", "cross", "english", "chinese"),
    [
        (
            "wg:data",
            "10.00",
            False,
            "the working_group group has no approval authority",
            "X-1：10.00 元由数据共享工作组批准；"
            "数据共享工作组无审批权限；该事项应由执行小组审批（5,000,000.00 元以下，含本数）",
        ),
        (
            "executive",
            "10000000.00",
            True,
            "cross-department allocation of 10000000.00 CNY or more",
            "X-1：10,000,000.00 元由执行小组批准；"
            "跨部门资金调配 10,000,000.00 元以上（含本数）须由领导小组审批",
        ),
        (
            "finance",  # a unit, not a group: no authority at all
            "10.00",
            False,
            "finance is not an approving group",
            "X-1：10.00 元由财政局批准；财政局不是审批组",
        ),
    ],
)
def test_an_approval_without_authority_is_explained_in_both_languages(
    clean, group, amount, cross, english, chinese
):
    clean.propose("X-1", amount, cross=cross)
    clean.review("C1", code="X-1")
    clean.review("V1", code="X-1")
    _approve_directly(clean, "X-1", group)
    result = clean.audit(WEEK)
    assert keys(result) == {"approval_beyond_authority:budget_line:X-1"}
    row = result.findings.iloc[0]
    assert english in row["summary"]
    assert row["summary_zh"] == chinese


def test_the_chinese_rule_of_a_non_group_needs_no_amount_rule(policy):
    """An approval recorded by something that is no group: named as such, whatever the
    amount (route_amount refuses a negative one, and the audit must not fail on it)."""
    assert _authority_rule_zh("finance", -100, policy, cross_department=False) == (
        "财政局不是审批组"
    )
    assert _authority_rule_zh(None, 100, policy, cross_department=False) == (
        "（未记录审批组）不是审批组"
    )


def test_a_finding_stored_before_its_chinese_text_shows_its_english_one(clean, tmp_path):
    """Findings stored before session 14 have no Chinese text: when one is resolved, the
    zh-CN report shows its English text and the workbook's summary_zh cell stays empty."""
    clean.import_csv(csv_text("V9,2026-03-13,B-1,,0.01,BuildCo,,"))
    clean.audit(WEEK)
    with clean.tx() as s:
        stored = s.scalar(select(AuditFinding))
        stored.detail = {k: v for k, v in stored.detail.items() if k != "summary_zh"}
    clean.clock.set(dt.datetime(2026, 3, 17, 2, tzinfo=dt.UTC))
    clean.adjust("B-1", "0.01", approver="L1")
    later = clean.audit("2026-W12")
    row = later.findings.set_index("finding_key").loc["overspend:budget_line:B-1"]
    assert row["status"] == "resolved" and row["summary_zh"] == ""
    html = write_audit_reports(later, tmp_path)["html_zh-CN"].read_text("utf-8")
    assert "B-1: spent 6,000,000.01 CNY of 6,000,000.00 CNY" in html


def test_adjustment_without_the_procedure(clean):
    with clean.tx() as s:
        line = s.scalar(select(BudgetLine).where(BudgetLine.code == "A-1"))
        adjustment = BudgetAdjustment(
            line_id=line.id,
            delta_fen=100,
            reason="nobody reviewed this",
            status=LineStatus.approved,
            approved_by="executive",
            requested_at=clean.clock.now(),
            decided_at=clean.clock.now(),
        )
        s.add(adjustment)
        line.amount_fen += 100
        s.flush()
        adjustment_id = adjustment.id
    result = clean.audit(WEEK)
    assert keys(result) == {f"adjustment_without_procedure:budget_adjustment:{adjustment_id}"}
    assert "no compliance review" in result.findings.iloc[0]["summary"]
    assert result.findings.iloc[0]["summary_zh"] == (
        f"预算调整 {adjustment_id}（A-1，调增 1.00 元）批准前"
        "未经初审（合规审核）、复审（第三方评估）、终审"
    )


def test_line_amount_changed_without_an_adjustment(clean):
    with clean.tx() as s:
        line = s.scalar(select(BudgetLine).where(BudgetLine.code == "A-1"))
        line.amount_fen += 1
    result = clean.audit(WEEK)
    assert keys(result) == {"adjustment_without_procedure:budget_line:A-1:amount"}


def test_an_adjustment_through_the_procedure_is_not_a_finding(clean):
    clean.adjust("A-1", "10.00")
    assert clean.audit(WEEK).findings.empty


def test_disbursement_behind_schedule(books):
    books.set_year("100000000.00")
    books.line("A-1", "1000.00", schedule=[("2026-03-10", "500.00"), ("2026-03-16", "500.00")])
    books.import_csv(csv_text("V1,2026-03-10,A-1,,499.99,ACME,,"))
    result = books.audit(WEEK)
    assert keys(result) == {"behind_schedule:budget_line:A-1"}
    row = result.findings.iloc[0]
    # Only what is due by Sunday of the audited week counts: 500.00 due, 499.99 paid.
    assert (row["severity"], int(row["amount_fen"])) == ("medium", 1)
    assert (
        row["summary_zh"] == "A-1：截至本周末计划拨付 500.00 元，实际拨付 499.99 元，滞后 0.01 元"
    )


@pytest.mark.parametrize("case", ["no emergency", "drill", "opened later"])
def test_reserve_drawn_without_an_emergency(clean, case):
    if case == "no emergency":
        ref = ""
    elif case == "drill":
        ref = str(add_emergency(clean, drill=True))
    else:
        ref = str(add_emergency(clean, opened=dt.datetime(2026, 3, 14, 2, tzinfo=dt.UTC)))
    clean.import_csv(csv_text(f"R9,2026-03-12,,reserve_draw,10,ACME,,{ref}"))
    result = clean.audit(WEEK)
    (key,) = keys(result)
    assert key.startswith("reserve_without_emergency:ledger_entry:")
    assert result.findings.iloc[0]["severity"] == "critical"
    reason = {
        "no emergency": "未关联应急事件",
        "drill": "为演练",
        "opened later": "启动晚于动用日期",
    }
    assert result.findings.iloc[0]["summary_zh"].startswith(
        "应急预留动用 voucher:R9（2026-03-12）：10.00 元，"
    )
    assert result.findings.iloc[0]["summary_zh"].endswith(reason[case])


def test_reserve_below_its_required_share(books):
    books.set_year("1000000.00")  # reserve 100,000.00
    # The reserve line one fen short, as an adjustment approved before adjustments of the
    # reserve were refused (service.propose_adjustment) could leave it.
    with books.tx() as s:
        s.execute(
            update(BudgetLine)
            .where(BudgetLine.code == service.reserve_line_code(YEAR))
            .values(amount_fen=BudgetLine.amount_fen - 1)
        )
    result = books.audit(WEEK)
    assert keys(result) == {f"reserve_below_share:fiscal_year:{YEAR}"}
    row = result.findings.iloc[0]
    assert (row["owner"], int(row["amount_fen"])) == ("leadership", 1)
    assert (
        row["summary_zh"]
        == f"{YEAR} 年度：应急预留可用 99,999.99 元，低于年度预算 10% 的规定（应为 100,000.00 元）"
    )


def test_rerun_for_the_same_week_creates_no_duplicates_or_notifications(clean):
    clean.import_csv(csv_text("V9,2026-03-12,,,10,ACME,,", "V10,2026-03-13,B-1,,0.01,BuildCo,,"))
    first = clean.audit(WEEK)
    outbox = clean.scalar(select(func.count(OutboxMessage.id)))
    second = clean.audit(WEEK)
    assert len(first.new_keys) == 2 and second.new_keys == []
    assert keys(first) == keys(second)
    assert set(second.findings["status"]) == {"open"}
    assert clean.scalar(select(func.count(AuditFinding.id))) == 2
    assert clean.scalar(select(func.count(OutboxMessage.id))) == outbox


def test_findings_notify_compliance_and_severe_ones_leadership(clean):
    clean.import_csv(csv_text("V9,2026-03-12,,,10,ACME,,"))
    clean.audit(WEEK)
    rows = clean.scalars(
        select(OutboxMessage).where(OutboxMessage.event_kind.like("audit_finding%"))
    )
    assert {(r.event_kind, r.audience) for r in rows} == {
        ("audit_finding", "compliance"),
        ("audit_finding_severe", "compliance"),
        ("audit_finding_severe", "leadership"),
    }


def test_a_medium_finding_does_not_notify_leadership(books):
    books.set_year("100000000.00")
    books.line("A-1", "1000.00", schedule=[("2026-03-10", "500.00")])
    books.audit(WEEK)
    kinds = set(
        books.scalars(
            select(OutboxMessage.event_kind).where(OutboxMessage.event_kind.like("audit%"))
        )
    )
    assert kinds == {"audit_finding"}


def test_a_finding_fixed_later_is_shown_resolved(clean):
    clean.import_csv(csv_text("V9,2026-03-13,B-1,,0.01,BuildCo,,"))
    assert keys(clean.audit(WEEK)) == {"overspend:budget_line:B-1"}
    clean.clock.set(dt.datetime(2026, 3, 17, 2, tzinfo=dt.UTC))  # week 12: the line is raised
    clean.adjust("B-1", "0.01", approver="L1")
    later = clean.audit("2026-W12")
    assert keys(later) == set()
    row = later.findings.set_index("finding_key").loc["overspend:budget_line:B-1"]
    assert (row["status"], row["resolved_week"], row["first_seen_week"]) == (
        "resolved",
        "2026-W12",
        WEEK,
    )
    stored = clean.scalar(select(AuditFinding))
    assert stored.resolved and stored.resolved_week == "2026-W12"
    # Week 11 re-run later: the adjustment was not in force then, but the fix stands.
    again = clean.audit(WEEK)
    assert again.new_keys == []
    assert clean.scalar(select(AuditFinding.resolved)) is True


def test_a_resolved_finding_found_again_later_reopens(clean):
    clean.import_csv(csv_text("V9,2026-03-13,B-1,,0.01,BuildCo,,"))
    clean.audit(WEEK)
    clean.clock.set(dt.datetime(2026, 3, 17, 2, tzinfo=dt.UTC))
    clean.adjust("B-1", "0.01", approver="L1")
    clean.audit("2026-W12")
    clean.import_csv(csv_text("V10,2026-03-24,B-1,,5,BuildCo,,"))
    clean.clock.set(dt.datetime(2026, 3, 30, 2, tzinfo=dt.UTC))  # W13 has begun (and ended)
    result = clean.audit("2026-W13")
    assert result.new_keys == ["overspend:budget_line:B-1"]
    assert result.findings.iloc[0]["status"] == "reopened"
    assert clean.scalar(select(func.count(AuditFinding.id))) == 1


def test_any_past_week_sees_only_what_was_in_force(clean):
    clean.import_csv(csv_text("V9,2026-03-13,,,10,ACME,,"))
    before = clean.audit("2026-W10")  # the week before: no budget lines approved yet, no spending
    assert before.findings.empty
    assert keys(clean.audit(WEEK)) != set()


def test_a_week_or_half_not_begun_is_refused_and_writes_nothing(books):
    """An audit of 2030 found nothing, yet it was recorded, published and announced."""
    trail = books.scalar(select(func.count(TrailEntry.id)))
    with pytest.raises(DomainError, match="week: 2030-W01 has not begun") as week:
        books.audit("2030-W01")
    assert week.value.field == "week"
    with books.tx() as s, pytest.raises(DomainError, match="half: 2030-H1 has not begun"):
        run_performance_audit(s, books.ctx, "2030-H1")
    assert books.scalar(select(func.count(TrailEntry.id))) == trail
    # This week, begun but not over, may be audited (a mid-week check).
    assert books.audit(week_of(books.ctx.today()).label).summary["week"]


def test_a_period_before_the_first_recorded_fiscal_year_is_refused_and_writes_nothing(books):
    """`--week 1999-W01` audited a ledger that cannot hold a payment of 1999, and recorded,
    published and announced the empty audit."""
    books.set_year()  # 2026
    trail = books.scalar(select(func.count(TrailEntry.id)))
    with pytest.raises(DomainError, match="week: 1999-W01 ends before the first recorded") as e:
        books.audit("1999-W01")
    assert "from 2026 on" in e.value.allowed and "set-year" in e.value.allowed
    with books.tx() as s, pytest.raises(DomainError, match="half: 2025-H2 ends before"):
        run_performance_audit(s, books.ctx, "2025-H2")
    assert books.scalar(select(func.count(TrailEntry.id))) == trail
    # A week across the new year (2025-12-29 .. 2026-01-04) ends in 2026: audited.
    assert books.audit("2026-W01").summary["week"] == "2026-W01"


def test_a_new_years_first_week_is_audited_before_its_year_is_recorded(books):
    """The scheduled audit of the first weeks of 2027 runs before the office records 2027:
    refusing it would fail the schedule every Monday until then (and the demo, past its
    first year)."""
    books.set_year()  # 2026 only
    books.clock.set(dt.datetime(2027, 1, 11, 2, tzinfo=dt.UTC))
    assert books.audit("2027-W01").summary["week"] == "2027-W01"


def test_a_bad_week_is_refused_naming_the_field(books):
    with pytest.raises(DomainError, match="week"):
        books.audit("2026-W54")
    with pytest.raises(DomainError, match="week"):
        books.audit("2026-48")


def test_a_week_without_any_budget_audits_to_nothing(books):
    result = books.audit(
        "2025-W01"
    )  # spans 2024-12-30 .. 2025-01-05: two fiscal years, neither set
    assert result.findings.empty and result.summary["budget_fen"] == 0
    assert result.summary["fiscal_years"] == [2024, 2025]
