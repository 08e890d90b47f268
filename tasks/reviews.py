"""Thin Prefect tasks over the PDCA review steps (taskforce/reviews/service.py)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from taskforce.context import Context
from taskforce.db import get_engine, unit_of_work
from taskforce.policy.schema import Classification
from taskforce.reviews import service
from taskforce.reviews.ledgers import WorkbookJob
from taskforce.reviews.periods import Period, ReviewKind


@task(name="resolve-period")
def resolve_period(kind: ReviewKind, period: str | None) -> Period:
    return service.resolve_period(kind, period, Context.default())


def start_workbooks(
    period: Period, audience: Classification, locales: list[str]
) -> WorkbookJob | None:
    """The process writing the XLSX workbooks at scale (see service.start_workbooks), started
    before the KPIs are read. Not a task: it returns a running process, not a result."""
    ctx = Context.default()
    out = service.output_dir(ctx, period)
    return service.start_workbooks(get_engine(), ctx, period, audience, locales, Path(out))


# Frames and contexts are not worth hashing: no cache, results stay in memory.
@task(name="gather-kpis", cache_policy=NO_CACHE)
def gather(period: Period, audience: Classification, ledgers: bool = True) -> service.ReviewData:
    """Do/Check: KPIs of the period and its history, and the lists cleared for the audience
    (and the workbook's ledgers, unless a workbook process reads them)."""
    return service.gather(get_engine(), Context.default(), period, audience, ledgers=ledgers)


@task(name="act", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def act(data: service.ReviewData) -> list[service.Action]:
    """Act: improvement issues (idempotency key per KPI) and lessons, in one transaction."""
    with unit_of_work() as session:
        return service.act(session, Context.default(), data.period, data.current)


@task(name="render-reports", cache_policy=NO_CACHE)
def render(
    data: service.ReviewData,
    actions: list[service.Action],
    locales: list[str],
    workbooks: WorkbookJob | None = None,
) -> dict[str, str]:
    ctx = Context.default()
    out = service.output_dir(ctx, data.period)
    return service.render(data, actions, get_engine(), ctx, locales, Path(out), workbooks=workbooks)


@task(name="store-review", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def store(data: service.ReviewData, files: dict[str, str]) -> bool:
    """Insert or replace the period's Review row; True when it is new."""
    with unit_of_work() as session:
        _, created = service.store(session, Context.default(), data, files)
        return created
