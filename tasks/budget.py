"""Prefect tasks of the budget: each wraps one core function in one transaction.

No caching: these change state, and the core's idempotency keys (and the
ledger's external_ref) already make a retry write nothing twice.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from taskforce.budget import ledger, service
from taskforce.budget.audit import AuditResult, run_audit
from taskforce.budget.forms import (
    DisbursementForm,
    ProposeAdjustmentForm,
    ProposeLineForm,
    ReserveDrawForm,
    ReviewForm,
    SetFiscalYearForm,
)
from taskforce.budget.performance import PerformanceResult, run_performance_audit
from taskforce.budget.report import (
    audit_table,
    output_dir,
    performance_table,
    render_audit,
    render_performance,
    write_audit_reports,
    write_performance_reports,
)
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.org.service import active_member


def _ctx() -> Context:
    return Context.default()


def _acting(session, actor: str) -> None:
    """The acting member must be one the office knows: the trail names who recorded the
    budget's facts (an unknown name there would be a record nobody can answer for)."""
    active_member(session, actor, field="actor")


# Rows of a notice table shown in the UI; the rest are counted in its description.
ARTIFACT_ROWS = 1_000


@task(name="set-fiscal-year", cache_policy=NO_CACHE)
def set_fiscal_year(form: SetFiscalYearForm, actor: str, key: str | None) -> dict:
    with unit_of_work() as session:
        _acting(session, actor)
        return service.set_fiscal_year(session, _ctx(), form, actor=actor, key=key).model_dump()


@task(name="propose-line", cache_policy=NO_CACHE)
def propose_line(form: ProposeLineForm, actor: str, key: str | None) -> dict:
    with unit_of_work() as session:
        _acting(session, actor)
        return service.propose_line(session, _ctx(), form, actor=actor, key=key).model_dump()


@task(name="propose-adjustment", cache_policy=NO_CACHE)
def propose_adjustment(form: ProposeAdjustmentForm, actor: str, key: str | None) -> dict:
    with unit_of_work() as session:
        _acting(session, actor)
        return service.propose_adjustment(session, _ctx(), form, actor=actor, key=key).model_dump()


@task(name="review", cache_policy=NO_CACHE)
def review(form: ReviewForm, actor: str, key: str | None) -> dict:
    with unit_of_work() as session:
        return service.review(session, _ctx(), form, actor=actor, key=key).model_dump()


@task(name="record-disbursement", cache_policy=NO_CACHE)
def record_disbursement(form: DisbursementForm, actor: str) -> dict:
    with unit_of_work() as session:
        _acting(session, actor)
        return ledger.record_disbursement(session, _ctx(), form, actor=actor).model_dump()


@task(name="draw-reserve", cache_policy=NO_CACHE)
def draw_reserve(form: ReserveDrawForm, actor: str, key: str | None) -> dict:
    with unit_of_work() as session:
        _acting(session, actor)
        return service.draw_reserve(session, _ctx(), form, actor=actor, key=key).model_dump()


@task(name="import-ledger", cache_policy=NO_CACHE)
def import_ledger(path: str, actor: str) -> dict:
    with unit_of_work() as session:
        _acting(session, actor)
        result = ledger.import_file(session, _ctx(), Path(path), actor=actor)
    if result.errors:
        create_table_artifact(
            result.errors,
            key="budget-ledger-import-errors",
            description=f"Rows of {result.source} not imported: row, field, what is allowed",
        )
    if result.to_check:
        shown = result.to_check[:ARTIFACT_ROWS]
        create_table_artifact(
            shown,
            key="budget-ledger-import-checks",
            description=f"Rows of {result.source} recorded that need a look: row, field, why"
            + (
                f" (the first {len(shown)} of {len(result.to_check)})"
                if len(shown) < len(result.to_check)
                else ""
            ),
        )
    return result.model_dump()


@task(name="run-budget-audit", cache_policy=NO_CACHE)
def audit(week: str) -> AuditResult:
    output_dir()  # the reports' folder, refused before the audit is recorded
    with unit_of_work() as session:
        return run_audit(session, _ctx(), week)


@task(name="publish-budget-audit", cache_policy=NO_CACHE)
def publish_audit(result: AuditResult) -> dict[str, str]:
    """Reports on disk and artifacts in the Prefect UI (internal clearance: secret text withheld)."""
    paths = write_audit_reports(result)
    key = f"budget-audit-{result.week.lower()}"
    create_markdown_artifact(
        render_audit(result, fmt="md", locale="en"),
        key=key,
        description=f"Weekly budget compliance audit {result.week}",
    )
    create_table_artifact(
        audit_table(result) or [{"result": "no findings"}],
        key=f"{key}-findings",
        description=f"Findings of {result.week}",
    )
    return {name: str(path) for name, path in paths.items()}


@task(name="run-performance-audit", cache_policy=NO_CACHE)
def performance_audit(half: str) -> PerformanceResult:
    output_dir()  # the reports' folder, refused before the audit is recorded
    with unit_of_work() as session:
        return run_performance_audit(session, _ctx(), half)


@task(name="publish-performance-audit", cache_policy=NO_CACHE)
def publish_performance(result: PerformanceResult) -> dict[str, str]:
    paths = write_performance_reports(result)
    key = f"budget-performance-{result.half.lower()}"
    create_markdown_artifact(
        render_performance(result, fmt="md", locale="en"),
        key=key,
        description=f"Semi-annual budget performance audit {result.half}",
    )
    create_table_artifact(
        performance_table(result) or [{"result": "no budget lines"}],
        key=f"{key}-lines",
        description=f"Input against output per line, {result.half}",
    )
    return {name: str(path) for name, path in paths.items()}
