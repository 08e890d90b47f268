"""Action-item colours (SPEC §2.4 执行反馈): green on track, yellow behind or due soon, red overdue.

A colour is derived, never stored: it is a function of the item's dates, its reported
progress and today (and so is "red since": the day after the due date). One rule, three
shapes: `colour_of` for a single item, `colours_frame` for a pandas frame (the sweep, the
KPIs, the ledgers) and `colour_sql` for a query (counts and filters in the database).
Property tests keep the three equal.

What is stored is what happened: the red-item steps (interview 约谈, escalation) and the day
the next one falls due (`next_red_step_on`), which the dispatch sweep reads by index.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sqlalchemy import Integer, and_, case, func, literal, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from taskforce.loop.models import Colour, TaskLevel, TaskNode
from taskforce.policy.schema import Progress


def expected_percent(start: dt.date, due: dt.date, today: dt.date) -> float:
    """Time-proportional progress expected by `today` (0–100)."""
    span = (due - start).days
    if span <= 0:
        return 100.0 if today >= due else 0.0
    return float(min(100.0, max(0.0, (today - start).days * 100.0 / span)))


def colour_of(
    *,
    percent: int,
    done: bool,
    start: dt.date | None,
    due: dt.date | None,
    today: dt.date,
    rules: Progress,
) -> Colour:
    """An item without a due date cannot be late or behind: green (as in SQL, where every
    comparison with NULL fails). A missing start counts as the due date (no line)."""
    if done or due is None:
        return Colour.green
    start = due if start is None else start
    if today > due:
        return Colour.red  # 超期: due "by the end of" the due date
    if (due - today).days <= rules.yellow_due_within_days:
        return Colour.yellow
    if expected_percent(start, due, today) - percent >= rules.yellow_behind_expected_points:
        return Colour.yellow
    return Colour.green


def colours_frame(frame: pd.DataFrame, today: dt.date, rules: Progress) -> pd.Series:
    """Vectorised colour_of over columns percent, done, start_date, due_date (a missing
    start_date counts as the due date)."""
    due = pd.to_datetime(frame["due_date"]).to_numpy("datetime64[D]")
    start = pd.to_datetime(frame["start_date"]).to_numpy("datetime64[D]")
    start = np.where(np.isnat(start), due, start)
    now = np.datetime64(today, "D")
    span = (due - start).astype("int64")
    elapsed = (now - start).astype("int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        proportional = np.clip(elapsed * 100.0 / np.where(span > 0, span, 1), 0.0, 100.0)
    expected = np.where(span > 0, proportional, np.where(now >= due, 100.0, 0.0))
    days_left = (due - now).astype("int64")
    percent = frame["percent"].to_numpy("float64")
    # Done, or no due date (NaT compares as the smallest integer): green, as colour_of says.
    done = frame["done"].to_numpy(bool) | np.isnat(due)
    red = ~done & (days_left < 0)
    yellow = (
        ~done
        & ~red
        & (
            (days_left <= rules.yellow_due_within_days)
            | (expected - percent >= rules.yellow_behind_expected_points)
        )
    )
    out = np.where(red, Colour.red.value, np.where(yellow, Colour.yellow.value, Colour.green.value))
    return pd.Series(out, index=frame.index, name="colour")


def red_since(due: dt.date) -> dt.date:
    """The first local day an open item is red: the day after its due date (due "by the end
    of" it). Derived, like the colour: nothing about it is stored."""
    return due + dt.timedelta(days=1)


def escalation_day(due: dt.date, rules: Progress) -> dt.date:
    """The local day an open item has been red for `red_escalation_days` (SPEC §2.4: a red item
    left red past the escalation window goes to the leadership group)."""
    return red_since(due) + dt.timedelta(days=rules.red_escalation_days)


# An open item with no red-item step left (escalated, or no due date) stores this day, so that
# NULL can keep meaning "unknown, compute it" for the sweep (TaskNode.next_action_on).
NEVER = dt.date(9999, 12, 31)


def next_red_step_on(
    *,
    done: bool,
    due: dt.date | None,
    interview_requested_at: dt.datetime | None,
    escalated_at: dt.datetime | None,
    rules: Progress,
) -> dt.date | None:
    """The local day the next red-item step falls due: the interview (约谈) on the first red
    day, the escalation once red for the window, NEVER after it; None for a done item (the
    sweep reads open items only). The sweep reads the items whose day has come (an index on
    this column), so a day in the past means "at the next sweep"."""
    if done:
        return None
    if escalated_at is not None or due is None:
        return NEVER
    if interview_requested_at is None:
        return red_since(due)
    return escalation_day(due, rules)


def next_red_step_days(frame: pd.DataFrame, rules: Progress) -> np.ndarray:
    """Vectorised next_red_step_on over columns done, due_date, interview_requested_at,
    escalated_at (datetime64[D] days: numpy, as NEVER is beyond pandas' range; NaT for None)."""
    due = pd.to_datetime(frame["due_date"]).to_numpy("datetime64[D]")
    interviewed = frame["interview_requested_at"].notna().to_numpy()
    out = np.where(
        interviewed, due + np.timedelta64(1 + rules.red_escalation_days, "D"), due + 1
    ).astype("datetime64[D]")
    out[frame["escalated_at"].notna().to_numpy() | np.isnat(due)] = np.datetime64(NEVER, "D")
    out[frame["done"].to_numpy(bool)] = np.datetime64("NaT", "D")
    return out


# --- the same rule in SQL, for readers that count or filter by colour in the database -------

_DAY_ZERO = dt.date(2000, 1, 1)


class _DayNumber(FunctionElement):
    """Days since 2000-01-01 of a DATE column: SQLite stores ISO text (julianday), PostgreSQL
    subtracts dates. An exact integer either way, for the behind-the-line rule's arithmetic."""

    type = Integer()
    inherit_cache = True


@compiles(_DayNumber, "sqlite")
def _day_number_sqlite(element, compiler, **kw):
    (column,) = element.clauses
    return f"CAST(julianday({compiler.process(column, **kw)}) - 2451544.5 AS INTEGER)"


@compiles(_DayNumber, "postgresql")
def _day_number_postgresql(element, compiler, **kw):
    (column,) = element.clauses
    return f"({compiler.process(column, **kw)} - DATE '2000-01-01')"


def colour_sql(today: dt.date, rules: Progress, node=None):
    """`colour_of` as a SQL CASE over a task_node table (`node`: the TaskNode class, an alias,
    or a table's columns): 'green' / 'yellow' / 'red' for action items, 'green' for goals and sub-projects
    (they have no light of their own; reviews roll their items' colours up).

    The behind-the-line test (expected - percent >= points, expected = clip(elapsed * 100 /
    span, 0, 100)) in integers: elapsed * 100 >= (percent + points) * span, for a threshold
    percent + points in (0, 100] and a positive span; a threshold of 0 or less is always
    behind, one above 100 never (expected is at most 100). A span of 0 or less is behind only
    on or after its due day, which the due window has made yellow already."""
    node = node if node is not None else TaskNode
    start = func.coalesce(node.start_date, node.due_date)
    span = _DayNumber(node.due_date) - _DayNumber(start)
    elapsed = literal((today - _DAY_ZERO).days) - _DayNumber(start)
    threshold = node.progress_percent + rules.yellow_behind_expected_points
    behind = or_(
        threshold <= 0,
        and_(span > 0, threshold <= 100, elapsed * 100 >= threshold * span),
    )
    window_end = today + dt.timedelta(days=rules.yellow_due_within_days)
    return case(
        (node.level != TaskLevel.action_item, literal(Colour.green.value)),
        (node.done.is_(True), literal(Colour.green.value)),
        (node.due_date.is_(None), literal(Colour.green.value)),  # never late, never behind
        (node.due_date < today, literal(Colour.red.value)),
        (node.due_date <= window_end, literal(Colour.yellow.value)),
        (behind, literal(Colour.yellow.value)),
        else_=literal(Colour.green.value),
    )
