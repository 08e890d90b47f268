"""Dispatch sweep over every open action item, against one SELECT of the same rows into pandas.

The sweep is incremental (taskforce/loop/sweep.py): colours are derived, and it reads only the
items whose red-item step (interview, escalation) falls due by today. The cockpit (every open item, most urgent
first) is a report built off the sweep's hot path; it is measured as a row of its own.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import text

from benchmarks.core import Bench, Result, timed
from taskforce.db import unit_of_work
from taskforce.emergency.models import EarlyWarning
from taskforce.loop.sweep import cockpit, dispatch_sweep
from taskforce.notify.models import OutboxMessage
from taskforce.trail.models import TrailEntry

NAME = "sweep"
GOAL_SECONDS_PER_MILLION = 2.0
SECOND_RUN_MAX_SHARE = 0.10


def _same_rows_into_pandas(bench: Bench) -> pd.DataFrame:
    """One plain SELECT of the rows and columns the sweep reads, straight into pandas.

    Plain SQL text, so no SQLAlchemy type processing: the least any sweep must pay.
    """
    sql = text(
        "SELECT t.id, t.issue_id, t.title, t.owner_unit_id, t.start_date, t.due_date, "
        "t.progress_percent AS percent, t.done, t.interview_requested_at, t.escalated_at, "
        "t.next_action_on "
        "FROM task_node t JOIN issue i ON i.id = t.issue_id "
        "WHERE t.level = 'action_item' AND t.done = :no AND i.stage = 'executing'"
    )
    with bench.engine.connect() as conn:
        return pd.read_sql(sql, conn, params={"no": False})


def _sweep(bench: Bench):
    with unit_of_work(bench.engine) as session:
        return dispatch_sweep(session, bench.ctx, board=False)


def _cockpit(bench: Bench):
    with unit_of_work(bench.engine) as session:
        return cockpit(session, bench.ctx)


def _written(bench: Bench) -> tuple[int, int, int]:
    """Rows of the trail, the outbox and the warnings: what a sweep writes besides items."""
    with bench.engine.connect() as conn:
        return tuple(
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in (
                TrailEntry.__tablename__,
                OutboxMessage.__tablename__,
                EarlyWarning.__tablename__,
            )
        )


def run(bench: Bench) -> list[Result]:
    bench.status("sweep: baseline SELECT into pandas")
    base, frame = timed(lambda: _same_rows_into_pandas(bench))
    bench.status(f"sweep: first run over {len(frame):,} items")
    before = _written(bench)
    first, result = timed(lambda: _sweep(bench))
    trail, outbox, warnings = (
        after - was for after, was in zip(_written(bench), before, strict=True)
    )
    bench.status("sweep: second run, nothing changed")
    second, again = timed(lambda: _sweep(bench))
    bench.status("sweep: the cockpit report over every open item")
    board_seconds, (table, deviation) = timed(lambda: _cockpit(bench))
    goal = GOAL_SECONDS_PER_MILLION * max(len(frame), 1) / 1_000_000
    summary = result.summary()
    return [
        Result(
            "dispatch sweep, first run",
            first,
            base,
            goal=f"≤ {goal:.2f} s ({GOAL_SECONDS_PER_MILLION:g} s per 1M items)",
            met=first <= goal,
            notes=f"{len(frame):,} items, read {summary['examined']:,}; "
            f"newly red {summary['newly_red']:,}, escalated {summary['escalated']:,}, "
            f"overdue-stage warnings {summary['new_overdue_warnings']:,}; wrote "
            f"{trail:,} trail entries, {outbox:,} outbox rows, {warnings:,} warnings",
            extra={
                "items": len(frame),
                "summary": summary,
                "written": {"trail": trail, "outbox": outbox, "warnings": warnings},
            },
        ),
        Result(
            "dispatch sweep, second run (nothing changed)",
            second,
            first,
            goal=f"≤ {SECOND_RUN_MAX_SHARE:.0%} of the first",
            met=second <= SECOND_RUN_MAX_SHARE * first,
            notes=f"read {again.examined:,} items, newly red {len(again.newly_red)}; "
            "ratio = second / first",
            extra={"summary": again.summary()},
        ),
        Result(
            "task cockpit report (every open item; off the sweep's hot path)",
            board_seconds,
            base,
            goal="— (a report, not the sweep)",
            notes=f"{len(table):,} rows, {len(deviation):,} lagging with reasons; "
            "baseline = the same SELECT into pandas",
        ),
    ]
