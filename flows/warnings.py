"""Warnings by hand (预警, SPEC §5): operators raise and handle them from UI forms.

The sweep (`dispatch-pending-emergencies`) escalates the ones whose deadline
passes; the loop, the dispatch sweep and the risk register raise theirs in code
through taskforce.emergency.warnings.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from flows.parameters import form_of
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import warnings
from taskforce.emergency.models import EarlyWarning, WarningColour, WarningStatus
from taskforce.errors import DomainError, NotFound
from taskforce.loop.models import Issue, TaskNode
from taskforce.org.service import active_member
from taskforce.policy.schema import Classification
from taskforce.registers.models import Risk
from taskforce.reports.audience import PREFECT_UI_CLEARANCE
from taskforce.text import OneLine, Text


class WarningSubject(StrEnum):
    issue = "issue"
    task = "task"
    risk = "risk"
    other = "other"


def _checked_subject(
    session, kind: WarningSubject, subject_id: str
) -> tuple[str, Classification | None]:
    """A warning about a record names one that exists (a mistyped issue number raised a
    warning about nothing, announced all the same). Returns the id as the system stores it
    ("0012" is item 12), so the warning is settled when its subject completes, and the
    record's classification (an item's is its issue's)."""
    if kind is WarningSubject.issue:
        found = session.scalar(select(Issue.classification).where(Issue.number == subject_id))
    elif kind is WarningSubject.task:
        found = subject_id.isdigit() and session.scalar(
            select(Issue.classification)
            .join(TaskNode, TaskNode.issue_id == Issue.id)
            .where(TaskNode.id == int(subject_id))
        )
        subject_id = str(int(subject_id)) if found else subject_id
    elif kind is WarningSubject.risk:
        found = session.scalar(select(Risk.classification).where(Risk.code == subject_id))
    else:
        return subject_id, None
    if not found:
        raise NotFound(
            f"no {kind.value} {subject_id!r}",
            field="subject_id",
            allowed=f"the {kind.value}'s number or code as the system shows it, or "
            "subject_type 'other' for a matter with no record",
        )
    return subject_id, Classification(found)


def _at_least_the_subjects(form: RaiseWarningForm, subject: Classification | None) -> None:
    """A warning's title speaks of its subject: below the subject's classification it would
    reach readers not cleared for the subject (a classification audit: an internal warning
    about a secret issue was announced at internal)."""
    level = Classification(form.classification)
    if subject is not None and not subject.readable_by(level):
        raise DomainError(
            f"{form.subject_type.value} {form.subject_id} is {subject.value}; a warning "
            f"about it may not be {level.value}",
            field="classification",
            allowed=f"{subject.value} or higher",
        )


class RaiseWarningForm(BaseModel):
    """发布预警 — yellow 关注级 (executive, 48 h), orange 警示级 (leadership, 72 h), red 危急级 (command, 24 h)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    colour: WarningColour = Field(..., title="Colour 预警级别")
    title: OneLine = Field(..., min_length=2, max_length=300, title="Title 标题")
    subject_type: WarningSubject = Field(
        WarningSubject.issue,
        title="Concerns 对象类型",
        description="issue 问题 (TF-…), task 行动项 (its id), risk 风险 (its code), or other "
        "(a matter with no record here).",
    )
    subject_id: str = Field(..., min_length=1, max_length=64, title="Subject id 对象编号")
    classification: Classification = Field(Classification.internal, title="Classification 密级")
    dedup_key: str | None = Field(
        None,
        max_length=200,
        title="Dedup key 去重键",
        description="One warning per cause: repeating a key raises nothing new. Empty: a new warning.",
    )
    actor: str = Field(..., min_length=1, max_length=100, title="Raised by 发布人")


class HandleWarningForm(BaseModel):
    """处置预警 — the handling group has acted."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    warning_id: int = Field(..., ge=1, title="Warning id 预警编号")
    actor: str = Field(
        ...,
        min_length=1,
        max_length=100,
        title="Handled by 处置人",
        description="Your member code (config/org.yaml), e.g. E1: the trail names you.",
    )
    note: Text = Field("", max_length=2_000, title="Note 处置说明")


def _same_cause_or_refused(session, form: RaiseWarningForm, subject_id: str) -> None:
    """An operator's dedup key names one cause: raising the same warning again is a no-op,
    but a different warning under a key already used would vanish without a word."""
    earlier = session.scalars(
        select(EarlyWarning).where(EarlyWarning.dedup_key == form.dedup_key)
    ).one_or_none()
    if earlier is None:
        return
    same = (
        earlier.colour == form.colour
        and earlier.subject_type == form.subject_type.value
        and earlier.subject_id == subject_id
        and earlier.title == form.title
    )
    if not same:
        # The refusal is a log line in the Prefect UI (internal clearance): a secret
        # warning's title stays out of it.
        title = earlier.title if earlier.classification.readable_by(PREFECT_UI_CLEARANCE) else ""
        raise DomainError(
            f"{form.dedup_key!r} was already used for warning {earlier.id} "
            f"({earlier.colour.value}, {earlier.subject_type} {earlier.subject_id}"
            f"{': ' + title if title else ''})",
            field="dedup_key",
            allowed="a key not used before, or none (each warning then gets its own)",
        )


@task(name="raise-warning", cache_policy=NO_CACHE)
def _raise(form: RaiseWarningForm) -> int | None:
    with unit_of_work() as session:
        # The trail names who raised it: a person the office knows.
        active_member(session, form.actor, field="actor")
        subject_id, subject_level = _checked_subject(session, form.subject_type, form.subject_id)
        _at_least_the_subjects(form, subject_level)
        if form.dedup_key:
            _same_cause_or_refused(session, form, subject_id)
        warning = warnings.raise_warning(
            session,
            Context.default(),
            colour=form.colour,
            source="manual",
            subject_type=form.subject_type.value,
            subject_id=subject_id,
            title=form.title,
            dedup_key=form.dedup_key or f"manual:{uuid.uuid4()}",
            actor=form.actor,
            classification=form.classification,
        )
        return warning.id if warning else None


@task(name="handle-warning", cache_policy=NO_CACHE)
def _handle(form: HandleWarningForm) -> tuple[str, bool]:
    """The warning's status, and whether this form handled it (not someone before)."""
    with unit_of_work() as session:
        before = session.scalar(
            select(EarlyWarning.status).where(EarlyWarning.id == form.warning_id)
        )
        # Handling stops the escalation: handle_warning checks who may (a member of a group
        # that handles the colour).
        warning = warnings.handle_warning(
            session, Context.default(), form.warning_id, actor=form.actor, note=form.note
        )
        return warning.status.value, before != WarningStatus.handled


@flow(name="raise-warning")
def raise_warning(form: RaiseWarningForm = form_of(RaiseWarningForm)) -> dict:
    """Raise a warning by hand; its deadline follows its colour (config warnings.*)."""
    warning_id = _raise(form)
    # What happened, in the run's log (a re-trial: it ended with Prefect's lines alone).
    # Ids and colours only: the title may be classified.
    get_run_logger().info(
        f"warning {warning_id} raised ({form.colour.value}) on {form.subject_type.value} "
        f"{form.subject_id} by {form.actor}"
        if warning_id is not None
        else f"no new warning: one of the same cause is still open on "
        f"{form.subject_type.value} {form.subject_id}"
    )
    return {"warning_id": warning_id, "raised": warning_id is not None}


@flow(name="handle-warning")
def handle_warning(form: HandleWarningForm = form_of(HandleWarningForm)) -> str:
    """Mark a warning handled: it will not be escalated."""
    status, handled_now = _handle(form)
    if handled_now:
        get_run_logger().info(f"warning {form.warning_id} is now {status} (by {form.actor})")
    else:  # an operator trial: this said "is now handled (by E2)" where E3 had handled it
        get_run_logger().info(
            f"warning {form.warning_id} was handled already; nothing changed (the trail "
            "names who handled it)"
        )
    return status
