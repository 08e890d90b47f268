"""The raw column reads (no per-value type processing) give the frames and ledgers the typed
reads gave, and therefore the same KPIs — on SQLite and PostgreSQL (the `engine` fixture).

The typed reads they replaced are kept here as the reference."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from taskforce.kpi.compute import compute_kpis
from taskforce.kpi.frames import (
    _DATES,
    _INSTANTS,
    FRAME_NAMES,
    Frames,
    _queries,
    load_frames,
)
from taskforce.loop.colours import colour_sql
from taskforce.policy import load_policy
from taskforce.policy.schema import Classification
from taskforce.reviews import content
from taskforce.reviews.periods import parse_period
from tests.reviews import factories as f

NOW = f.utc(2026, 12, 1, 1)
TODAY = dt.date(2026, 12, 1)  # NOW in Shanghai: the ledgers' colours are today's
RULES = load_policy().progress


def typed_frames(conn) -> Frames:
    """load_frames as it was: pandas.read_sql through SQLAlchemy's result processing."""
    queries = _queries()  # the queries of load_frames; only the read differs
    frames = {}
    for name, stmt in queries.items():
        frame = pd.read_sql(stmt, conn)
        for col in _INSTANTS.get(name, []):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        for col in _DATES.get(name, []):
            frame[col] = pd.to_datetime(frame[col])
        for col in frame.columns:
            if frame[col].dtype == object and col not in _DATES.get(name, []):
                frame[col] = frame[col].map(lambda v: v if v is None else str(v))
        frames[name] = frame
    return Frames(**frames)


def _same_values(new: pd.DataFrame, old: pd.DataFrame) -> None:
    assert list(new.columns) == list(old.columns)
    assert len(new) == len(old)
    for col in new.columns:
        a, b = new[col], old[col]
        if pd.api.types.is_datetime64_any_dtype(b):
            assert (a.isna() == b.isna()).all(), col
            assert (a[a.notna()] == b[b.notna()]).all(), col
        elif b.dtype == bool or a.dtype == bool:
            assert a.astype(bool).tolist() == b.astype(bool).tolist(), col
        else:
            left = [None if pd.isna(v) else v for v in a.tolist()]
            right = [None if pd.isna(v) else v for v in b.tolist()]
            assert left == right, col


@pytest.fixture
def dataset(engine):
    with Session(engine) as s, s.begin():
        f.november_dataset(s)
        f.classified_dataset(s)
    return engine


def test_raw_frames_equal_the_typed_frames(dataset, policy):
    with dataset.connect() as conn:
        new, old = load_frames(conn), typed_frames(conn)
    for name in FRAME_NAMES:
        _same_values(getattr(new, name), getattr(old, name))
    for label in ("2026-10", "2026-11", "2026-12"):
        period = parse_period("monthly", label)
        ours, theirs = (
            compute_kpis(new, period, policy, NOW),
            compute_kpis(old, period, policy, NOW),
        )
        assert ours.values() == theirs.values()
        assert ours.details == theirs.details


def test_raw_ledgers_equal_the_typed_ledgers(dataset):
    from sqlalchemy import select

    from taskforce.budget.models import BudgetLine, LedgerEntry
    from taskforce.loop.models import Issue, Plan, TaskNode
    from taskforce.money import to_yuan
    from taskforce.org.models import Unit
    from taskforce.reports.audience import cleared_for

    period = parse_period("monthly", "2026-11")
    for audience in Classification:
        with dataset.connect() as conn:
            tasks = content.task_ledger(conn, audience, today=TODAY, progress=RULES)
            budget = content.budget_ledger(conn, period, audience)
            typed_tasks = pd.read_sql(
                select(
                    Issue.number.label("issue"),
                    Issue.title.label("issue_title"),
                    TaskNode.level,
                    TaskNode.title.label("task"),
                    Unit.name.label("owner_zh"),
                    Unit.name_en.label("owner_en"),
                    TaskNode.start_date.label("start"),
                    TaskNode.due_date.label("due"),
                    TaskNode.progress_percent.label("progress"),
                    TaskNode.done,
                    TaskNode.completed_at.label("completed"),
                    colour_sql(TODAY, RULES).label("colour"),
                    Plan.round.label("plan_round"),
                )
                .join(Issue, Issue.id == TaskNode.issue_id)
                .join(Plan, Plan.id == TaskNode.plan_id)
                .outerjoin(Unit, Unit.id == TaskNode.owner_unit_id)
                .where(Issue.classification.in_(cleared_for(audience)))
                .order_by(Issue.number, TaskNode.id),
                conn,
            )
            allowed = cleared_for(audience)
            line_ok = BudgetLine.classification.in_(allowed)
            if Classification.internal in allowed:
                line_ok = line_ok | LedgerEntry.line_id.is_(None)
            typed_budget = pd.read_sql(
                select(
                    LedgerEntry.entry_date.label("date"),
                    BudgetLine.code.label("line"),
                    BudgetLine.purpose,
                    LedgerEntry.kind,
                    LedgerEntry.amount_fen,
                    LedgerEntry.payee,
                    LedgerEntry.description,
                )
                .outerjoin(BudgetLine, BudgetLine.id == LedgerEntry.line_id)
                .where(
                    LedgerEntry.entry_date >= period.first_day,
                    LedgerEntry.entry_date <= period.last_day,
                    line_ok,
                )
                .order_by(LedgerEntry.entry_date, LedgerEntry.id),
                conn,
            )
        for col in ("level",):
            typed_tasks[col] = typed_tasks[col].map(lambda v: None if v is None else str(v))
        typed_tasks["completed"] = pd.to_datetime(typed_tasks["completed"], utc=True)
        typed_tasks.loc[typed_tasks["done"].astype(bool), "colour"] = None  # done: no light
        typed_budget["kind"] = typed_budget["kind"].map(lambda v: None if v is None else str(v))
        typed_budget["amount"] = typed_budget.pop("amount_fen").map(lambda fen: to_yuan(int(fen)))
        assert len(tasks) > 0 or audience is Classification.public
        _same_values(tasks, typed_tasks)
        _same_values(budget, typed_budget)
        # The workbook formats dates by their Python type: still datetime.date.
        assert all(type(v).__name__ == "date" for v in tasks["due"].dropna())
        assert all(type(v).__name__ == "date" for v in budget["date"].dropna())


def test_daily_ledger_totals_give_the_kpis_of_the_entries(dataset, policy):
    """Frames.ledger holds daily totals per (fiscal year, kind, date); the KPIs and the
    burn-down over them equal those over the individual entries (the frame it replaced)."""
    from sqlalchemy import select

    from taskforce.budget.models import LedgerEntry
    from taskforce.reviews.charts import burndown_rows

    with dataset.connect() as conn:
        ours = load_frames(conn)
        entries = pd.read_sql(
            select(
                LedgerEntry.fiscal_year,
                LedgerEntry.kind,
                LedgerEntry.entry_date,
                LedgerEntry.amount_fen,
            ),
            conn,
        )
    entries["kind"] = entries["kind"].map(str)
    entries["entry_date"] = pd.to_datetime(entries["entry_date"])
    entries["entries"] = 1
    assert len(entries) > len(ours.ledger) > 0  # two entries share a day in the dataset
    theirs = Frames(**{**ours.__dict__, "ledger": entries, "derived": {}})
    for kind, label in (("monthly", "2026-11"), ("monthly", "2026-03"), ("quarterly", "2026-Q4")):
        period = parse_period(kind, label)
        a, b = compute_kpis(ours, period, policy, NOW), compute_kpis(theirs, period, policy, NOW)
        assert a.values() == b.values()
        assert a.kpis["budget_execution_rate"].basis == b.kpis["budget_execution_rate"].basis
        assert a.details == b.details
        assert burndown_rows(ours, period, a, policy.timezone) == burndown_rows(
            theirs, period, b, policy.timezone
        )


def test_item_columns_derived_once_give_each_period_its_own_kpis(dataset, policy):
    """compute_kpis derives the items' columns once per frames (for all periods of a trend):
    the KPIs of each period equal those computed on freshly read frames."""
    with dataset.connect() as conn:
        shared = load_frames(conn)
        labels = ("2026-09", "2026-10", "2026-11", "2026-12")
        fresh = {label: load_frames(conn) for label in labels}
    for label in labels:
        period = parse_period("monthly", label)
        a = compute_kpis(shared, period, policy, NOW)
        b = compute_kpis(fresh[label], period, policy, NOW)
        assert a.values() == b.values() and a.details == b.details
    assert len(shared.derived) == 1  # derived once, used four times
