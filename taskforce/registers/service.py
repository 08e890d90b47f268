"""The registers the reviews read: risks (SPEC §6), milestones (§3, §5.3), the case library.

Upserts by code: submitting the same form twice changes nothing and writes no
second trail entry. A risk whose score reaches a warning threshold raises that
warning once (dedup key risk:<code>:<colour>); a score fallen below it settles that
warning, and reaching it again later raises a new one (risk:<code>:<colour>:<n>).
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.emergency.models import EarlyWarning
from taskforce.emergency.warnings import raise_warning, settle_warnings
from taskforce.errors import DomainError, NotFound
from taskforce.loop.models import Colour, Issue
from taskforce.org.models import Unit
from taskforce.org.service import unknown_unit
from taskforce.policy.schema import Classification, Policy
from taskforce.registers.forms import MilestoneForm, MilestoneResult, RiskForm, RiskResult
from taskforce.registers.models import CaseLesson, Milestone, Risk

WARNING_ORDER = ("yellow", "orange", "red")
RISK_SOURCE = "risk"  # the source of the warnings the register raises


def risk_colour(score: int, policy: Policy) -> str | None:
    """The highest warning whose threshold the score reaches (>=), or None."""
    reached = [c for c in WARNING_ORDER if score >= policy.risk.warning_thresholds.get(c, 10**9)]
    return reached[-1] if reached else None


def _rank(colour: str | None) -> int:
    return -1 if colour is None else WARNING_ORDER.index(colour)


def _on_the_matrix(form: RiskForm, size: int) -> None:
    """Probability and impact are rated on the configured matrix (SPEC §6: 5×5 by default;
    config risk.matrix_size), which the form cannot know when it is deployed."""
    for field in ("probability", "impact"):
        if getattr(form, field) > size:
            raise DomainError(
                f"{getattr(form, field)} is off the {size}×{size} risk matrix "
                "(config risk.matrix_size)",
                field=field,
                allowed=f"1 to {size}",
            )


def _apply(row, values: dict) -> dict:
    changes = {}
    for name, value in values.items():
        old = getattr(row, name)
        if old != value:
            changes[name] = {"from": _plain(old), "to": _plain(value)}
            setattr(row, name, value)
    return changes


def _higher(was: Classification | None, now: Classification) -> Classification:
    """An update's entry holds the old text beside the new ("changes": from, to): at the
    higher of the two classifications (a classification audit: a secret risk lowered to
    public recorded its secret title and plan at public)."""
    if was is None:
        return now
    return Classification.highest(was, now)


def _plain(value):
    return value.isoformat() if isinstance(value, dt.date) else value


def upsert_risk(session: Session, ctx: Context, form: RiskForm, *, actor: str) -> RiskResult:
    form = RiskForm.model_validate(form.model_dump())
    _on_the_matrix(form, ctx.policy.risk.matrix_size)
    unit = session.scalar(select(Unit).where(Unit.code == form.owner_unit))
    if unit is None:
        raise unknown_unit(session, form.owner_unit, "owner_unit")
    now = ctx.now()
    # Locked, and read as committed once the lock is ours: a second transaction raising the
    # same risk at once waits for the first and finds its crossing warned (it raised a second
    # warning for it, or failed on the first's dedup key). SQLite's BEGIN IMMEDIATE queues.
    risk = session.scalar(
        select(Risk)
        .where(Risk.code == form.code)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    created = risk is None
    if created:
        risk = Risk(code=form.code, reviewed_at=now)
        session.add(risk)
    was = risk.classification
    changes = _apply(
        risk,
        {
            "title": form.title,
            "category": form.category,
            "probability": form.probability,
            "impact": form.impact,
            "strategy": form.strategy,
            "owner_unit_id": unit.id,
            "plan": form.plan,
            "classification": form.classification,
        },
    )
    score = form.probability * form.impact
    colour = risk_colour(score, ctx.policy)
    if changes:
        risk.reviewed_at = now
        session.flush()
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="risk.created" if created else "risk.updated",
            subject_type="risk",
            subject_id=risk.code,
            classification=_higher(was, risk.classification),
            payload={"score": score, "changes": changes},
        )
    crossing = _warn_if_crossed(session, ctx, risk, score, actor)
    return RiskResult(
        code=risk.code,
        created=created,
        changed=bool(changes),
        score=score,
        colour=colour,
        warning_raised=crossing.raised,
        warnings_settled=crossing.settled,
    )


class _Crossing(NamedTuple):
    raised: str | None  # the colour of the warning raised, if any
    settled: list[int]  # the ids of the warnings settled (the score fell below them)


def _warn_if_crossed(
    session: Session, ctx: Context, risk: Risk, score: int, actor: str
) -> _Crossing:
    """Raise the warning of the highest threshold the score reaches, once per crossing
    (SPEC §6: a risk whose score crosses a threshold raises a warning of §5).

    A score fallen below a threshold settles the risk's warnings above its new colour (their
    cause is gone: they were escalated and reported late for ever) and lowers
    `warned_colour` to it, so the score reaching the threshold again later is a new crossing
    with a new warning (a risk lowered to 1×1 and raised to 5×5 again warned no more)."""
    colour = risk_colour(score, ctx.policy)
    if _rank(colour) < _rank(risk.warned_colour):
        settled = settle_warnings(
            session,
            ctx,
            "risk",
            [risk.code],
            reason=f"risk score fell to {risk.probability}×{risk.impact}={score}, "
            f"below the {WARNING_ORDER[_rank(colour) + 1]} threshold",
            actor=actor,
            colours=list(WARNING_ORDER[_rank(colour) + 1 :]),
            source=RISK_SOURCE,
        )
        risk.warned_colour = colour
        return _Crossing(None, settled)
    if colour is None or _rank(colour) == _rank(risk.warned_colour):
        return _Crossing(None, [])
    warning = raise_warning(
        session,
        ctx,
        colour=colour,
        source=RISK_SOURCE,
        subject_type="risk",
        subject_id=risk.code,
        title=f"{risk.code} {risk.title} ({risk.probability}×{risk.impact}={score})",
        dedup_key=_dedup_key(session, risk, colour),
        actor=actor,
        classification=risk.classification,
    )
    risk.warned_colour = colour
    return _Crossing(colour if warning is not None else None, [])


def _dedup_key(session: Session, risk: Risk, colour: str) -> str:
    """risk:<code>:<colour> for the risk's first warning of a colour; the later crossings'
    (each after the earlier warning was settled or handled) count on: …:2, …:3."""
    earlier = session.scalar(
        select(func.count(EarlyWarning.id)).where(
            EarlyWarning.subject_type == "risk",
            EarlyWarning.subject_id == risk.code,
            EarlyWarning.source == RISK_SOURCE,
            EarlyWarning.colour == colour,
        )
    )
    key = f"risk:{risk.code}:{colour}"
    return f"{key}:{earlier + 1}" if earlier else key


def sweep_risks(session: Session, ctx: Context, *, actor: str = "review") -> list[str]:
    """Raise the warning of every risk whose score reached a threshold above what it has raised,
    and settle the warnings of every risk whose score fell below theirs.

    The semi-annual risk audit runs this over the whole register (rows loaded
    into the register without the form included); each crossing still warns once.
    """
    lowest = min(ctx.policy.risk.warning_thresholds.values())
    rows = session.scalars(
        select(Risk)
        .where((Risk.probability * Risk.impact >= lowest) | Risk.warned_colour.is_not(None))
        .order_by(Risk.code)
        .with_for_update()  # as upsert_risk: one transaction at a time decides a crossing
        .execution_options(populate_existing=True)
    ).all()
    raised = []
    for risk in rows:
        score = risk.probability * risk.impact
        if (colour := _warn_if_crossed(session, ctx, risk, score, actor).raised) is not None:
            raised.append(f"{risk.code}:{colour}")
    return raised


def milestone_colour(
    *, achieved: bool, due_date: dt.date, today: dt.date, policy: Policy
) -> Colour:
    """Achieved: green. Otherwise red once overdue, yellow within the warning window."""
    if achieved:
        return Colour.green
    if due_date < today:
        return Colour.red
    if (due_date - today).days <= policy.progress.yellow_due_within_days:
        return Colour.yellow
    return Colour.green


def upsert_milestone(
    session: Session, ctx: Context, form: MilestoneForm, *, actor: str
) -> MilestoneResult:
    form = MilestoneForm.model_validate(form.model_dump())
    issue_id = None
    if form.issue:
        issue_id = session.scalar(select(Issue.id).where(Issue.number == form.issue))
        if issue_id is None:
            raise NotFound(
                f"no issue {form.issue}", field="issue", allowed="an existing issue number"
            )
    if form.achieved_on is not None and form.achieved_on > ctx.today():
        # An attainment not yet reached would count in this period's milestone KPI.
        raise DomainError(
            f"achieved on {form.achieved_on}, after today ({ctx.today()})",
            field="achieved_on",
            allowed="today or a past day; record the milestone when it is reached",
        )
    now = ctx.now()
    ms = session.scalar(select(Milestone).where(Milestone.code == form.code))
    created = ms is None
    if created:
        ms = Milestone(code=form.code)
        session.add(ms)
    was = ms.classification
    achieved_on = form.achieved_on or ((ms.achieved_on or ctx.today()) if form.achieved else None)
    changes = _apply(
        ms,
        {
            "title": form.title,
            "kind": form.kind,
            "due_date": form.due_date,
            "target": form.target,
            "achieved": form.achieved,
            "achieved_on": achieved_on,
            "issue_id": issue_id,
            "classification": form.classification,
        },
    )
    if changes:
        session.flush()
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="milestone.created" if created else "milestone.updated",
            subject_type="milestone",
            subject_id=ms.code,
            classification=_higher(was, ms.classification),
            payload={"changes": changes},
        )
    colour = milestone_colour(
        achieved=ms.achieved, due_date=ms.due_date, today=ctx.today(), policy=ctx.policy
    )
    return MilestoneResult(
        code=ms.code, created=created, changed=bool(changes), colour=colour.value
    )


# --- the case library (案例库) ----------------------------------------------------


def record_lesson(
    session: Session,
    ctx: Context,
    *,
    source: str,
    title: str,
    lesson: str,
    classification: Classification = Classification.internal,
    issue_id: int | None = None,
) -> CaseLesson:
    """One lesson per (source, title): a re-run updates its text, never adds a second."""
    row = session.scalar(
        select(CaseLesson).where(CaseLesson.source == source, CaseLesson.title == title)
    )
    if row is None:
        row = CaseLesson(source=source, title=title, created_at=ctx.now())
        session.add(row)
    row.lesson, row.classification, row.issue_id = lesson, classification, issue_id
    session.flush()
    return row


def prune_lessons(session: Session, *, source: str, keep_titles: set[str]) -> int:
    """Drop a source's lessons that a re-run no longer draws (the data changed since)."""
    stmt = delete(CaseLesson).where(CaseLesson.source == source)
    if keep_titles:
        stmt = stmt.where(CaseLesson.title.not_in(keep_titles))
    return session.execute(stmt).rowcount or 0
