"""Step 1, 问题上报: a report opens an issue, or links to the open issue it repeats."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.errors import DomainError, NotFound
from taskforce.idempotency import fingerprint, previous_result, remember
from taskforce.loop.duplicates import OpenTitles, find_duplicate
from taskforce.loop.forms import ReportIssueForm, ReportResult
from taskforce.loop.models import Issue, IssueReport, IssueUnit, Stage
from taskforce.money import to_fen
from taskforce.org.models import Unit
from taskforce.org.service import unknown_unit
from taskforce.policy.schema import Classification


def _units(session: Session, codes: set[str]) -> dict[str, Unit]:
    found = {u.code: u for u in session.scalars(select(Unit).where(Unit.code.in_(codes)))}
    return found


def report_issue(
    session: Session,
    ctx: Context,
    form: ReportIssueForm,
    *,
    actor: str,
    key: str | None = None,
    origin: str = "report",
    origin_ref: str | None = None,
    open_titles: OpenTitles | None = None,
) -> ReportResult:
    """Open an issue, or link the report to the open issue it repeats (taskforce.loop.
    duplicates). `open_titles`: the lead units' open titles read once, for an import's rows;
    a new issue is staged there, kept when the caller's `open_titles.row()` block (which
    holds the transaction) ends well."""
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
        if original is not None and not original.classification.readable_by(form.classification):
            # Linked, its number and stage would be shown at the report's level; refused as
            # one that does not exist, so the refusal says no more (taskforce.loop.duplicates).
            original = None
        if original is None:
            raise NotFound(
                f"no issue {form.duplicate_of} at this report's classification "
                f"({form.classification.value}) or below",
                field="duplicate_of",
            )
        if original.stage == Stage.closed:
            raise DomainError(
                f"{form.duplicate_of} is closed; report a new issue instead", field="duplicate_of"
            )
    elif origin == "emergency":
        # Each emergency ends in an issue of its own (SPEC §5): a monitoring system's alerts
        # share a title template ("批次告警 3", "批次告警 4"), not an incident.
        original = None
    elif open_titles is not None:
        original = open_titles.find(session, ctx, lead.id, form.title, form.classification)
    else:
        original = find_duplicate(session, ctx, lead.id, form.title, form.classification)

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
            # The entry holds the report's title: a secret report linked to an internal
            # issue must not be readable at the issue's level.
            classification=Classification.highest(original.classification, form.classification),
            # A review's missed target linked to its open improvement issue is listed in the
            # review's Act section, which review_published announces: no notice each.
            notify=None if origin == "review" else "duplicate_linked",
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
    if open_titles is not None:
        open_titles.stage(lead.id, issue.id, form.title, form.classification)
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
