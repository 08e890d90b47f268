"""The drill report (季度演练, SPEC §3): how fast the real path paged and who answered.

Read from the emergency's own events, so the report describes what happened,
not what the drill flow believes it did.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce.context import Context
from taskforce.emergency.models import EmergencyEvent
from taskforce.emergency.queries import get_emergency


@dataclass(frozen=True)
class DeadlineCheck:
    name: str
    due_at: dt.datetime
    met: bool | None  # None: not yet decided (still open and not due)


@dataclass(frozen=True)
class DrillReport:
    emergency_id: str
    level: str
    is_drill: bool
    path: str
    opened_at: dt.datetime
    first_page_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    pages: int
    escalations: list[str]
    acknowledge_within_minutes: int
    deadlines: list[DeadlineCheck]

    @property
    def seconds_to_first_page(self) -> float | None:
        return _seconds(self.opened_at, self.first_page_at)

    @property
    def seconds_to_acknowledge(self) -> float | None:
        return _seconds(self.opened_at, self.acknowledged_at)

    @property
    def acknowledged_in_time(self) -> bool | None:
        if self.acknowledged_at is None or self.first_page_at is None:
            return None
        limit = dt.timedelta(minutes=self.acknowledge_within_minutes)
        return self.acknowledged_at - self.first_page_at <= limit


def _seconds(start: dt.datetime, end: dt.datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds(), 3)


def drill_report(session: Session, ctx: Context, public_id: str, *, path: str) -> DrillReport:
    emergency = get_emergency(session, public_id)
    rows = session.execute(
        select(EmergencyEvent.kind, EmergencyEvent.at, EmergencyEvent.detail)
        .where(EmergencyEvent.emergency_id == emergency.id)
        .order_by(EmergencyEvent.at, EmergencyEvent.id)
    ).all()
    pages = [r for r in rows if r.kind == "page"]
    escalations = [
        f"{r.detail.get('action')}: {r.detail.get('from') or '-'} → {r.detail.get('to')}"
        for r in rows
        if r.kind == "escalate"
    ]
    now = ctx.now()
    met = {
        r.detail.get("name"): bool(r.detail.get("in_time"))
        for r in rows
        if r.kind == "deadline_met"
    }
    checks = []
    for name, due in sorted(emergency.deadlines.items()):
        due_at = dt.datetime.fromisoformat(due)
        verdict = met.get(name, False if now > due_at else None)
        checks.append(DeadlineCheck(name, due_at, verdict))
    return DrillReport(
        emergency_id=emergency.public_id,
        level=emergency.level.value,
        is_drill=emergency.is_drill,
        path=path,
        opened_at=emergency.opened_at,
        first_page_at=pages[0].at if pages else None,
        acknowledged_at=emergency.acknowledged_at,
        pages=len(pages),
        escalations=escalations,
        acknowledge_within_minutes=ctx.policy.emergency.acknowledge_within_minutes,
        deadlines=checks,
    )


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} s"


def _verdict(value: bool | None) -> str:
    return {True: "✅ met", False: "❌ missed", None: "⏳ open"}[value]


def render_markdown(report: DrillReport) -> str:
    lines = [
        f"# 应急演练报告 Emergency drill report — level {report.level}",
        "",
        f"- Emergency: `{report.emergency_id}` (drill: {'yes' if report.is_drill else 'NO'})",
        f"- Path: {report.path}",
        f"- Opened: {report.opened_at.isoformat()}",
        "",
        "| measure | value | against |",
        "|---|---|---|",
        f"| time to first page | {_fmt(report.seconds_to_first_page)} | — |",
        f"| time to acknowledgement | {_fmt(report.seconds_to_acknowledge)} | "
        f"{report.acknowledge_within_minutes} min after the page: "
        f"{_verdict(report.acknowledged_in_time)} |",
        f"| pages sent | {report.pages} | — |",
        f"| escalations taken | {len(report.escalations)} | — |",
    ]
    for check in report.deadlines:
        lines.append(
            f"| deadline {check.name} | due {check.due_at.isoformat()} | {_verdict(check.met)} |"
        )
    if report.escalations:
        lines += ["", "## Escalations", *[f"- {e}" for e in report.escalations]]
    return "\n".join(lines) + "\n"
