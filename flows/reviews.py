"""The scheduled PDCA reviews (SPEC §3), one flow per cadence.

Each runs on its schedule (prefect.yaml, cron of config/taskforce.yaml `reviews:`,
Asia/Shanghai) for the last complete period, and from the UI for any period:
re-running a period replaces its report and creates nothing twice.
"""

from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run
from pydantic import Field

from taskforce.policy import load_policy
from taskforce.policy.schema import Classification
from taskforce.reports.audience import PREFECT_UI_CLEARANCE
from taskforce.reports.i18n import translator
from taskforce.reports.render import fmt_kpi
from taskforce.reviews.periods import ReviewKind
from taskforce.reviews.service import ReviewOutcome, report_link
from tasks import reviews as steps

Locale = Literal["zh-CN", "en"]
# Prefect titles a flow parameter with its name and takes the description from a
# Field default; constraints (pattern, enum, bounds) come from the annotation.
Audience = Classification | None
Locales = Annotated[list[Locale], Field(min_length=1)]
AUDIENCE = Field(
    None,
    description="阅读范围 public / internal / secret: the report shows only records cleared for it. "
    "Empty: review.default_audience of config/taskforce.yaml.",
)
LOCALES_FIELD = Field(["zh-CN", "en"], description="语言 The report is written in each language.")


WeekLabel = Annotated[str | None, Field(pattern=r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$")]
MonthLabel = Annotated[str | None, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
QuarterLabel = Annotated[str | None, Field(pattern=r"^\d{4}-Q[1-4]$")]
HalfLabel = Annotated[str | None, Field(pattern=r"^\d{4}-H[12]$")]


def _period_field(example: str):
    return Field(
        None,
        description=f"周期 e.g. {example}. Empty: the last complete period (what the schedule runs).",
    )


def _run(
    kind: ReviewKind, period: str | None, audience: Classification | None, locales: list[str]
) -> dict:
    audience = Classification(audience or load_policy().review.default_audience)
    in_prefect = flow_run.get_id() is not None
    progress = None
    if in_prefect:
        progress = create_progress_artifact(
            0.0, key=f"review-{kind.value}-progress", description=f"{kind.value} review"
        )

    def step(pct: float) -> None:
        if progress is not None:
            update_progress_artifact(progress, pct)

    the_period = steps.resolve_period(kind, period)
    workbooks = steps.start_workbooks(the_period, audience, list(locales))
    try:
        data = steps.gather(the_period, audience, ledgers=workbooks is None)
        step(40)
        actions = steps.act(data)
        step(60)
        files = steps.render(data, actions, list(locales), workbooks=workbooks)
    except BaseException:
        if workbooks is not None:
            workbooks.cancel()  # no half-written workbook is left
        raise
    step(90)
    created = steps.store(data, files)
    step(100)
    outcome = ReviewOutcome(
        kind=kind.value,
        period=the_period.label,
        audience=Classification(audience).value,
        files=files,
        kpis=[k.as_dict() for k in data.current.kpis.values()],
        actions=actions,
        created=created,
    )
    if in_prefect:
        _publish(outcome)
    print(outcome.summary_markdown())
    return {
        "kind": outcome.kind,
        "period": outcome.period,
        "created": created,
        "files": files,
        # Opened by this review; a target missed again while an earlier review's issue for
        # its KPI is open is linked to that issue instead (reviews.service.act).
        "improvement_issues": [a.issue_number for a in actions if not a.duplicate],
        "linked_issues": [a.issue_number for a in actions if a.duplicate],
    }


def _publish(outcome: ReviewOutcome) -> None:
    """The UI's view of a review: summary, KPI table, links to the files."""
    base = f"review-{outcome.kind}"
    create_markdown_artifact(
        outcome.summary_markdown("zh-CN") + "\n\n---\n\n" + outcome.summary_markdown("en"),
        key=f"{base}-summary",
        description=f"{outcome.kind} review {outcome.period}",
    )
    # In the office's words (policy.locale), as the report's own KPI table: the UI showed
    # resolution_rate / min 80.0% / flat.
    t = translator(load_policy().locale)
    create_table_artifact(
        [
            {
                t("kpi"): t(f"kpi.{k['code']}"),
                t("value"): fmt_kpi(k["value"], k["unit"]),
                t("target"): ""
                if k["target"] is None
                else f"{t('target_rule.' + k['target_rule'])} {fmt_kpi(k['target'], k['unit'])}",
                t("status"): t(f"status.{k['status']}") if k["status"] else "",
                t("previous"): fmt_kpi(k["previous"], k["unit"]),
                t("change"): t(f"change.{k['change']}") if k["change"] else "",
            }
            for k in outcome.kpis
        ],
        key=f"{base}-kpis",
        description=f"KPIs of {outcome.period} against targets and the previous period",
    )
    if not Classification(outcome.audience).readable_by(PREFECT_UI_CLEARANCE):
        # The UI is read at internal clearance: no link to a secret review's report (its
        # paths stay in the summary; whoever may open the files knows where they are).
        return
    for name, path in outcome.files.items():
        if name.endswith(".html"):
            create_link_artifact(
                link if (link := report_link(path)) != str(path) else f"file://{path}",
                link_text=f"{outcome.kind} {outcome.period} ({name})",
                key=f"{base}-{name.replace('.', '-').lower()}",
                description="The report; Markdown and XLSX are beside it.",
            )


@flow(name="weekly-dispatch-report", log_prints=True)
def weekly_dispatch_report(
    period: WeekLabel = _period_field("2026-W48"),
    audience: Audience = AUDIENCE,
    locales: Locales = LOCALES_FIELD,
) -> dict:
    """周调度报告 Weekly dispatch: open issues, overdue stages, red/yellow items, ledger compliance."""
    return _run(ReviewKind.weekly, period, audience, locales)


@flow(name="monthly-review", log_prints=True)
def monthly_review(
    period: MonthLabel = _period_field("2026-11"),
    audience: Audience = AUDIENCE,
    locales: Locales = LOCALES_FIELD,
) -> dict:
    """月度复盘 Monthly review: KPIs, milestone attainment, lagging tasks, reallocation."""
    return _run(ReviewKind.monthly, period, audience, locales)


@flow(name="quarterly-review", log_prints=True)
def quarterly_review(
    period: QuarterLabel = _period_field("2026-Q4"),
    audience: Audience = AUDIENCE,
    locales: Locales = LOCALES_FIELD,
) -> dict:
    """季度优化 Quarterly review and the operations white paper (运行白皮书)."""
    return _run(ReviewKind.quarterly, period, audience, locales)


@flow(name="semiannual-audit", log_prints=True)
def semiannual_audit(
    period: HalfLabel = _period_field("2026-H2"),
    audience: Audience = AUDIENCE,
    locales: Locales = LOCALES_FIELD,
) -> dict:
    """半年度 Performance audit and risk assessment (the risk register and its 5×5 matrix)."""
    return _run(ReviewKind.semiannual, period, audience, locales)
