"""A PDCA review (SPEC §3): Plan (targets from config), Do and Check (KPIs against targets
and the previous period), Act (improvement actions opened as issues of the closed loop,
lessons added to the case library), then the report files and the stored Review row.

Re-running a period replaces its files and its Review row and creates nothing twice:
improvement issues carry the idempotency key review:<kind>:<period>:<kpi>, lessons are
one per (source, title), the report files are overwritten in place.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.errors import DomainError
from taskforce.kpi.compute import BY_CODE, KpiSet, compare, compute_kpis
from taskforce.kpi.frames import FRAME_NAMES, Frames, read_frames
from taskforce.loop.duplicates import OpenTitles
from taskforce.loop.forms import ReportIssueForm
from taskforce.loop.models import Issue, Stage, TaskNode
from taskforce.loop.report import report_issue
from taskforce.money import format_yuan
from taskforce.org.models import Group, Unit
from taskforce.org.names import owner_names
from taskforce.org.service import director
from taskforce.policy.loader import PROJECT_ROOT
from taskforce.policy.schema import Classification, GroupKind
from taskforce.process import collector_paused
from taskforce.registers.models import Review
from taskforce.registers.service import prune_lessons, record_lesson, sweep_risks
from taskforce.reports import render_report, translator
from taskforce.reports.folders import writable_folder
from taskforce.reports.i18n import LOCALES
from taskforce.reports.render import fmt_kpi
from taskforce.reports.workbook import write_workbooks
from taskforce.reviews import charts, content
from taskforce.reviews import ledgers as ledgers_module
from taskforce.reviews.key_points import attention_counts, key_points, open_matters
from taskforce.reviews.periods import (
    Period,
    ReviewKind,
    last_complete_period,
    parse_period,
    period_containing,
)

Progress = Callable[[float, str], None]

SECTIONS: dict[ReviewKind, list[str]] = {
    ReviewKind.weekly: ["overdue", "lagging", "compliance", "warnings"],
    ReviewKind.monthly: ["milestones", "lagging", "reallocation", "warnings"],
    ReviewKind.quarterly: ["milestones", "cases", "warnings", "org_health"],
    ReviewKind.semiannual: ["org_health", "risks", "warnings", "milestones"],
}


@dataclass
class ReviewData:
    """Everything read for one review: KPIs of the period and its history, frames, lists."""

    period: Period
    audience: Classification
    history: list[KpiSet]
    frames: Frames
    lists: dict = field(default_factory=dict)

    @property
    def current(self) -> KpiSet:
        return self.history[-1]


@dataclass
class Action:
    code: str
    issue_number: str
    duplicate: bool


@dataclass
class ReviewOutcome:
    kind: str
    period: str
    audience: str
    files: dict[str, str]
    kpis: list[dict]
    actions: list[Action]
    created: bool
    # What the workbook process reported (its peak RSS in MiB, the ledgers' rows); empty
    # when the workbooks were written in this process.
    workbook_process: dict = field(default_factory=dict)

    def summary_markdown(self, locale: str = "en") -> str:
        t = translator(locale)
        lines = [f"# {t('review.' + self.kind)} · {self.period}", ""]
        missed = [k for k in self.kpis if k["status"] == "missed"]
        targeted = [k for k in self.kpis if k["target"] is not None]  # the others cannot miss
        lines.append(f"- {t('summary.missed', missed=len(missed), targeted=len(targeted))}")
        for k in missed:
            lines.append(f"  - {t('kpi.' + k['code'])}")
        shown = [
            a.issue_number + (f" ({t('act.status.linked')})" if a.duplicate else "")
            for a in self.actions
        ]
        lines.append(f"- {t('section.actions')}: " + (", ".join(shown) or "—"))
        lines.append(f"- {t('files')}:")
        lines.extend(f"  - `{path}`" for path in self.files.values())
        return "\n".join(lines)


def resolve_period(kind: ReviewKind | str, label: str | None, ctx: Context) -> Period:
    """The named period, or for a scheduled run the last complete one.

    A named period must have ended: a review acts on its missed targets (improvement issues
    in the closed loop), and a period in progress or to come has missed them all so far —
    a mistyped year would open real issues."""
    kind = ReviewKind(kind)
    if label is None:  # "" typed is refused by parse_period, not taken as the default
        return _after_programme_start(last_complete_period(kind, ctx.today()), ctx)
    period = _after_programme_start(parse_period(kind, label), ctx)
    ends = period.ends_at(ctx.policy.timezone)
    if ends > ctx.now():
        last = last_complete_period(kind, ctx.today()).label
        local = ends.astimezone(ZoneInfo(ctx.policy.timezone))
        raise DomainError(
            f"{period.label} has not ended yet (it ends at {local:%Y-%m-%d %H:%M} "
            f"{ctx.policy.timezone})",
            field="period",
            allowed=f"a finished {kind.value} period, e.g. the last complete one, {last}",
        )
    return period


def _after_programme_start(period: Period, ctx: Context) -> Period:
    """The period, refused if it ended before the programme began (review.programme_start):
    it has no targets to miss, yet its review would open improvement issues in the loop."""
    start = ctx.policy.review.programme_start
    if period.last_day < start:
        first = period_containing(period.kind, start).label
        raise DomainError(
            f"{period.label} ended before the programme started on {start.isoformat()}",
            field="period",
            allowed=f"a {period.kind.value} period from {first} on",
        )
    return period


def _jsonable(value):
    return json.loads(
        json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


def _stored_values(session_or_conn, kind: ReviewKind, labels: list[str]) -> dict[str, dict]:
    rows = session_or_conn.execute(
        select(Review.period, Review.kpis).where(
            Review.kind == kind.value, Review.period.in_(labels)
        )
    ).all()
    return {period: (kpis or {}).get("values", {}) for period, kpis in rows}


# The reads that take seconds at scale, each on a connection of its own, at the same time:
# the database does its part (a scan, a sort) with the GIL released, so on two cores one
# read's database work overlaps another's conversion to Python objects.
_BIG_FRAMES = (("tasks",), ("ledger",))


def _read_all(
    engine: Engine, ctx: Context, period: Period, audience: Classification, ledgers: bool
) -> tuple[Frames, dict]:
    """The KPI frames and the report lists (and the period's ledgers if `ledgers`), the big
    reads in threads of their own."""

    def on_connection(fn, *args, **kwargs):
        def read():
            with readers.connect() as conn:
                return fn(conn, *args, **kwargs)

        return pool.submit(read)

    tz = ctx.policy.timezone
    # The workbook is a meeting document: the period's items and entries only. The whole
    # ledgers are an export of their own (`taskforce review export-ledger`).
    with (
        ledgers_module.readers(engine) as readers,
        collector_paused(),  # millions of read cells, no cycles among them
        ThreadPoolExecutor(4, thread_name_prefix="review-read") as pool,
    ):
        big = [on_connection(read_frames, names) for names in _BIG_FRAMES]
        # Beside the big reads, not in the 1,000,000-row items frame: two more columns there
        # cost more than this query of the red items alone (benchmarks/RESULTS.md, session 8).
        matters = on_connection(open_matters, ctx.now(), ctx.today())
        pending = (
            {
                "task_ledger": on_connection(
                    content.task_ledger,
                    audience,
                    period,
                    today=ctx.today(),
                    progress=ctx.policy.progress,
                    timezone=tz,
                ),
                "budget_ledger": on_connection(content.budget_ledger, period, audience),
            }
            if ledgers
            else {}
        )
        rest = [n for n in FRAME_NAMES if not any(n in names for names in _BIG_FRAMES)]
        with readers.connect() as conn:
            parts = read_frames(conn, rest)
            lists = report_lists(conn, ctx, period, audience)
        for future in big:
            parts.update(future.result())
        lists.update({name: future.result() for name, future in pending.items()})
        lists["matters"] = matters.result()
    return Frames(**{name: parts[name] for name in FRAME_NAMES}), lists


def gather(
    engine: Engine,
    ctx: Context,
    period: Period,
    audience: Classification,
    *,
    ledgers: bool = True,
) -> ReviewData:
    """Do/Check: read the frames once, compute the KPIs of the period and the ones before it.
    `ledgers=False`: the workbook's ledgers are read elsewhere (a WorkbookJob)."""
    policy, now = ctx.policy, ctx.now()
    frames, lists = _read_all(engine, ctx, period, audience, ledgers)
    with engine.connect() as conn:
        # The trend starts with the programme: periods before it have no targets, and their
        # empty (or pre-programme) columns misread as results.
        periods = period.history(policy.review.trend_periods, since=policy.review.programme_start)
        history = [compute_kpis(frames, p, policy, now, snapshot=p == period) for p in periods]
        # Snapshot KPIs of earlier periods exist only as those periods' stored reviews.
        stored = _stored_values(conn, period.kind, [p.label for p in periods[:-1]])
        for kpiset in history[:-1]:
            for code, value in stored.get(kpiset.period, {}).items():
                if code in kpiset.kpis and BY_CODE[code].snapshot and value is not None:
                    kpiset.kpis[code].value = value
        previous = history[-2].values() if len(history) > 1 else {}
        compare(history[-1], previous)
    lists["attention"] = attention_counts(frames, lists.pop("matters"))
    return ReviewData(period=period, audience=audience, history=history, frames=frames, lists=lists)


def report_lists(conn, ctx: Context, period: Period, audience: Classification) -> dict:
    """The record lists the kind's report shows (SECTIONS); the workbook's ledgers are read
    beside them (_read_all).

    A list of a section the kind does not show stays empty: at scale the lagging items
    alone are hundreds of thousands of rows that a quarterly report would read and drop.
    """
    policy, now, shown = ctx.policy, ctx.now(), set(SECTIONS[period.kind])
    lagging = (
        content.lagging_items(conn, audience, ctx.today(), policy.progress)
        if shown & {"lagging", "reallocation"}
        else []
    )
    return {
        "overdue": content.overdue_issues(conn, policy, audience, now)
        if "overdue" in shown
        else [],
        "lagging": lagging,
        "reallocation": content.reallocation(lagging),
        "milestones": content.milestones(conn, period, audience, ctx.today(), policy)
        if "milestones" in shown
        else [],
        "findings": content.open_findings(conn, period, audience) if "compliance" in shown else [],
        "risks": content.risks(conn, policy, audience) if "risks" in shown else [],
        "warnings": content.warnings_in_period(conn, period, policy, audience)
        if "warnings" in shown
        else [],
        "emergencies": content.emergencies_in_period(conn, period, policy, audience)
        if "warnings" in shown
        else [],
        "cases": content.typical_cases(conn, period, policy, audience) if "cases" in shown else [],
        "lessons": content.lessons(
            conn,
            audience,
            exclude_source=lesson_source(period),
            # As the period ended: a past quarter's report, run late or again, does not list
            # lessons of the months after it.
            before=min(now, period.ends_at(policy.timezone)),
            limit=policy.review.lessons_shown,
        ),
    }


def lesson_source(period: Period) -> str:
    return f"review:{period.kind.value}:{period.label}"


def lesson_source_words(source: str, t) -> str:
    """A case-library source as a reader names it: "review:quarterly:2026-Q3" is the
    quarterly review of 2026-Q3, "evaluation:TF-2026-00024:1" the evaluation of that issue's
    first round (taskforce/loop/evaluate.py); anything else as it is stored."""
    kind, _, rest = source.partition(":")
    if kind == "review" and ":" in rest:
        review, label = rest.split(":", 1)
        return t("lesson_source.review", review=t(f"review.{review}"), period=label)
    if kind == "evaluation" and ":" in rest:
        number, round_ = rest.rsplit(":", 1)
        return t("lesson_source.evaluation", issue=number, round=round_)
    return source


def act(session: Session, ctx: Context, period: Period, current: KpiSet) -> list[Action]:
    """Act: one improvement issue per missed target, and its lesson in the case library.

    The issue's idempotency key review:<kind>:<period>:<kpi> makes a re-run return the
    issue opened the first time. A target missed again while an improvement issue of an
    earlier review for the same KPI is still open is linked to that issue (duplicate_of),
    not opened again: one open issue per KPI in the loop, whatever the review's kind.
    (Linking by the loop's title rule instead depended on the titles' lengths.)
    """
    policy = ctx.policy
    if period.kind is ReviewKind.semiannual:
        sweep_risks(session, ctx)  # §6: the risk register is reviewed semi-annually
    if period.kind.value not in policy.review.act_on:
        return []
    t = translator(policy.locale)
    reporter = director(session)
    unit_code = session.scalar(select(Unit.code).where(Unit.id == reporter.unit_id))
    source = lesson_source(period)
    review_name = t(f"review.{period.kind.value}")
    actions, kept = [], set()
    # The director's unit's open titles read once for all of this review's improvement
    # issues, not once each (the duplicate rule's read was most of this step at scale).
    open_titles = OpenTitles()
    still_open = open_improvement_issues(session, reporter.unit_id)
    for code, kpi in current.kpis.items():
        if kpi.status != "missed":
            continue
        values = {
            "kpi": t(f"kpi.{code}"),
            "value": fmt_kpi(kpi.value, kpi.unit),
            "target": fmt_kpi(kpi.target, kpi.unit),
            "rule": t(f"target_rule.{kpi.target_rule}"),
            "previous": fmt_kpi(kpi.previous, kpi.unit),
            "period": period.label,
            "review": review_name,
        }
        with open_titles.row():
            result = report_issue(
                session,
                ctx,
                ReportIssueForm(
                    title=t("act.title", **values)[:300],
                    description=t("act.description", **values),
                    reporting_unit=unit_code,
                    category=policy.review.improvement_category,
                    classification=Classification.internal,
                    duplicate_of=still_open.get(code),
                ),
                actor="review",
                key=f"review:{period.kind.value}:{period.label}:{code}",
                origin="review",
                origin_ref=f"{period.kind.value}:{period.label}:{code}",
                open_titles=open_titles,
            )
        title = f"{values['kpi']} · {period.label}"
        record_lesson(
            session,
            ctx,
            source=source,
            title=title,
            lesson=t("act.lesson", issue=result.issue_number, **values),
            issue_id=result.issue_id,
        )
        kept.add(title)
        actions.append(
            Action(code=code, issue_number=result.issue_number, duplicate=result.duplicate)
        )
    prune_lessons(session, source=source, keep_titles=kept)
    return actions


def open_improvement_issues(session: Session, unit_id: int) -> dict[str, str]:
    """The number of the first still-open improvement issue of each KPI, by KPI code (a
    review's issue has origin "review", origin_ref <kind>:<period>:<kpi> and the director's
    unit as its lead: read through that unit's index, not over every issue)."""
    rows = session.execute(
        select(Issue.number, Issue.origin_ref)
        .where(Issue.lead_unit_id == unit_id, Issue.origin == "review", Issue.stage != Stage.closed)
        .order_by(Issue.id)
    )
    found: dict[str, str] = {}
    for number, ref in rows:
        found.setdefault((ref or "").rsplit(":", 1)[-1], number)
    return found


def _unit_name(row: dict, locale: str) -> dict:
    out = {k: v for k, v in row.items() if k not in ("unit_zh", "unit_en")}
    if "unit_zh" in row:
        out["unit"] = row["unit_zh"] if locale == "zh-CN" else row["unit_en"]
    return out


def _finding_words(row: dict, t, owners: dict[str, str]) -> dict:
    """An audit finding's codes in the reader's words, as the budget audit's report shows
    them: its check, severity, owner (a unit or group) and subject."""
    subject_type, _, subject_id = row["subject"].partition(":")
    return {
        **row,
        "check": t(f"audit_check.{row['check']}"),
        "severity": t(f"audit_severity.{row['severity']}"),
        "owner": owners.get(row["owner"], row["owner"]),
        "subject": f"{t(f'audit_subject.{subject_type}')} {subject_id}",
    }


def build_context(
    data: ReviewData,
    actions_rows: list[dict],
    ctx: Context,
    locale: str,
    *,
    trend_svg: str | None = None,
) -> dict:
    """The template context of one locale. Lists are already cleared for the audience.
    `trend_svg`: the locale's trend chart if already drawn (charts.trend_charts)."""
    t = translator(locale)
    policy, period, current = ctx.policy, data.period, data.current
    kind = period.kind
    stages = current.details["stages"]
    risks = [_unit_name(r, locale) for r in data.lists["risks"]]
    burndown = charts.burndown_rows(data.frames, period, current, policy.timezone)
    chart_svgs = {
        "chart-colours": charts.colour_chart(current, t),
        "chart-trend": trend_svg or charts.trend_chart(data.history, t),
        "chart-burndown": charts.burndown_chart(burndown, t),
        "chart-funnel": charts.funnel_chart(stages, t),
    }
    if "risks" in SECTIONS[kind]:
        chart_svgs["chart-risk-matrix"] = charts.risk_matrix(risks, policy, t)
    kpis = [k.as_dict() for k in current.kpis.values()]
    owners = owner_names(locale)
    values = current.values()
    yuan = functools.partial(format_yuan, locale=locale, wan=True)
    return {
        "kind": kind.value,
        "period": period.label,
        "first_day": period.first_day.isoformat(),
        "last_day": period.last_day.isoformat(),
        "generated_at": ctx.now().astimezone(ZoneInfo(policy.timezone)).strftime("%Y-%m-%d %H:%M"),
        "pdca": kind.value in policy.review.act_on,
        "sections": SECTIONS[kind],
        "key_points": key_points(current, data.lists["attention"], period, t),
        "kpis": kpis,
        "done": current.details["done"],
        "colour_rows": [
            {"colour": c, "count": current.details["colours"].get(c, 0)}
            for c in ("green", "yellow", "red")
        ],
        "trend": {
            "periods": [h.period for h in data.history],
            "rows": [
                {
                    "code": code,
                    "unit": BY_CODE[code].unit,
                    "values": [h.kpis[code].value for h in data.history],
                }
                for code in current.kpis
            ],
        },
        "burndown_rows": [
            {
                "month": r["month"],
                # Before any line is approved there is no base: "—", not 0.00.
                # Every cell in 万元 (wan=True): a column of 0.00元 beside 90万元 misreads.
                "approved": yuan(r["approved_fen"]) if r["approved_fen"] else "—",
                "spent": yuan(r["spent_fen"]),
                "ideal": yuan(r["ideal_fen"]) if r["approved_fen"] else "—",
                "remaining": yuan(r["remaining_fen"]) if r["approved_fen"] else "—",
            }
            for r in burndown
        ],
        "stages": stages,
        "overdue": [_unit_name(r, locale) for r in data.lists["overdue"]],
        "lagging": [_unit_name(r, locale) for r in data.lists["lagging"]],
        "reallocation": [_unit_name(r, locale) for r in data.lists["reallocation"]],
        "milestones": data.lists["milestones"],
        "milestones_by_kind": current.details["milestones_by_kind"],
        "milestones_by_phase": current.details["milestones_by_phase"],
        "findings": [_finding_words(r, t, owners) for r in data.lists["findings"]],
        "budget": current.details["budget"],
        "warnings_by_colour": current.details["warnings_by_colour"],
        "emergencies_by_level": current.details["emergencies_by_level"],
        "drills": current.details["drills"],
        "warning_rows": data.lists["warnings"],
        "emergency_rows": data.lists["emergencies"],
        "org_health": {
            "members": current.kpis["full_time_share"].basis or 0,
            "full_time_share": values["full_time_share"],
            "full_time_target": float(policy.kpi_targets.full_time_share_min),
            "training": values["training_hours_per_member"],
            "training_target": policy.kpi_targets.training_hours_per_year_min,
            "below": current.details.get("members_below_training", 0),
        },
        "risks": risks,
        "cases": data.lists["cases"],
        "lessons": [
            {**row, "source": lesson_source_words(row["source"], t)}
            for row in data.lists["lessons"]
        ],
        "actions": actions_rows,
        # Missed targets whose improvement issues this audience may not list (they are
        # internal): the Act section must not then read "every target met".
        "missed": sum(1 for k in current.kpis.values() if k.status == "missed"),
        "charts": chart_svgs,
    }


REPORTS_DIR_ENV = "TASKFORCE_REPORTS_DIR"
# Where the office serves the reports folder over its intranet (e.g. https://oa.example.gov.cn/
# taskforce-reports): links in notices and in the UI then open in a reader's browser. Unset,
# they are paths on the worker's disk, which only someone on that machine can open.
REPORTS_URL_ENV = "TASKFORCE_REPORTS_URL"


def report_link(path: str | Path) -> str:
    """A report as a reader reaches it: $TASKFORCE_REPORTS_URL/<kind>/<period>/<file>, or
    its path when no URL is set. Reports lie at <root>/<kind>/<period>/ (output_dir)."""
    base = os.environ.get(REPORTS_URL_ENV, "").strip().rstrip("/")
    if not base:
        return str(path)
    return base + "/" + "/".join(quote(part) for part in Path(path).parts[-3:])


def output_dir(ctx: Context, period: Period, out_root: Path | None = None) -> Path:
    """<root>/<kind>/<period>: root is out_root, else $TASKFORCE_REPORTS_DIR, else
    review.output_dir. Made now, and refused naming where it came from when it cannot be
    written: before the review acts (its improvement issues) or writes anything."""
    env_root = os.environ.get(REPORTS_DIR_ENV)
    root = out_root or env_root or PROJECT_ROOT / ctx.policy.review.output_dir
    field = "out" if out_root else REPORTS_DIR_ENV if env_root else "review.output_dir"
    return writable_folder(Path(root) / period.kind.value / period.label, field=field)


def workbook_paths(period: Period, audience: Classification, locales, out_dir: Path) -> dict:
    stem = f"{period.kind.value}-{period.label}"
    return {
        locale: ledgers_module.workbook_path(out_dir, stem, locale, audience) for locale in locales
    }


def render(
    data: ReviewData,
    actions: list[Action],
    engine: Engine,
    ctx: Context,
    locales: list[str],
    out_dir: Path,
    *,
    workbooks: ledgers_module.WorkbookJob | None = None,
) -> dict[str, str]:
    """The report files: HTML and Markdown (render_report) and the XLSX ledgers, per locale.
    `workbooks`: the job writing the XLSX files (then `data` holds no ledgers); it gets the
    KPI sheets first and is waited for after the HTML."""
    with engine.connect() as conn:
        actions_rows = content.issues_by_number(
            conn, [a.issue_number for a in actions], data.audience
        )
    # Opened by this review, or an earlier review's issue for the KPI still open (a review
    # of an older period lists those: an operator trial read them as new).
    linked = {a.issue_number for a in actions if a.duplicate}
    for row in actions_rows:
        row["status"] = "linked" if row["number"] in linked else "new"
    period, tz = data.period, ctx.policy.timezone
    stem = f"{period.kind.value}-{period.label}"
    xlsx = workbook_paths(period, data.audience, locales, out_dir)
    kpi_sheets = {locale: ledgers_module.kpi_frame(data.current, locale) for locale in locales}
    if workbooks is not None:
        workbooks.send(kpi_sheets)  # it writes them while the charts are drawn
    # One drawing of the trend chart for all locales (the most expensive chart).
    trends = charts.trend_charts(data.history, {locale: translator(locale) for locale in locales})
    written: dict[str, dict] = {}
    for locale in locales:
        context = build_context(data, actions_rows, ctx, locale, trend_svg=trends[locale])
        written[locale] = render_report(
            "review", context, locale, data.audience, out_dir, stem=stem
        )
        written[locale]["xlsx"] = xlsx[locale]
    if workbooks is not None:
        workbooks.finish()
    else:
        tasks, budget = data.lists["task_ledger"], data.lists["budget_ledger"]
        books = {
            xlsx[locale]: ledgers_module.review_sheets(
                tasks, budget, kpi_sheets[locale], period, tz, locale, data.audience
            )
            for locale in locales
        }
        write_workbooks(books, timezone=tz)
    files: dict[str, str] = {}
    for locale in locales:
        for fmt, path in written[locale].items():
            files[f"{locale}.{fmt}"] = str(path)
    return files


def store(
    session: Session, ctx: Context, data: ReviewData, files: dict[str, str]
) -> tuple[Review, bool]:
    """Insert or replace the period's Review row; the first publication notifies."""
    period, now = data.period, ctx.now()
    review = session.scalar(
        select(Review).where(Review.kind == period.kind.value, Review.period == period.label)
    )
    created = review is None
    if created:
        review = Review(kind=period.kind.value, period=period.label, generated_at=now)
        session.add(review)
    review.generated_at = now
    review.files = files
    review.kpis = _jsonable(
        {
            "values": data.current.values(),
            "kpis": [k.as_dict() for k in data.current.kpis.values()],
            "details": data.current.details,
            "audience": data.audience.value,
        }
    )
    session.flush()
    events.record(
        session,
        ctx.policy,
        at=now,
        actor="review",
        action="review.published" if created else "review.rebuilt",
        subject_type="review",
        subject_id=f"{period.kind.value}:{period.label}",
        payload={"files": files, "audience": data.audience.value},
        # The notice links the report: at the report's audience, so that readers not
        # cleared for a secret review get a reference only (a classification audit: it went
        # to everyone at internal, with the secret report's link); internal at the least.
        classification=Classification.highest(data.audience, Classification.internal),
        notify="review_published" if created else None,
        # Keys of taskforce/notify/templates/<locale>/review_published.j2: title, summary, path.
        context=_notice(ctx, data, files, _conducted_by(session, ctx, data)),
    )
    return review, created


def _conducted_by(session: Session, ctx: Context, data: ReviewData) -> list[str]:
    """The group codes of review.conducted_by for this cadence (`working_group`: each)."""
    named = ctx.policy.review.conducted_by.get(data.period.kind.value, [])
    codes = [code for code in named if code != GroupKind.working_group.value]
    if GroupKind.working_group.value in named:
        codes += session.scalars(
            select(Group.code).where(Group.kind == GroupKind.working_group).order_by(Group.code)
        )
    return codes


def _notice(ctx: Context, data: ReviewData, files: dict[str, str], conducted_by: list[str]) -> dict:
    t = translator(ctx.policy.locale)
    missed = [t(f"kpi.{k.code}") for k in data.current.kpis.values() if k.status == "missed"]
    html = files.get(f"{ctx.policy.locale}.html") or next(
        (p for name, p in files.items() if name.endswith(".html")), None
    )
    return {
        "kind": data.period.kind.value,
        "period": data.period.label,
        "title": f"{t('review.' + data.period.kind.value)} {data.period.label}",
        "summary": t("notice.missed", kpis=t("list_joiner").join(missed))
        if missed
        else t("act.none"),
        "path": report_link(html) if html else None,
        "conducted_by": conducted_by,
    }


def _task_nodes(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(TaskNode))


def start_workbooks(
    engine: Engine,
    ctx: Context,
    period: Period,
    audience: Classification,
    locales: list[str],
    out_dir: Path,
    *,
    workbook_process: bool | None = None,
) -> ledgers_module.WorkbookJob | None:
    """The job writing the review's XLSX workbooks in a process of their own, started now so
    that it reads the ledgers while this process reads the KPIs; None: `render` writes them.
    `workbook_process` None: from review.workbook_process_from_nodes task nodes (at issue
    9's scale, 1.2M nodes, that saves seconds; on a small database starting a process, about
    a second, costs more than the workbooks)."""
    if workbook_process is None:
        threshold = ctx.policy.review.workbook_process_from_nodes
        workbook_process = _task_nodes(engine) >= threshold
    if not (workbook_process and locales):
        return None
    paths = workbook_paths(period, audience, locales, out_dir)
    return ledgers_module.WorkbookJob.start(engine, ctx, period, audience, paths)


def run_review(
    engine: Engine,
    ctx: Context,
    kind: ReviewKind | str,
    period: str | None = None,
    *,
    audience: Classification | str | None = None,
    locales: list[str] | tuple[str, ...] = LOCALES,
    out_root: Path | None = None,
    on_progress: Progress | None = None,
    workbook_process: bool | None = None,
) -> ReviewOutcome:
    """The whole review without Prefect (the CLI and tests call this; the flow calls the steps).

    `workbook_process`: write the XLSX workbooks in a process of their own, beside the KPI
    reads, charts and HTML (the same files; None: when the task ledger is large enough to
    pay for starting a process: review.workbook_process_from_nodes task nodes).
    """
    step = on_progress or (lambda _pct, _msg: None)
    the_period = resolve_period(kind, period, ctx)
    aud = Classification(audience or ctx.policy.review.default_audience)
    locales = [translator(locale) and locale for locale in locales]  # unknown: an error now
    out_dir = output_dir(ctx, the_period, out_root)
    job = start_workbooks(
        engine, ctx, the_period, aud, locales, out_dir, workbook_process=workbook_process
    )
    try:
        step(10, "reading KPIs")
        data = gather(engine, ctx, the_period, aud, ledgers=job is None)
        step(40, "acting on missed targets")
        with unit_of_work(engine) as session:
            actions = act(session, ctx, the_period, data.current)
        step(60, "rendering reports")
        files = render(data, actions, engine, ctx, locales, out_dir, workbooks=job)
    except BaseException:
        if job is not None:
            job.cancel()
        raise
    step(90, "storing the review")
    with unit_of_work(engine) as session:
        _, created = store(session, ctx, data, files)
    step(100, "done")
    return ReviewOutcome(
        kind=the_period.kind.value,
        period=the_period.label,
        audience=aud.value,
        files=files,
        kpis=[k.as_dict() for k in data.current.kpis.values()],
        actions=actions,
        created=created,
        workbook_process=job.report if job is not None else {},
    )
