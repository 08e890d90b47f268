"""Step 2, 协调会商, and the leadership path for major matters (议题预审-专家论证-集体表决)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.authority import Approver, is_major_matter, route_amount, tally_vote
from taskforce.calendar import Deadline
from taskforce.context import Context
from taskforce.errors import DomainError, IllegalTransition
from taskforce.idempotency import fingerprint, previous_result, remember
from taskforce.loop.forms import CoordinateForm, LeadershipVoteForm, StepResult
from taskforce.loop.models import (
    PENDING_DECISION,
    Ballot,
    Decision,
    DecisionStatus,
    ExpertOpinion,
    Issue,
    IssueUnit,
    Meeting,
    Stage,
    Vote,
)
from taskforce.loop.plan import plan_due
from taskforce.loop.states import load_issue, move, require_step
from taskforce.money import format_yuan, to_fen
from taskforce.org.models import Group, Member, Unit
from taskforce.org.service import active_member, unknown_unit
from taskforce.org.service import director as executive_director
from taskforce.policy.schema import GroupKind


def _open_decision(session: Session, issue: Issue) -> Decision | None:
    return session.scalars(
        select(Decision).where(
            Decision.issue_id == issue.id,
            Decision.round == issue.round,
            Decision.status.in_(PENDING_DECISION),
        )
    ).one_or_none()


def _deadline_passed(issue: Issue, today) -> bool:
    return issue.deadline is not None and issue.deadline < today


def _withdraw(session: Session, ctx: Context, issue: Issue, decision: Decision, *, actor: str):
    """A major matter whose deadline passed before the vote: a new coordination replaces it
    (the next meeting is a new round, as after a failed vote)."""
    now = ctx.now()
    reason = f"deadline {issue.deadline} passed before the vote; coordinated again"
    decision.status, decision.decided_at = DecisionStatus.rejected, now
    decision.outcome_reasons = reason
    issue.round += 1
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="decision.withdrawn",
        subject_type="issue",
        subject_id=issue.number,
        classification=issue.classification,
        notify="matter_withdrawn",
        payload={"decision_id": decision.id, "reason": reason},
        # The leadership and the expert pool were asked to vote and review: they hear that
        # the matter is withdrawn, whatever the new coordination decides.
        context={"issue": issue.number, "title": issue.title, "deadline": str(issue.deadline)},
    )


def _working_group_of(session: Session, unit_ids: list[int]) -> str | None:
    """The working group most of the responsible units' members belong to, for routing."""
    row = session.execute(
        select(Group.code)
        .join(Member, Member.group_id == Group.id)
        .where(Group.kind == GroupKind.working_group, Member.unit_id.in_(unit_ids))
        .group_by(Group.code)
        .order_by(Group.code)
        .limit(1)
    ).scalar_one_or_none()
    return row


def _flagging_director(session: Session, form: CoordinateForm) -> str | None:
    """The member code of the executive director who flagged the matter as major, or None
    when it is not flagged. SPEC §2.2: only the executive director's flag makes a matter
    within the executive's authority major (before, any operator's tick did)."""
    if not form.flagged_major:
        if form.flagged_by:
            raise DomainError(
                "given, but the matter is not flagged as major",
                field="flagged_by",
                allowed="empty, unless 'flagged_major' is set",
            )
        return None
    chief = executive_director(session)
    allowed = f"the executive director's member code: {chief.code} {chief.name}"
    if not form.flagged_by:
        raise DomainError(
            "a matter is flagged as major by the executive director: whose flag is it?",
            field="flagged_by",
            allowed=allowed,
        )
    member = active_member(session, form.flagged_by, field="flagged_by")
    if not member.director:
        raise DomainError(
            f"{member.code} {member.name} is not the executive director",
            field="flagged_by",
            allowed=allowed,
        )
    return member.code


def _years_after(day, years: int):
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February, and the year `years` later is not a leap year
        return day.replace(year=day.year + years, day=28)


def start_planning(session: Session, ctx: Context, issue: Issue, decided_on) -> Deadline:
    deadline = plan_due(ctx, decided_on, issue.deadline)
    move(issue, Stage.planning)
    issue.stage_entered_at = ctx.now()
    issue.stage_due_at = ctx.end_of(deadline.due)
    return deadline


def coordinate(
    session: Session,
    ctx: Context,
    issue_number: str,
    form: CoordinateForm,
    *,
    actor: str,
    key: str | None = None,
) -> StepResult:
    form = CoordinateForm.model_validate(form.model_dump())
    seen = fingerprint(issue_number, form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return StepResult.model_validate(done)
    issue = load_issue(session, issue_number)
    require_step(issue, "coordinate")
    today = ctx.today()
    pending = _open_decision(session, issue)
    if pending is not None and not _deadline_passed(issue, today):
        raise IllegalTransition(
            f"{issue.number} awaits the leadership group's vote; record the vote first",
            field="issue_number",
        )
    if pending is not None:
        _withdraw(session, ctx, issue, pending, actor=actor)
    horizon = ctx.policy.loop.deadline_horizon_years
    latest = _years_after(today, horizon)
    if form.deadline <= today or form.deadline > latest:
        # A date past the horizon is a typing slip (9999-12-31 was taken, and the plan's
        # colour dates then overflowed with a traceback: an operator trial).
        raise DomainError(
            f"{form.deadline} is not after today ({today})"
            if form.deadline <= today
            else f"{form.deadline} is more than {horizon} years away",
            field="deadline",
            allowed=f"a date after today, up to {latest} (loop.deadline_horizon_years)",
        )
    codes = {*form.participants, *(r.unit for r in form.responsible)}
    units = {u.code: u for u in session.scalars(select(Unit).where(Unit.code.in_(codes)))}
    for field, wanted in (
        ("participants", form.participants),
        ("responsible", [r.unit for r in form.responsible]),
    ):
        for code in wanted:
            if code not in units:
                raise unknown_unit(session, code, field)
    flagged_by = _flagging_director(session, form)
    now = ctx.now()
    if issue.stage == Stage.reported:
        move(issue, Stage.coordinating)
        issue.first_response_at = issue.first_response_at or now
    issue.deadline = form.deadline
    meeting = Meeting(
        issue_id=issue.id,
        round=issue.round,
        kind="coordination",
        held_at=now,
        participants=sorted(form.participants),
        solution=form.solution,
        deadline=form.deadline,
        budget_fen=to_fen(form.budget),
        classification=issue.classification,
    )
    session.add(meeting)
    for r in form.responsible:
        session.add(
            IssueUnit(
                issue_id=issue.id,
                unit_id=units[r.unit].id,
                round=issue.round,
                responsible=True,
                share_percent=r.share_percent,
            )
        )
    regions = {units[r.unit].region for r in form.responsible}
    major, reasons = is_major_matter(
        to_fen(form.budget), regions, ctx.policy.authority, flagged=form.flagged_major
    )
    session.flush()
    decision = Decision(
        issue_id=issue.id,
        meeting_id=meeting.id,
        round=issue.round,
        major=major,
        major_reasons=reasons,
        opened_at=now,
        summary=form.solution,
        classification=issue.classification,
        status=DecisionStatus.pre_review if major else DecisionStatus.decided,
        decided_at=None if major else now,
    )
    session.add(decision)
    issue.major = issue.major or major
    session.flush()
    wg = _working_group_of(session, [units[r.unit].id for r in form.responsible])
    common = {"issue": issue.number, "title": issue.title, "working_group": wg}
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="meeting.recorded",
        subject_type="issue",
        subject_id=issue.number,
        classification=issue.classification,
        notify="meeting_recorded",
        payload={
            "meeting_id": meeting.id,
            "round": issue.round,
            "participants": sorted(form.participants),
            "responsible": [r.model_dump() for r in form.responsible],
            "solution": form.solution,
            "deadline": form.deadline,
            "budget": str(form.budget),
            "flagged_major_by": flagged_by,
        },
        context=common,
    )
    if major:
        # Why it is a major matter, in values each locale's template words itself.
        budget_fen = to_fen(form.budget)
        why_major = {
            "budget": format_yuan(budget_fen, ctx.policy.locale),
            "over_authority": route_amount(budget_fen, ctx.policy.authority).group
            == Approver.leadership,
            "regions": sorted(regions) if len(regions) > 1 else [],
            "flagged": form.flagged_major,
        }
        # 议题预审-专家论证-集体表决 (SPEC §2.2): the expert pool is asked for its opinions,
        # which the vote form records, and the leadership group for its vote.
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="decision.expert_review_requested",
            subject_type="issue",
            subject_id=issue.number,
            classification=issue.classification,
            notify="expert_review_requested",
            payload={"decision_id": decision.id, "reasons": reasons},
            context={**common, "reasons": reasons, **why_major},
        )
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="decision.referred_to_leadership",
            subject_type="issue",
            subject_id=issue.number,
            classification=issue.classification,
            notify="vote_requested",
            payload={"decision_id": decision.id, "reasons": reasons},
            context={**common, "reasons": reasons, **why_major, **_votes_needed(session, ctx)},
        )
        detail = {"major": True, "reasons": reasons, "decision_id": decision.id}
    else:
        deadline = start_planning(session, ctx, issue, today)
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="decision.recorded",
            subject_type="issue",
            subject_id=issue.number,
            classification=issue.classification,
            notify="decision_recorded",
            calendar_fallback=deadline.fallback_used,
            payload={"decision_id": decision.id, "by": "executive", "plan_due": deadline.due},
            # What was decided, not only the issue's title again: the solution, the
            # deadline and when the plan is due.
            context={
                **common,
                "decision": form.solution,
                "deadline": form.deadline.isoformat(),
                "plan_due": deadline.due.isoformat(),
            },
        )
        detail = {"major": False, "plan_due": deadline.due.isoformat()}
    result = StepResult(
        issue_number=issue.number,
        stage=issue.stage.value,
        classification=issue.classification,
        detail=detail,
    )
    remember(session, key, "coordinate", result.model_dump(), now, seen=seen)
    return result


def _votes_needed(session: Session, ctx: Context) -> dict[str, int | str]:
    """What passing takes, for the vote request: yes votes of all active leadership members
    at the configured fraction (config vote), in integers as the tally counts them."""
    members = session.scalar(
        select(func.count(Member.id))
        .join(Group, Member.group_id == Group.id)
        .where(Group.kind == GroupKind.leadership, Member.active.is_(True))
    )
    vote = ctx.policy.vote
    if not members:
        return {}
    return {
        "yes_needed": tally_vote(0, 0, 0, members, vote).required,
        "members": members,
        "fraction": f"{vote.pass_numerator}/{vote.pass_denominator}",
    }


def leadership_vote(
    session: Session,
    ctx: Context,
    issue_number: str,
    form: LeadershipVoteForm,
    *,
    actor: str,
    key: str | None = None,
) -> StepResult:
    form = LeadershipVoteForm.model_validate(form.model_dump())
    seen = fingerprint(issue_number, form)
    if (done := previous_result(session, key, seen=seen)) is not None:
        return StepResult.model_validate(done)
    issue = load_issue(session, issue_number)
    require_step(issue, "leadership_vote")
    decision = _open_decision(session, issue)
    if decision is None:
        raise IllegalTransition(
            f"{issue.number} has no major matter awaiting the leadership group",
            field="issue_number",
        )
    if form.pre_review_passed and _deadline_passed(issue, ctx.today()):
        # Every action item must be due by the deadline and none in the past: a vote passed
        # now would leave the issue in planning with no plan it could file.
        raise DomainError(
            f"the deadline {issue.deadline} set at coordination has passed: no plan could meet it",
            field="issue_number",
            allowed="hold the coordination again with a new deadline (coordinate-issue); "
            "it withdraws this pending matter, and the vote is taken on the new one",
        )
    members = {
        m.code: m
        for m in session.scalars(
            select(Member).join(Group, Member.group_id == Group.id).where(Member.active.is_(True))
        )
    }
    leaders = {c: m for c, m in members.items() if m.group.kind == GroupKind.leadership}
    for code in form.ballots:
        if code not in leaders:
            raise DomainError(
                f"{code!r} is not a member of the leadership group",
                field="ballots",
                allowed=", ".join(sorted(leaders)),
            )
    experts = sorted(c for c, m in members.items() if m.group.kind == GroupKind.expert)
    for op in form.expert_opinions:
        if op.expert not in experts:
            raise DomainError(
                f"{op.expert!r} is not in the expert pool",
                field="expert_opinions",
                allowed=", ".join(experts) or "none: config/org.yaml has no expert-group member",
            )
    now = ctx.now()
    common = {"issue": issue.number, "title": issue.title}
    if not form.pre_review_passed:
        decision.status, decision.decided_at = DecisionStatus.rejected, now
        decision.outcome_reasons = form.pre_review_note or "agenda pre-review did not pass"
        issue.round += 1  # back to coordination: the next meeting is a new round
        events.record(
            session,
            ctx.policy,
            at=now,
            actor=actor,
            action="decision.pre_review_failed",
            subject_type="issue",
            subject_id=issue.number,
            classification=issue.classification,
            notify="vote_closed",
            payload={"decision_id": decision.id, "note": form.pre_review_note},
            context={**common, "passed": False, "reasons": decision.outcome_reasons},
        )
        result = StepResult(
            issue_number=issue.number,
            stage=issue.stage.value,
            classification=issue.classification,
            detail={"passed": False, "reason": decision.outcome_reasons},
        )
        remember(session, key, "leadership_vote", result.model_dump(), now, seen=seen)
        return result
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="decision.pre_review_passed",
        subject_type="issue",
        subject_id=issue.number,
        classification=issue.classification,
        payload={"decision_id": decision.id, "note": form.pre_review_note},
    )
    for op in form.expert_opinions:
        session.add(
            ExpertOpinion(
                decision_id=decision.id,
                member_id=members[op.expert].id,
                supports=op.supports,
                opinion=op.opinion,
                at=now,
            )
        )
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="decision.expert_review",
        subject_type="issue",
        subject_id=issue.number,
        classification=issue.classification,
        payload={
            "decision_id": decision.id,
            "opinions": [o.model_dump() for o in form.expert_opinions],
        },
    )
    for code, ballot in form.ballots.items():
        session.add(
            Vote(decision_id=decision.id, member_id=leaders[code].id, ballot=ballot, at=now)
        )
    counts = {b: sum(1 for v in form.ballots.values() if v == b) for b in Ballot}
    tally = tally_vote(
        counts[Ballot.yes], counts[Ballot.no], counts[Ballot.abstain], len(leaders), ctx.policy.vote
    )
    decision.decided_at = now
    detail = {
        "passed": tally.passed,
        "yes": tally.yes,
        "no": tally.no,
        "abstain": tally.abstain,
        "absent": tally.absent,
        "required": tally.required,
        "members": tally.members,
    }
    if tally.passed:
        decision.status = DecisionStatus.passed
        deadline = start_planning(session, ctx, issue, ctx.today())
        detail["plan_due"] = deadline.due.isoformat()
        fallback = deadline.fallback_used
    else:
        decision.status = DecisionStatus.rejected
        decision.outcome_reasons = (
            f"vote failed: {tally.yes} yes of {tally.members} members, {tally.required} required"
        )
        detail["reason"] = decision.outcome_reasons
        issue.round += 1  # back to coordination: the next meeting is a new round
        fallback = False
    session.flush()
    events.record(
        session,
        ctx.policy,
        at=now,
        actor=actor,
        action="decision.vote_closed",
        subject_type="issue",
        subject_id=issue.number,
        classification=issue.classification,
        notify="vote_closed",
        calendar_fallback=fallback,
        payload={
            "decision_id": decision.id,
            "ballots": dict(sorted(form.ballots.items())),
            **detail,
        },
        context={**common, **detail},
    )
    result = StepResult(
        issue_number=issue.number,
        stage=issue.stage.value,
        classification=issue.classification,
        detail=detail,
    )
    remember(session, key, "leadership_vote", result.model_dump(), now, seen=seen)
    return result
