"""The drill report (季度演练, SPEC §3): how fast the real path paged and who answered.

Read from the emergency's own events, so the report describes what happened,
not what the drill flow believes it did.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce.clock import local_minute
from taskforce.context import Context
from taskforce.emergency.models import EmergencyEvent
from taskforce.emergency.queries import get_emergency
from taskforce.reports.i18n import translator, zone_words


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
    members_paged: int = 0  # people reached by the pages (a page calls a group's on-call)
    timezone: str = "UTC"  # how the report shows its times (policy.timezone)
    # Who acknowledged: a member code, or "gateway:<source>" for a monitoring system's own
    # acknowledgement, which says nothing of the people the drill tests.
    acknowledged_by: str | None = None

    @property
    def acknowledged_by_a_member(self) -> bool:
        return self.acknowledged_by is not None and ":" not in self.acknowledged_by

    @property
    def seconds_to_first_page(self) -> float | None:
        return _seconds(self.opened_at, self.first_page_at)

    @property
    def seconds_to_acknowledge(self) -> float | None:
        return _seconds(self.opened_at, self.acknowledged_at)

    @property
    def acknowledged_in_time(self) -> bool | None:
        """None when not acknowledged yet, or not by a member (a system's acknowledgement
        is no answer to the page)."""
        if self.acknowledged_at is None or self.first_page_at is None:
            return None
        if not self.acknowledged_by_a_member:
            return None
        limit = dt.timedelta(minutes=self.acknowledge_within_minutes)
        return self.acknowledged_at - self.first_page_at <= limit


def _seconds(start: dt.datetime, end: dt.datetime | None) -> float | None:
    return None if end is None else round((end - start).total_seconds(), 3)


def drill_report(session: Session, ctx: Context, public_id: str, *, path: str) -> DrillReport:
    emergency = get_emergency(session, public_id)
    rows = session.execute(
        select(EmergencyEvent.kind, EmergencyEvent.at, EmergencyEvent.actor, EmergencyEvent.detail)
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
        members_paged=len({m for r in pages for m in (r.detail or {}).get("members", [])}),
        timezone=ctx.policy.timezone,
        acknowledged_by=next((r.actor for r in rows if r.kind == "acknowledge"), None),
    )


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} 秒 s"


def _verdict(value: bool | None) -> str:
    # None: the report is written before the deadline falls due (a drill ends within minutes).
    return {True: "✅ 达标 met", False: "❌ 超时 missed", None: "⏳ 未到期 not yet due"}[value]


def _ack_verdict(report: DrillReport) -> str:
    """Met or missed, and by whom: a monitoring system's acknowledgement meets nothing."""
    if report.acknowledged_at is None or report.acknowledged_by_a_member:
        verdict = _verdict(report.acknowledged_in_time)
        return f"{verdict}（{report.acknowledged_by}）" if report.acknowledged_by else verdict
    return (
        f"⚠️ 由监控系统确认（{report.acknowledged_by}），无人员确认 "
        "acknowledged by a system, not by a member"
    )


def render_markdown(report: DrillReport) -> str:
    """The drill report as a leadership meeting reads it: Chinese first, local times to the
    minute, the deadlines in words."""
    zh, en = translator("zh-CN"), translator("en")
    tz = report.timezone
    lines = [
        f"# 应急演练报告 Emergency drill report — {report.level}级 level {report.level}",
        "",
        f"- 事件编号 Emergency: `{report.emergency_id}`"
        + ("（演练 drill）" if report.is_drill else "（**非演练 NOT A DRILL**）"),
        f"- 路径 Path: {report.path}",
        f"- 开始 Opened: {local_minute(report.opened_at, tz)}（{zone_words(zh, tz)} "
        f"{zone_words(en, tz)}）",
        "",
        "| 指标 measure | 实际 value | 要求 against |",
        "|---|---|---|",
        f"| 首次呼叫用时 time to first page | {_fmt(report.seconds_to_first_page)} | — |",
        f"| 确认用时 time to acknowledgement | {_fmt(report.seconds_to_acknowledge)} | "
        f"呼叫后 {report.acknowledge_within_minutes} 分钟内 within "
        f"{report.acknowledge_within_minutes} min of the page: "
        f"{_ack_verdict(report)} |",
        f"| 呼叫 pages sent | {report.pages} 次，{report.members_paged} 人 "
        f"({report.members_paged} people) | — |",
        f"| 升级 escalations taken | {len(report.escalations)} | — |",
    ]
    for check in report.deadlines:
        name = f"{zh(f'emergency_deadline.{check.name}')} {en(f'emergency_deadline.{check.name}')}"
        lines.append(
            f"| 时限 {name} | {local_minute(check.due_at, tz)} 前 by | {_verdict(check.met)} |"
        )
    if report.escalations:
        lines += ["", "## 升级记录 Escalations", *[f"- {e}" for e in report.escalations]]
    return "\n".join(lines) + "\n"
