"""Step 1, 问题上报: a report opens an issue, or links to the open issue it repeats."""

from __future__ import annotations

import difflib
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.errors import DomainError, NotFound
from taskforce.idempotency import fingerprint, previous_result, remember
from taskforce.loop.forms import ReportIssueForm, ReportResult
from taskforce.loop.models import Issue, IssueReport, IssueUnit, Stage
from taskforce.money import to_fen
from taskforce.org.models import Unit
from taskforce.org.service import unknown_unit


def _units(session: Session, codes: set[str]) -> dict[str, Unit]:
    found = {u.code: u for u in session.scalars(select(Unit).where(Unit.code.in_(codes)))}
    return found


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.casefold(), b.casefold()).ratio()


def title_length_bounds(length: int, threshold: float) -> tuple[int, int]:
    """Lengths a title must have to be `threshold`-similar to one of `length` characters.

    Similarity 2·matches/(la+lb) cannot reach t unless lb lies within la·t/(2−t) … la·(2−t)/t,
    so the database can drop the other titles before any comparison (one character of slack
    for case folding that changes a length).
    """
    return int(length * threshold / (2 - threshold)) - 1, int(
        length * (2 - threshold) / threshold
    ) + 1


def find_duplicate(session: Session, ctx: Context, lead_unit_id: int, title: str) -> Issue | None:
    """An open issue of the same lead unit whose title is near-identical."""
    threshold = ctx.policy.loop.duplicate_title_similarity
    shortest, longest = title_length_bounds(len(title), threshold)
    rows = session.execute(
        select(Issue.id, Issue.title).where(
            Issue.lead_unit_id == lead_unit_id,
            Issue.stage != Stage.closed,
            func.length(Issue.title).between(shortest, longest),
        )
    ).all()
    best = most_similar(title, rows, threshold)
    return session.get(Issue, best) if best is not None else None


def most_similar(title: str, rows, threshold: float) -> int | None:
    """The id of the (first) most similar title, if it reaches the threshold.

    The same answer as max(rows, key=_similar) then the threshold, without the full ratio
    for titles whose cheap upper bounds (real_quick_ratio, quick_ratio) cannot reach the
    threshold or beat the best so far: with thousands of open issues per lead unit, the full
    ratio of every title was most of a report's time (benchmarks/RESULTS.md).
    """
    query = title.casefold()
    query_chars = set(query)
    matcher = difflib.SequenceMatcher(None)
    matcher.set_seq1(query)
    best_id, best_ratio = None, -1.0
    for row_id, row_title in rows:
        other = row_title.casefold()
        total = len(query) + len(other)
        floor = max(threshold, best_ratio)
        # Characters of the title that the other lacks can never match: a bound that costs
        # one set difference in C (each lacking character occurs at least once).
        unmatched = len(query_chars.difference(other))
        if total and 2.0 * (len(query) - unmatched) / total < floor:
            continue
        matcher.set_seq2(other)
        if matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor:
            continue
        ratio = matcher.ratio()
        if ratio > best_ratio:
            best_id, best_ratio = row_id, ratio
    return best_id if best_ratio >= threshold else None


def report_issue(
    session: Session,
    ctx: Context,
    form: ReportIssueForm,
    *,
    actor: str,
    key: str | None = None,
    origin: str = "report",
    origin_ref: str | None = None,
) -> ReportResult:
    form = ReportIssueForm.model_validate(
        form.model_dump()
    )  # validate again: forms may lose constraints
    # An operator's key must not be reused for a different report. The keys the system
    # derives name the thing itself, whatever its text now: an import's row (its ledger
    # number: an edited row is "already imported"), a review's missed target, an
    # emergency's follow-up (a re-run returns the issue opened the first time).
    seen = fingerprint(form) if origin == "report" else None
    if (done := previous_result(session, key, seen=seen)) is not None:
        return ReportResult.model_validate(done)
    lead_code = form.received_by or form.reporting_unit
    wanted = {form.reporting_unit, lead_code, *form.related_units}
    units = _units(session, wanted)
    for field, codes in (
        ("reporting_unit", [form.reporting_unit]),
        ("received_by", [lead_code]),
        ("related_units", form.related_units),
    ):
        for code in codes:
            if code not in units:
                raise unknown_unit(session, code, field)
    now = ctx.now()
    lead = units[lead_code]

    original: Issue | None = None
    if form.duplicate_of:
        original = session.scalar(select(Issue).where(Issue.number == form.duplicate_of))
        if original is None:
            raise NotFound(f"no issue {form.duplicate_of}", field="duplicate_of")
        if original.stage == Stage.closed:
            raise DomainError(
                f"{form.duplicate_of} is closed; report a new issue instead", field="duplicate_of"
            )
    else:
        original = find_duplicate(session, ctx, lead.id, form.title)

    if original is not None:
        session.add(
            IssueReport(
                issue_id=original.id,
                unit_id=units[form.reporting_unit].id,
                title=form.title,
                description=form.description,
                received_at=now,
                duplicate=True,
                idempotency_key=key,
            )
        )
        session.flush()
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="issue.duplicate_linked",
            subject_type="issue",
            subject_id=original.number,
            classification=original.classification,
            notify="duplicate_linked",
            payload={
                "title": form.title,
                "reporting_unit": form.reporting_unit,
                "explicit": bool(form.duplicate_of),
            },
            context={
                "issue": original.number,
                "title": original.title,
                "unit": units[form.reporting_unit].name,
            },
        )
        result = ReportResult(
            issue_id=original.id,
            issue_number=original.number,
            duplicate=True,
            lead_unit=session.get(Unit, original.lead_unit_id).code,
            stage=original.stage.value,
        )
        remember(session, key, "report_issue", result.model_dump(), now, seen=seen)
        return result

    deadline = ctx.calendar.add_working_days(
        ctx.today(), ctx.policy.loop.coordination_deadline_working_days
    )
    issue = Issue(
        number=f"pending-{uuid.uuid4().hex[:20]}",
        title=form.title,
        description=form.description,
        category=form.category,
        classification=form.classification,
        reporting_unit_id=units[form.reporting_unit].id,
        lead_unit_id=lead.id,
        estimated_budget_fen=to_fen(form.estimated_budget),
        stage=Stage.reported,
        stage_entered_at=now,
        stage_due_at=ctx.end_of(deadline.due),
        reported_at=now,
        origin=origin,
        origin_ref=origin_ref,
    )
    session.add(issue)
    session.flush()
    issue.number = f"TF-{ctx.today().year}-{issue.id:05d}"
    session.add(
        IssueReport(
            issue_id=issue.id,
            unit_id=issue.reporting_unit_id,
            title=form.title,
            description=form.description,
            received_at=now,
            idempotency_key=key,
        )
    )
    for code in sorted(set(form.related_units) - {lead_code}):
        session.add(IssueUnit(issue_id=issue.id, unit_id=units[code].id, round=0))
    session.flush()
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="issue.reported",
        subject_type="issue",
        subject_id=issue.number,
        classification=issue.classification,
        notify="issue_reported",
        calendar_fallback=deadline.fallback_used,
        payload={
            "title": form.title,
            "reporting_unit": form.reporting_unit,
            "lead_unit": lead_code,
            "category": form.category,
            "related_units": sorted(form.related_units),
            "estimated_budget": str(form.estimated_budget),
            "coordination_due": deadline.due,
        },
        context={
            "issue": issue.number,
            "title": issue.title,
            "unit": units[form.reporting_unit].name,
            "lead_unit": lead.name,
            "due": deadline.due.isoformat(),
        },
    )
    result = ReportResult(
        issue_id=issue.id,
        issue_number=issue.number,
        duplicate=False,
        lead_unit=lead_code,
        stage=Stage.reported.value,
    )
    remember(session, key, "report_issue", result.model_dump(), now, seen=seen)
    return result
