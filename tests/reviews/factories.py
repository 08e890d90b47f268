"""Small datasets for review and KPI tests, inserted as ORM rows directly.

The closed-loop services are not needed to build a state; each helper writes
exactly the row it names, with the columns the KPIs and reports read.
"""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce.budget.models import (
    AuditFinding,
    BudgetAdjustment,
    BudgetLine,
    FiscalYear,
    LedgerEntry,
    LedgerKind,
    LineStatus,
    Severity,
)
from taskforce.emergency.models import (
    EarlyWarning,
    Emergency,
    EmergencyStatus,
    Level,
    WarningStatus,
)
from taskforce.loop.models import (
    Evaluation,
    Issue,
    Outcome,
    Plan,
    Stage,
    TaskLevel,
    TaskNode,
)
from taskforce.org.models import Unit
from taskforce.policy.schema import Classification
from taskforce.registers.models import (
    CaseLesson,
    Milestone,
    MilestoneKind,
    Risk,
    RiskCategory,
    RiskStrategy,
)

_seq = itertools.count(1)


def utc(y, m, d, h=0, mi=0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=dt.UTC)


def unit_id(session: Session, code: str = "market-reg") -> int:
    return session.scalar(select(Unit.id).where(Unit.code == code))


def issue(
    session: Session,
    *,
    reported_at: dt.datetime,
    title: str | None = None,
    closed_at: dt.datetime | None = None,
    stage: Stage | None = None,
    stage_due_at: dt.datetime | None = None,
    first_response_at: dt.datetime | None = None,
    classification: Classification = Classification.internal,
    unit: str = "market-reg",
) -> Issue:
    n = next(_seq)
    uid = unit_id(session, unit)
    row = Issue(
        number=f"TF-2026-{90000 + n:05d}",
        title=title or f"issue {n}",
        category="general",
        classification=classification,
        reporting_unit_id=uid,
        lead_unit_id=uid,
        stage=stage or (Stage.closed if closed_at else Stage.executing),
        stage_entered_at=reported_at,
        stage_due_at=stage_due_at,
        reported_at=reported_at,
        first_response_at=first_response_at,
        closed_at=closed_at,
    )
    session.add(row)
    session.flush()
    return row


def action_item(
    session: Session,
    parent: Issue,
    *,
    start: dt.date,
    due: dt.date,
    title: str | None = None,
    completed_at: dt.datetime | None = None,
    progress: int = 0,
    unit: str = "market-reg",
    level: TaskLevel = TaskLevel.action_item,
    under: TaskNode | None = None,
) -> TaskNode:
    """A task node of `parent`'s plan (an action item unless `level` says otherwise), below
    the node `under` if given."""
    plan = session.scalar(select(Plan).where(Plan.issue_id == parent.id))
    if plan is None:
        plan = Plan(
            issue_id=parent.id, round=1, filed_at=parent.reported_at, due_date=start, on_time=True
        )
        session.add(plan)
        session.flush()
    row = TaskNode(
        plan_id=plan.id,
        issue_id=parent.id,
        parent_id=under.id if under else None,
        level=level,
        title=title or f"item {next(_seq)}",
        owner_unit_id=unit_id(session, unit),
        start_date=start,
        due_date=due,
        deliverable="a deliverable",
        progress_percent=100 if completed_at else progress,
        done=completed_at is not None,
        completed_at=completed_at,
    )
    session.add(row)
    session.flush()
    return row


def evaluation(session: Session, parent: Issue, *, at: dt.datetime, satisfaction: int) -> None:
    round_ = next(_seq)
    session.add(
        Evaluation(
            issue_id=parent.id,
            round=round_,
            outcome=Outcome.solved,
            satisfaction=satisfaction,
            evaluated_at=at,
        )
    )


def milestone(
    session: Session,
    *,
    kind: MilestoneKind,
    due: dt.date,
    achieved_on: dt.date | None = None,
    title: str | None = None,
    classification: Classification = Classification.internal,
) -> Milestone:
    n = next(_seq)
    row = Milestone(
        code=f"M-{n:03d}",
        title=title or f"milestone {n}",
        kind=kind,
        due_date=due,
        target="a measurable target",
        achieved=achieved_on is not None,
        achieved_on=achieved_on,
        classification=classification,
    )
    session.add(row)
    session.flush()
    return row


def fiscal_year(session: Session, year: int, total_fen: int) -> None:
    if session.get(FiscalYear, year) is None:
        session.add(FiscalYear(year=year, total_fen=total_fen, reserve_fen=total_fen // 10))
        session.flush()


def budget_line(
    session: Session,
    *,
    year: int,
    amount_fen: int,
    status: LineStatus = LineStatus.approved,
    is_reserve: bool = False,
    purpose: str | None = None,
    issue_id: int | None = None,
    classification: Classification = Classification.internal,
    approved_at: dt.datetime | None = None,
) -> BudgetLine:
    n = next(_seq)
    if approved_at is None and status == LineStatus.approved:
        approved_at = utc(year, 1, 6)
    row = BudgetLine(
        code=f"B-{year}-{n:03d}",
        fiscal_year=year,
        issue_id=issue_id,
        is_reserve=is_reserve,
        purpose=purpose or f"purpose {n}",
        output_target="output",
        benefit_target="benefit",
        amount_fen=amount_fen,
        status=status,
        approved_at=approved_at,
        classification=classification,
        created_at=utc(year, 1, 5),
    )
    session.add(row)
    session.flush()
    return row


def adjustment(
    session: Session, line: BudgetLine, *, delta_fen: int, decided_at: dt.datetime
) -> BudgetAdjustment:
    """An approved change of a line's amount (applied to the line, as the service does)."""
    row = BudgetAdjustment(
        line_id=line.id,
        delta_fen=delta_fen,
        reason="adjustment",
        status=LineStatus.approved,
        approved_by="executive",
        requested_at=decided_at - dt.timedelta(days=1),
        decided_at=decided_at,
    )
    line.amount_fen += delta_fen
    session.add(row)
    session.flush()
    return row


def ledger(
    session: Session,
    line: BudgetLine | None,
    *,
    on: dt.date,
    amount_fen: int,
    kind: LedgerKind = LedgerKind.disbursement,
    description: str = "",
) -> LedgerEntry:
    row = LedgerEntry(
        fiscal_year=on.year,
        line_id=line.id if line else None,
        kind=kind,
        entry_date=on,
        amount_fen=amount_fen,
        payee="payee",
        description=description,
        created_at=utc(on.year, on.month, on.day),
    )
    session.add(row)
    session.flush()
    return row


def finding(
    session: Session, *, first_week: str, resolved_week: str | None = None, severity=Severity.medium
) -> None:
    n = next(_seq)
    session.add(
        AuditFinding(
            finding_key=f"f{n}",
            check_name="overspend",
            severity=severity,
            owner="compliance",
            subject_type="budget_line",
            subject_id=str(n),
            first_seen_week=first_week,
            last_seen_week=resolved_week or first_week,
            resolved=resolved_week is not None,
            resolved_week=resolved_week,
        )
    )


def warning(
    session: Session,
    *,
    colour: str,
    raised_at: dt.datetime,
    deadline_hours: int,
    handled_at: dt.datetime | None = None,
    title: str | None = None,
    classification: Classification = Classification.internal,
    subject: tuple[str, str] | None = None,
) -> None:
    """A warning; `subject` (type, id) defaults to an issue number no issue has."""
    n = next(_seq)
    subject_type, subject_id = subject or ("issue", str(n))
    session.add(
        EarlyWarning(
            dedup_key=f"test:{n}",
            colour=colour,
            source="manual",
            subject_type=subject_type,
            subject_id=subject_id,
            title=title or f"warning {n}",
            handled_by="executive",
            classification=classification,
            raised_at=raised_at,
            deadline_at=raised_at + dt.timedelta(hours=deadline_hours),
            status=WarningStatus.handled if handled_at else WarningStatus.open,
            handled_at=handled_at,
        )
    )


def emergency(
    session: Session,
    *,
    level: Level,
    opened_at: dt.datetime,
    acknowledged_at: dt.datetime | None = None,
    resolved_at: dt.datetime | None = None,
    is_drill: bool = False,
    title: str | None = None,
    classification: Classification = Classification.internal,
) -> None:
    n = next(_seq)
    session.add(
        Emergency(
            public_id=f"00000000-0000-0000-0000-{n:012d}",
            source="test",
            dedup_key=f"e{n}",
            level=level,
            title=title or f"emergency {n}",
            classification=classification,
            status=EmergencyStatus.resolved if resolved_at else EmergencyStatus.acknowledged,
            is_drill=is_drill,
            leading_group="executive",
            opened_at=opened_at,
            acknowledged_at=acknowledged_at,
            resolved_at=resolved_at,
        )
    )


def risk(
    session: Session,
    *,
    code: str,
    probability: int,
    impact: int,
    title: str | None = None,
    classification: Classification = Classification.internal,
    category: RiskCategory = RiskCategory.management,
) -> Risk:
    row = Risk(
        code=code,
        title=title or f"risk {code}",
        category=category,
        probability=probability,
        impact=impact,
        strategy=RiskStrategy.mitigate,
        owner_unit_id=unit_id(session),
        plan="a plan",
        classification=classification,
        reviewed_at=utc(2026, 6, 1),
    )
    session.add(row)
    session.flush()
    return row


def lesson(
    session: Session,
    *,
    title: str,
    text: str,
    at: dt.datetime,
    classification: Classification = Classification.internal,
) -> None:
    session.add(
        CaseLesson(
            source=f"evaluation:{next(_seq)}",
            title=title,
            lesson=text,
            classification=classification,
            created_at=at,
        )
    )


def november_dataset(session: Session) -> dict:
    """The dataset of tests/kpi/test_kpis.py: 2026-11 in Shanghai (UTC+8), reviewed on 1 December.

    The right answer of every KPI is worked out beside its assertion in the test.
    """
    d = dt.date
    a = issue(session, reported_at=utc(2026, 10, 20), closed_at=utc(2026, 11, 5),
              first_response_at=utc(2026, 10, 20, 4))  # fmt: skip
    b = issue(session, reported_at=utc(2026, 11, 2), closed_at=utc(2026, 11, 12, 12),
              first_response_at=utc(2026, 11, 2, 2))  # fmt: skip
    c = issue(session, reported_at=utc(2026, 11, 10), stage=Stage.executing,
              stage_due_at=utc(2026, 11, 20), first_response_at=utc(2026, 11, 10, 6))  # fmt: skip
    issue(session, reported_at=utc(2026, 9, 1), closed_at=utc(2026, 10, 15))  # D
    # E: 1 December 00:00 in Shanghai — the first instant after November.
    issue(session, reported_at=utc(2026, 11, 30, 16), stage=Stage.reported)
    # F: 1 November 00:00 in Shanghai — the first instant of November.
    issue(session, reported_at=utc(2026, 10, 31, 16), stage=Stage.coordinating,
          stage_due_at=utc(2026, 12, 5))  # fmt: skip

    # 23:00 on the due day in Shanghai: on time. 00:00 the next day: late.
    action_item(
        session, c, start=d(2026, 11, 1), due=d(2026, 11, 10), completed_at=utc(2026, 11, 10, 15)
    )
    action_item(
        session, c, start=d(2026, 11, 1), due=d(2026, 11, 10), completed_at=utc(2026, 11, 10, 16)
    )
    # On 1 December (the KPIs' now): red (past due), yellow (55 % of the time gone, 0 % done),
    # green (24 % of the time gone, 30 % done). Colours are derived from these.
    action_item(session, c, start=d(2026, 11, 5), due=d(2026, 11, 20))
    action_item(
        session, a, start=d(2026, 10, 1), due=d(2026, 10, 31), completed_at=utc(2026, 11, 3, 2)
    )
    action_item(session, c, start=d(2026, 11, 20), due=d(2026, 12, 10))
    action_item(session, c, start=d(2026, 11, 25), due=d(2026, 12, 20), progress=30)

    evaluation(session, a, at=utc(2026, 11, 5), satisfaction=80)
    evaluation(session, b, at=utc(2026, 11, 12), satisfaction=95)
    evaluation(session, a, at=utc(2026, 10, 15), satisfaction=50)

    milestone(
        session, kind=MilestoneKind.organisational, due=d(2026, 11, 15), achieved_on=d(2026, 11, 10)
    )
    milestone(
        session, kind=MilestoneKind.progress, due=d(2026, 11, 20), achieved_on=d(2026, 11, 25)
    )
    milestone(session, kind=MilestoneKind.progress, due=d(2026, 11, 30))
    milestone(session, kind=MilestoneKind.outcome, due=d(2026, 12, 1))

    fiscal_year(session, 2026, 200_000_000)
    l1 = budget_line(session, year=2026, amount_fen=100_000_000, issue_id=a.id)
    l2 = budget_line(session, year=2026, amount_fen=50_000_000, issue_id=b.id)
    budget_line(
        session, year=2026, amount_fen=30_000_000, status=LineStatus.proposed, issue_id=c.id
    )
    reserve = budget_line(session, year=2026, amount_fen=15_000_000, is_reserve=True)
    # Decided after November (Shanghai midnight is 16:00Z): not in November's budget base.
    adjustment(session, l1, delta_fen=20_000_000, decided_at=utc(2026, 11, 30, 16))
    budget_line(
        session, year=2026, amount_fen=40_000_000, approved_at=utc(2026, 11, 30, 16), issue_id=c.id
    )
    ledger(session, l1, on=d(2026, 3, 1), amount_fen=30_000_000)
    ledger(session, l2, on=d(2026, 11, 30), amount_fen=15_000_000)
    ledger(session, l2, on=d(2026, 12, 1), amount_fen=10_000_000)
    ledger(session, reserve, on=d(2026, 11, 10), amount_fen=5_000_000, kind=LedgerKind.reserve_draw)

    # November 2026 spans ISO weeks W44 (26 Oct–1 Nov) to W49 (30 Nov–6 Dec).
    finding(session, first_week="2026-W45")
    finding(session, first_week="2026-W40", resolved_week="2026-W46")
    finding(session, first_week="2026-W47", resolved_week="2026-W50", severity=Severity.high)
    finding(session, first_week="2026-W50")

    warning(session, colour="yellow", raised_at=utc(2026, 11, 3), deadline_hours=48,
            handled_at=utc(2026, 11, 4))  # fmt: skip
    warning(session, colour="orange", raised_at=utc(2026, 11, 10), deadline_hours=72,
            handled_at=utc(2026, 11, 14))  # fmt: skip
    warning(session, colour="red", raised_at=utc(2026, 11, 29), deadline_hours=24)
    warning(session, colour="yellow", raised_at=utc(2026, 11, 30, 16), deadline_hours=48)

    emergency(session, level=Level.II, opened_at=utc(2026, 11, 5),
              acknowledged_at=utc(2026, 11, 5, 0, 10), resolved_at=utc(2026, 11, 6))  # fmt: skip
    emergency(session, level=Level.I, opened_at=utc(2026, 11, 8),
              acknowledged_at=utc(2026, 11, 8, 0, 30), resolved_at=utc(2026, 11, 9, 12))  # fmt: skip
    emergency(session, level=Level.III, opened_at=utc(2026, 11, 9))
    emergency(session, level=Level.II, opened_at=utc(2026, 11, 15), is_drill=True)
    session.flush()
    return {"issues": {"A": a, "B": b, "C": c}}


SECRET = "ZQX-SECRET-7731"
INTERNAL = "ZQX-INTERNAL-5519"
PUBLIC = "ZQX-PUBLIC-2204"


def classified_dataset(session: Session) -> dict[str, list[str]]:
    """Records of each classification whose every text is a unique marker string.

    Every kind of record a report can list gets one of each: issues past their
    stage deadline, their red action items, milestones, risks, lessons, closed
    and evaluated issues (typical cases), budget lines and ledger entries,
    warnings, emergencies. Returns the markers by classification.
    """
    markers: dict[str, list[str]] = {"secret": [], "internal": [], "public": []}
    for level, tag in (
        (Classification.secret, SECRET),
        (Classification.internal, INTERNAL),
        (Classification.public, PUBLIC),
    ):

        def m(what: str, tag: str = tag, level: Classification = level) -> str:
            text = f"{tag}-{what}"
            markers[level.value].append(text)
            return text

        late = issue(session, reported_at=utc(2026, 11, 2), stage=Stage.executing,
                     stage_due_at=utc(2026, 11, 20), title=m("issue"), classification=level)  # fmt: skip
        action_item(session, late, start=dt.date(2026, 11, 1), due=dt.date(2026, 11, 15),
                    title=m("task"))  # red: past due  # fmt: skip
        done = issue(session, reported_at=utc(2026, 10, 2), closed_at=utc(2026, 11, 20),
                     title=m("case"), classification=level)  # fmt: skip
        session.add(
            Evaluation(
                issue_id=done.id,
                round=1,
                outcome=Outcome.solved,
                satisfaction=99,
                lessons=m("case-lesson"),
                evaluated_at=utc(2026, 11, 20),
            )
        )
        milestone(session, kind=MilestoneKind.progress, due=dt.date(2026, 11, 10),
                  title=m("milestone"), classification=level)  # fmt: skip
        risk(session, code=f"R-{level.value.upper()}-ZQX", probability=5, impact=5,
             title=m("risk"), classification=level)  # fmt: skip
        markers[level.value].append(f"R-{level.value.upper()}-ZQX")
        lesson(session, title=m("lesson"), text=m("lesson-text"), at=utc(2026, 10, 1),
               classification=level)  # fmt: skip
        fiscal_year(session, 2026, 100_000_000)
        line = budget_line(session, year=2026, amount_fen=10_000_000, purpose=m("purpose"),
                           issue_id=late.id, classification=level)  # fmt: skip
        ledger(
            session, line, on=dt.date(2026, 11, 3), amount_fen=1_000_000, description=m("ledger")
        )
        warning(session, colour="yellow", raised_at=utc(2026, 11, 5), deadline_hours=48,
                title=m("warning"), classification=level)  # fmt: skip
        emergency(session, level=Level.II, opened_at=utc(2026, 11, 6), title=m("emergency"),
                  classification=level)  # fmt: skip
    session.flush()
    return markers
