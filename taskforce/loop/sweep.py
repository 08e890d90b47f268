"""The weekly dispatch sweep (周调度) and the task cockpit (任务驾驶舱).

Incremental and set-based. An item's colour is derived from its dates and progress
(taskforce/loop/colours.py), so the sweep writes no colours: what it does is take the
red-item steps — the interview (约谈) on an item's first red day, the escalation once it has
been red for the window — and each open item stores the day its next step falls due
(`next_action_on`). So the sweep reads only the open action items whose step day has come,
through an index: a second run with nothing changed reads nothing. Every notification goes
out once per cause, in digests per owner unit.

A full recompute (every open item) runs when the stored days cannot be trusted: the first
sweep after a migration (no `sweep_state`), a changed colour policy (its fingerprint
differs) or a clock earlier than the last run.

The cockpit and the deviation analysis read every open item; they are a report, built by
`cockpit()` (and by `dispatch_sweep(board=True)`, the default, for callers that want both in
one call) — the flow builds them in a task of their own, off the sweep's hot path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import String, cast, func, literal, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.sql.sqltypes import NullType

from taskforce import bulk, events
from taskforce.clock import local_minute
from taskforce.context import Context
from taskforce.emergency.warnings import insert_warnings
from taskforce.idempotency import CommandRecord
from taskforce.loop import red_digest
from taskforce.loop.colours import colours_frame, next_red_step_days
from taskforce.loop.models import (
    PENDING_DECISION,
    Colour,
    Decision,
    Issue,
    ProgressReport,
    Stage,
    SweepState,
    TaskLevel,
    TaskNode,
)
from taskforce.loop.sweep_state import STATE_ID, policy_fingerprint
from taskforce.org.models import Unit
from taskforce.policy.schema import Classification
from taskforce.process import collector_paused
from taskforce.reports.i18n import translator

OVERDUE_STAGE_LABEL = {
    Stage.reported: "coordination not held",
    Stage.coordinating: "coordination not concluded",
    Stage.planning: "plan not filed",
    Stage.evaluating: "evaluation pending",
}


# Ids per IN (...) list: SQLite refuses more than 32,766 bound parameters in its default
# build, and a full-size sweep has hundreds of thousands of lagging items.
IN_CHUNK = 30_000


@dataclass
class SweepResult:
    items: int = 0
    colours: dict[str, int] = field(default_factory=dict)
    newly_red: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    overdue_stages: list[dict] = field(default_factory=list)  # the report's (fill_board)
    new_overdue: int = 0
    cockpit: pd.DataFrame | None = None
    deviation: pd.DataFrame | None = None
    examined: int = 0  # open action items the sweep read (all of them on a full recompute)
    full: bool = False  # a full recompute (no state yet, policy changed, clock went back)

    def summary(self) -> dict:
        return {
            "items": self.items,
            "colours": self.colours,
            "newly_red": len(self.newly_red),
            "escalated": len(self.escalated),
            "overdue_stages": len(self.overdue_stages),
            "new_overdue_warnings": self.new_overdue,
            "examined": self.examined,
            "full_recompute": self.full,
        }


def _days(values) -> np.ndarray:
    """Dates as numpy days: date objects (PostgreSQL) or ISO text (SQLite); None → NaT.
    numpy, not pandas: 9999-12-31 (colours.NEVER) is beyond pandas' nanosecond range."""
    values = pd.Series(values).to_numpy(dtype=object, na_value=None)
    try:  # numpy parses ISO days and date objects itself, None as NaT
        return np.array(values, dtype="datetime64[D]")
    except (TypeError, ValueError):
        pass
    return np.array(
        [None if v is None or v is pd.NA or v != v else str(v)[:10] for v in values],
        dtype="datetime64[D]",
    )


# The columns the sweep and the cockpit read, in frame order (`percent` is progress_percent).
ITEM_COLUMNS = (
    "id",
    "issue_id",
    "title",
    "owner_unit_id",
    "start_date",
    "due_date",
    "percent",
    "done",
    "interview_requested_at",
    "escalated_at",
    "next_action_on",
)
_ITEM_SELECT = (
    "SELECT t.id, t.issue_id, t.title, t.owner_unit_id, t.start_date, t.due_date, "
    "t.progress_percent, t.done, t.interview_requested_at, t.escalated_at, t.next_action_on "
    f"FROM {TaskNode.__tablename__} t JOIN {Issue.__tablename__} i ON i.id = t.issue_id "
    "WHERE t.level = {mark} AND t.done = {mark} AND i.stage = {mark}"
)
# Two index range reads of ix_task_node_action_due rather than one OR, which SQLite answers
# by scanning every open item.
_DUE_BY = (
    " AND t.next_action_on <= {mark}",
    " AND t.next_action_on IS NULL",
)


def _as_dates(values: pd.Series) -> pd.Series:
    """A DATE column's values as SQLAlchemy's Date returns them: date objects (SQLite stores
    ISO text), None for NULL. Each distinct day converted once: there are few of them.
    (next_action_on stays raw: `_days` reads either form.)"""
    known = {
        v: dt.date.fromisoformat(v) if isinstance(v, str) else v for v in values.dropna().unique()
    }
    return pd.Series(
        [None if v is None else known.get(v, v) for v in values.tolist()],
        index=values.index,
        dtype=object,
    )


def _open_items(session: Session, due_by=None) -> pd.DataFrame:
    """Open action items of executing issues: all of them, or (`due_by` a day) only those
    whose red-item step falls due by that day (or whose day is not known).

    Read with the DBAPI cursor, each column converted once as a whole: SQLAlchemy's rows
    and per-value processing were half the cost of the sweep's read (the three datetime
    columns stay raw text or driver datetimes and are parsed by pandas in one pass)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    base = _ITEM_SELECT.format(mark=mark)
    params = (TaskLevel.action_item.value, False, Stage.executing.value)
    if due_by is None:
        queries = [(base, params)]
    else:
        day = due_by.isoformat()
        queries = [
            (base + extra.format(mark=mark), params + ((day,) if "{mark}" in extra else ()))
            for extra in _DUE_BY
        ]
    cursor = session.connection().connection.driver_connection.cursor()
    rows: list = []
    try:
        for sql, values in queries:
            cursor.execute(sql, values)
            rows += cursor.fetchall()
    finally:
        cursor.close()
    frame = pd.DataFrame.from_records(rows, columns=list(ITEM_COLUMNS))
    frame = frame.drop_duplicates("id", ignore_index=True)
    if sqlite:  # psycopg returns date objects already
        for col in ("start_date", "due_date"):
            frame[col] = _as_dates(frame[col])
    frame["done"] = frame["done"].astype(bool)
    for col in ("interview_requested_at", "escalated_at"):
        # At microseconds, as stored: pandas 3 infers whole seconds from a column of None
        # or of whole-second times, and then refuses the clock's now (an operator trial:
        # the deployed sweep failed every run).
        frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601").dt.as_unit("us")
    frame["start_date"] = frame["start_date"].fillna(frame["due_date"])
    return frame


def _state(session: Session) -> SweepState | None:
    return session.get(SweepState, STATE_ID, with_for_update=True)


def dispatch_sweep(
    session: Session,
    ctx: Context,
    *,
    actor: str = "dispatch-sweep",
    board: bool = True,
    full: bool = False,
) -> SweepResult:
    """Interview and escalate red items, warn about overdue stages — incrementally.

    `board=True` also builds the cockpit, the deviation analysis and the colour counts over
    every open item (a report that reads them all); `full=True` forces a full recompute.
    """
    now = ctx.now()
    result = SweepResult()
    state = _state(session)
    fingerprint = policy_fingerprint(ctx.policy)
    result.full = (
        full or state is None or state.policy_fingerprint != fingerprint or state.last_run_at > now
    )
    # Hundreds of thousands of rows built and dropped: see taskforce/process.py.
    with _roomy_page_cache(session), collector_paused():
        _sweep_items(session, ctx, result, actor, full=result.full)
        _warn_overdue_stages(session, ctx, result, actor)
    if state is None:
        session.add(SweepState(id=STATE_ID, policy_fingerprint=fingerprint, last_run_at=now))
    else:
        state.policy_fingerprint, state.last_run_at = fingerprint, now
    session.flush()
    if board:
        fill_board(session, ctx, result)
    return result


# SQLite's page cache for the sweep's transaction, in KiB (the default is 2 MiB). A full-size
# first sweep touches tens of thousands of table and index pages: with the default cache they
# were read, evicted and spilled to the WAL mid-transaction, then read again by the write-back
# (measured: benchmarks/RESULTS.md). Only memory: durability settings are untouched.
SWEEP_PAGE_CACHE_KIB = 256 * 1024


@contextlib.contextmanager
def _roomy_page_cache(session: Session):
    """A larger SQLite page cache for the sweep's statements; the connection's own size is
    restored afterwards (pages already dirty stay in memory until the commit writes them)."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    raw = session.connection().connection.driver_connection
    (before,) = raw.execute("PRAGMA cache_size").fetchone()
    raw.execute(f"PRAGMA cache_size = {-int(SWEEP_PAGE_CACHE_KIB)}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size = {int(before)}")


def _sweep_items(
    session: Session, ctx: Context, result: SweepResult, actor: str, *, full: bool
) -> None:
    """Take the red-item steps of the items whose step day has come, and write back."""
    today = ctx.today()
    items = _open_items(session, due_by=None if full else today)
    result.examined = len(items)
    if len(items):
        items["colour"] = colours_frame(items, today, ctx.policy.progress)
        steps = _take_red_steps(session, ctx, items)
        # The items are written before anything goes to the trail. A progress report locks
        # its item, then the trail head: a sweep holding the head while it waited for an item
        # a report holds would wait in a circle with it (PostgreSQL aborts one of the two).
        _write_items(session, ctx, items, steps.stepped, full=full)
        _announce_red_steps(session, ctx, steps, result, actor)


def fill_board(session: Session, ctx: Context, result: SweepResult) -> SweepResult:
    """The report part of the weekly dispatch, over every open item: the cockpit, the
    deviation analysis and the colour counts (of today), and every overdue stage."""
    result.cockpit, result.deviation = cockpit(session, ctx)
    result.overdue_stages = overdue_stages(session, ctx)
    counts = result.cockpit["colour"].value_counts()
    result.items = len(result.cockpit)
    result.colours = {c.value: int(counts.get(c.value, 0)) for c in Colour}
    return result


def _write_items(
    session: Session, ctx: Context, items: pd.DataFrame, stepped: np.ndarray, *, full: bool
) -> None:
    """Write back every read item whose red-item steps or step day changed, with the driver's
    executemany, values formatted as numpy vectors. (SQLAlchemy's per-row parameter
    processing was most of the cost of separate bulk UPDATEs.)"""
    action = next_red_step_days(items, ctx.policy.progress)
    stored = _days(items["next_action_on"])
    moved = ~((action == stored) | (np.isnat(action) & np.isnat(stored)))
    dirty = stepped | moved
    if not dirty.any():
        return
    sqlite = session.get_bind().dialect.name == "sqlite"
    # In id order: consecutive updates then share table pages, which the database has
    # just read (the due items are spread over the whole table).
    chosen = np.flatnonzero(dirty)
    chosen = chosen[np.argsort(items["id"].to_numpy()[chosen], kind="stable")]
    rows = items.iloc[chosen]
    values = {
        **{c: np.array(_driver_times(rows[c], sqlite), dtype=object) for c in _TIME_COLUMNS},
        "next_action_on": np.array(_driver_days(action[chosen]), dtype=object),
    }
    ids = rows["id"].astype("int64").to_numpy(object)
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        if not sqlite:
            _write_items_postgresql(cursor, values, ids, by_lookups=_by_lookups(full, len(ids)))
            return
        names = list(values)
        cursor.executemany(
            f"UPDATE {TaskNode.__tablename__} SET "
            + ", ".join(f"{n} = ?" for n in names)
            + " WHERE id = ?",
            list(zip(*(values[n] for n in names), ids, strict=True)),
        )
    finally:
        cursor.close()


def _write_items_postgresql(
    cursor, values: dict[str, np.ndarray], ids: np.ndarray, *, by_lookups: bool
) -> None:
    """PostgreSQL: the new values through COPY into a temporary table, then one UPDATE … FROM
    (an executemany is a statement per row, even pipelined)."""
    names = list(values)
    cursor.execute(
        "CREATE TEMPORARY TABLE sweep_item_write (id bigint PRIMARY KEY, "
        "interview_requested_at timestamptz, escalated_at timestamptz, next_action_on date) "
        "ON COMMIT DROP"
    )
    bulk.copy_rows(
        cursor,
        "sweep_item_write",
        ["id", *names],
        zip(ids, *(values[n] for n in names), strict=True),
    )
    # The rows were read without a lock (SQLite's sweep holds the write lock; PostgreSQL's
    # does not): a step a progress report took meanwhile is kept, not written over with the
    # NULL the sweep read, and an item completed meanwhile is left as its report left it.
    kept = {"interview_requested_at", "escalated_at"}
    with _index_lookups_only(cursor) if by_lookups else contextlib.nullcontext():
        cursor.execute(
            f"UPDATE {TaskNode.__tablename__} AS t SET "
            + ", ".join(
                f"{n} = COALESCE(t.{n}, w.{n})" if n in kept else f"{n} = w.{n}" for n in names
            )
            + " FROM sweep_item_write AS w WHERE t.id = w.id AND NOT t.done"
        )
    # Dropped at once (not only at commit): a second sweep in the same transaction makes it
    # again. After an error the transaction is void and the table goes with it.
    cursor.execute("DROP TABLE sweep_item_write")


# The planner settings that `_index_lookups_only` turns off for one statement.
_JOINS_BY_SCAN = ("enable_hashjoin", "enable_mergejoin")
# Rows written back by index lookups at most: about 3 µs a row here (26,037 in 0.08 s),
# so 100,000 cost about what the hash join's scan of 1.2M items did (0.5 s). A sweep after a
# long pause may find more due: the planner chooses then.
LOOKUP_ROWS_MAX = 100_000


def _by_lookups(full: bool, rows: int) -> bool:
    """Whether the write-back joins by primary-key lookups (`_index_lookups_only`)."""
    return not full and rows <= LOOKUP_ROWS_MAX


@contextlib.contextmanager
def _index_lookups_only(cursor):
    """PostgreSQL: join by primary-key lookups for the statements inside, then put the
    transaction's settings back (not after an error: the transaction is void then).

    An incremental sweep writes back a few percent of the items (those due). With the
    default random_page_cost the planner scans every row into a hash join instead: measured
    on the full dataset, the join took 0.48-0.54 s that way and 0.08 s by lookups
    (benchmarks/RESULTS.md, session 15). A full recompute writes most items, and a sweep
    after a long pause may write many: past LOOKUP_ROWS_MAX the planner chooses."""
    cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in _JOINS_BY_SCAN))
    before = cursor.fetchone()
    cursor.execute(
        "SELECT " + ", ".join(f"set_config('{name}', 'off', true)" for name in _JOINS_BY_SCAN)
    )
    yield  # on an error the transaction is void, and its settings go with it
    cursor.execute(
        "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in _JOINS_BY_SCAN),
        before,
    )


_TIME_COLUMNS = ("interview_requested_at", "escalated_at")


def _driver_times(values: pd.Series, sqlite: bool) -> list:
    """Aware UTC times as the driver stores them for UTCDateTime: SQLAlchemy's naive-UTC text
    on SQLite, ISO text with +00:00 on PostgreSQL (cast to timestamptz by the server)."""
    arr = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
    text = np.datetime_as_string(arr, unit="us").astype(object)
    text = np.char.replace(text.astype(str), "T", " ").astype(object) if sqlite else text + "+00:00"
    text[np.isnat(arr)] = None
    return list(text)


def _driver_days(values: np.ndarray) -> list:
    text = np.datetime_as_string(values.astype("datetime64[D]")).astype(object)
    text[np.isnat(values)] = None
    return list(text)


class IssueRow(NamedTuple):
    id: int
    number: str
    title: str
    classification: Classification


def _issue_rows(session: Session, ids: list[int]) -> dict[int, IssueRow]:
    """The four columns the events use of these issues, by id: DBAPI rows, not ORM objects
    nor SQLAlchemy rows (tens of thousands at full size; SQLAlchemy's expanding IN and row
    processing were most of this read)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    levels = {c.value: c for c in Classification}
    out: dict[int, IssueRow] = {}
    ids = [int(i) for i in ids]
    select_issues = f"SELECT id, number, title, classification FROM {Issue.__tablename__} "
    if sqlite:
        queries = [
            (select_issues + f"WHERE id IN ({', '.join([mark] * len(chunk))})", chunk)
            for chunk in bulk.chunks(ids, IN_CHUNK)
        ]
    else:  # one array parameter (bulk.member_clauses): no list of thousands to plan
        queries = [(select_issues + "WHERE id = ANY(%s)", (ids,))]
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        for sql, params in queries:
            cursor.execute(sql, params)
            for issue_id, number, title, classification in cursor.fetchall():
                out[issue_id] = IssueRow(issue_id, number, title, levels[classification])
    finally:
        cursor.close()
    return out


class _RedSteps(NamedTuple):
    """The red-item steps a sweep takes: which rows of its frame stepped, and the items whose
    interview it requests (`fresh`) and that it escalates (`overdue`), in id order."""

    stepped: np.ndarray
    fresh: pd.DataFrame
    overdue: pd.DataFrame


def _take_red_steps(session: Session, ctx: Context, items: pd.DataFrame) -> _RedSteps:
    """Decide the interviews and escalations due, and mark them in the frame's step columns
    (written by `_write_items`, announced by `_announce_red_steps`)."""
    now, today = ctx.now(), np.datetime64(ctx.today(), "D")
    stepped = np.zeros(len(items), dtype=bool)
    red = items[items["colour"] == Colour.red.value]
    if red.empty:
        return _RedSteps(stepped, red, red)
    # By id: the digests and the warnings' ids then come out the same on every run.
    fresh = red[red["interview_requested_at"].isna()].sort_values("id")
    # Red for the window (escalation_day), counted from the first red day, not from the
    # sweep that saw it: a weekly sweep finds an item red for six days ready to escalate,
    # and requests its interview in the same run.
    window = np.timedelta64(ctx.policy.progress.red_escalation_days, "D")
    escalation_due = pd.to_datetime(red["due_date"]).to_numpy("datetime64[D]") + 1 + window
    overdue = red[red["escalated_at"].isna().to_numpy() & (escalation_due <= today)]
    overdue = overdue.sort_values("id")
    if session.get_bind().dialect.name == "postgresql":
        fresh, overdue = _still_due(session, fresh, overdue)
    if not fresh.empty:
        items.loc[fresh.index, "interview_requested_at"] = pd.Timestamp(now)
        stepped[items.index.get_indexer(fresh.index)] = True
    if not overdue.empty:
        items.loc[overdue.index, "escalated_at"] = pd.Timestamp(now)
        stepped[items.index.get_indexer(overdue.index)] = True
    return _RedSteps(stepped, fresh, overdue)


def _announce_red_steps(
    session: Session, ctx: Context, steps: _RedSteps, result: SweepResult, actor: str
) -> None:
    """Request interviews for newly red items and escalate those red for the window, with
    an orange warning each; announced in one digest per owner unit (taskforce/loop/
    red_digest.py)."""
    fresh, overdue = steps.fresh, steps.overdue
    if fresh.empty and overdue.empty:
        return
    # Only the issues of items that need a notification: loading every red item's issue as
    # an ORM object cost seconds at 1,000,000 items (benchmarks/RESULTS.md).
    wanted = pd.concat([fresh["issue_id"], overdue["issue_id"]]).unique().tolist()
    issues = _issue_rows(session, wanted)
    units = {
        row.id: red_digest.Unit(row.code, row.name, row.name_en)
        for row in session.execute(select(Unit.id, Unit.code, Unit.name, Unit.name_en))
    }
    records: list[dict] = []
    if not fresh.empty:
        records += red_digest.turned_red_digests(
            ctx, _red_items(fresh, issues, _iso_days(fresh["due_date"])), units, actor=actor
        )
        result.newly_red = [int(i) for i in fresh["id"]]
    if not overdue.empty:
        # Red since the day after the due day (colours.red_since).
        escalated = _red_items(overdue, issues, _iso_days(overdue["due_date"], plus=1))
        warning_ids = insert_warnings(session, ctx, _escalation_warnings(ctx, escalated, actor))
        escalated = [
            i._replace(warning_id=warning_ids.get(_escalation_key(i.item_id))) for i in escalated
        ]
        records += red_digest.escalated_digests(ctx, escalated, units, actor=actor)
        result.escalated = [int(i) for i in overdue["id"]]
    events.record_many(session, ctx.policy, records)


def _still_due(
    session: Session, fresh: pd.DataFrame, overdue: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PostgreSQL: lock the items about to be stepped and keep those whose step is still due.

    The sweep reads its items without a lock (SQLite's sweep holds the database's write lock
    from its first statement; PostgreSQL's does not). A progress report takes its item's row
    lock (`feedback.report_progress`) and may request the interview or complete the item:
    committed after the sweep's read, the sweep would send a second interview notice, or an
    orange warning about a finished item. Locked here, in id order (as the write-back goes),
    a report committed meanwhile is seen, and one arriving later waits for the sweep's commit
    and then sees the steps taken."""
    ids = sorted({int(i) for i in fresh["id"]} | {int(i) for i in overdue["id"]})
    if not ids:
        return fresh, overdue
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        cursor.execute(
            f"SELECT id, done, interview_requested_at IS NULL, escalated_at IS NULL "
            f"FROM {TaskNode.__tablename__} WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (ids,),
        )
        now = {row[0]: row[1:] for row in cursor.fetchall()}
    finally:
        cursor.close()
    interview_due = {i for i, (done, no_interview, _) in now.items() if not done and no_interview}
    escalation_due = {
        i for i, (done, _, no_escalation) in now.items() if not done and no_escalation
    }
    return (
        fresh[fresh["id"].astype("int64").isin(interview_due)],
        overdue[overdue["id"].astype("int64").isin(escalation_due)],
    )


def _iso_days(dates: pd.Series, plus: int = 0) -> list[str]:
    """date objects (None for none) as ISO days `plus` days later, "" for none: one numpy
    pass, not a Python call per item."""
    days = pd.to_datetime(dates).to_numpy("datetime64[D]") + np.timedelta64(plus, "D")
    return [day or "" for day in _driver_days(days)]


def _red_items(
    rows: pd.DataFrame, issues: dict[int, IssueRow], overdue_since: list[str]
) -> list[red_digest.RedItem]:
    # Columns as lists, not itertuples: iterating pandas' string columns row by row was a
    # visible share of the sweep at full size.
    return [
        red_digest.RedItem(
            item_id=int(item_id),
            issue_number=issues[issue_id].number,
            classification=issues[issue_id].classification,
            title=title,
            owner_unit_id=None if owner is None or owner != owner else int(owner),
            overdue_since=since,
        )
        for item_id, issue_id, title, owner, since in zip(
            *(rows[c].tolist() for c in ("id", "issue_id", "title", "owner_unit_id")),
            overdue_since,
            strict=True,
        )
    ]


def _escalation_key(item_id: int) -> str:
    return f"task:{item_id}:red-escalation"


def _short(title: str, limit: int = 60) -> str:
    """An item's title inside a warning's title (the warning's own is at most 300)."""
    return title if len(title) <= limit else title[: limit - 1] + "…"


def _escalation_warnings(
    ctx: Context, escalated: list[red_digest.RedItem], actor: str
) -> list[dict]:
    """A warning per escalated item (red_digest.ESCALATION_COLOUR), titled in the office's
    language (policy.locale), as reports and messages show it."""
    red_days = ctx.policy.progress.red_escalation_days
    title_of = functools.partial(translator(ctx.policy.locale), "warning_title.item_red")
    return [
        {
            "colour": red_digest.ESCALATION_COLOUR,
            "source": "sweep",
            "subject_type": "task",
            "subject_id": i.item_id,
            "classification": i.classification,
            "actor": actor,
            "title": title_of(
                issue=i.issue_number, item=i.item_id, title=_short(i.title), days=red_days
            ),
            "dedup_key": _escalation_key(i.item_id),
        }
        for i in escalated
    ]


class _OverdueStage(NamedTuple):
    number: str
    title: str
    stage: Stage
    round: int
    due_at: dt.datetime
    classification: str


def _overdue_stage_rows(
    session: Session, now: dt.datetime, *, unwarned_only: bool
) -> list[_OverdueStage]:
    """Issues whose stage is past its deadline (all, or only those not warned yet).

    One query over the (stage, stage_due_at) index, each row joined to its warning's command
    record by primary key: no list of thousands of keys sent back to the database. (Not a
    "since the last sweep" shortcut: an issue entered with earlier times after that sweep —
    an import, a backdated report — must still be warned.)"""
    key = (
        literal("overdue:")
        + Issue.number
        + literal(":")
        + type_coerce(Issue.stage, String)
        + literal(":")
        + cast(Issue.round, String)
    )
    columns = (
        Issue.number,
        Issue.title,
        Issue.stage,
        Issue.round,
        Issue.stage_due_at,
        Issue.classification,
    )
    stmt = (
        # Raw values (no per-value type processing, thousands of rows): the times are
        # parsed below as one column.
        select(*(type_coerce(c, NullType()).label(c.key) for c in columns))
        .select_from(Issue)
        .outerjoin(CommandRecord, CommandRecord.key == key)
        .where(Issue.stage.in_(list(OVERDUE_STAGE_LABEL)), Issue.stage_due_at < now)
    )
    if unwarned_only:
        stmt = stmt.where(CommandRecord.key.is_(None))
    rows = session.execute(stmt).all()
    if not rows:
        return []
    due_at = pd.to_datetime([r.stage_due_at for r in rows], utc=True, format="ISO8601")
    stages = {s.value: s for s in OVERDUE_STAGE_LABEL}
    return [
        _OverdueStage(r.number, r.title, stages[r.stage], r.round, at, r.classification)
        for r, at in zip(rows, due_at.to_pydatetime(), strict=True)
    ]


def overdue_stages(session: Session, ctx: Context) -> list[dict]:
    """Every stage past its deadline (coordination not held, plan not filed, evaluation
    pending): the dispatch report's list, built with the cockpit (`fill_board`)."""
    now = ctx.now()
    return [
        {
            "issue": o.number,
            "stage": o.stage.value,
            "what": OVERDUE_STAGE_LABEL[o.stage],
            "due": o.due_at.isoformat(),
            "late_days": (now - o.due_at).days,
        }
        for o in _overdue_stage_rows(session, now, unwarned_only=False)
    ]


def _warn_overdue_stages(session: Session, ctx: Context, result: SweepResult, actor: str) -> None:
    """Warn once per (issue, stage, round) whose stage is past its deadline: only those not
    warned yet are read (the full list is the report's, `overdue_stages`)."""
    now = ctx.now()
    records, commands = [], []
    for o in _overdue_stage_rows(session, now, unwarned_only=True):
        stage = o.stage.value
        commands.append(
            CommandRecord(
                key=f"overdue:{o.number}:{stage}:{o.round}",
                command="sweep.overdue",
                result={"stage": stage},
                at=now,
            )
        )
        records.append(
            {
                "at": now,
                "actor": actor,
                "action": "stage.overdue",
                "subject_type": "issue",
                "subject_id": o.number,
                "classification": Classification(o.classification),
                "notify": "stage_overdue",
                "payload": {"stage": stage, "due": o.due_at, "round": o.round},
                "context": {
                    "issue": o.number,
                    "title": o.title,
                    "stage": stage,  # the template names it in the reader's words
                    "what": OVERDUE_STAGE_LABEL[o.stage],
                    "due": local_minute(o.due_at, ctx.policy.timezone),
                },
            }
        )
        result.new_overdue += 1
    session.add_all(commands)
    events.record_many(session, ctx.policy, records)
    session.flush()


def cockpit(
    session: Session, ctx: Context, items: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cockpit table and the deviation analysis (偏差分析) of late and behind items."""
    today = ctx.today()
    if items is None:
        items = _open_items(session)
        if len(items):
            items["colour"] = colours_frame(items, today, ctx.policy.progress)
    columns = [
        "issue",
        "classification",  # the issue's: the UI withholds what its readers are not cleared for
        "item_id",
        "item",
        "owner",
        "due",
        "colour",
        "percent",
        "expected",
        "deviation",
        "days_late",
    ]
    if items.empty:
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=[*columns, "reason"])
    issues = pd.DataFrame(
        [
            row
            for chunk in bulk.chunks(items["issue_id"].unique().tolist(), IN_CHUNK)
            for row in session.execute(
                select(Issue.id, Issue.number, Issue.classification).where(Issue.id.in_(chunk))
            ).all()
        ],
        columns=["issue_id", "issue", "classification"],
    )
    issues["classification"] = [Classification(c).value for c in issues["classification"]]
    units = pd.DataFrame(
        session.execute(select(Unit.id, Unit.name)).all(), columns=["owner_unit_id", "owner"]
    )
    frame = items.merge(issues, on="issue_id", how="left").merge(
        units, on="owner_unit_id", how="left"
    )
    start = pd.to_datetime(frame["start_date"]).to_numpy("datetime64[D]")
    due = pd.to_datetime(frame["due_date"]).to_numpy("datetime64[D]")
    now = np.datetime64(today, "D")
    span = np.maximum((due - start).astype("int64"), 1)
    frame["expected"] = (
        np.clip((now - start).astype("int64") * 100 / span, 0, 100).round().astype(int)
    )
    frame["deviation"] = frame["percent"] - frame["expected"]
    frame["days_late"] = np.maximum((now - due).astype("int64"), 0)
    frame = frame.rename(columns={"id": "item_id", "title": "item", "due_date": "due"})
    table = frame[columns].sort_values(
        ["colour", "days_late", "deviation"],
        ascending=[True, False, True],
        key=lambda s: s.map({"red": 0, "yellow": 1, "green": 2}) if s.name == "colour" else s,
    )
    lagging = table[table["colour"] != Colour.green.value]
    if lagging.empty:
        return table.reset_index(drop=True), pd.DataFrame(columns=[*columns, "reason"])
    rows = []
    for chunk in bulk.chunks(lagging["item_id"].astype(int).tolist(), IN_CHUNK):
        latest = (
            select(ProgressReport.task_id, func.max(ProgressReport.id).label("pid"))
            .where(ProgressReport.task_id.in_(chunk))
            .group_by(ProgressReport.task_id)
            .subquery()
        )
        rows += session.execute(
            select(latest.c.task_id, ProgressReport.note).join(
                ProgressReport, ProgressReport.id == latest.c.pid
            )
        ).all()
    notes = pd.DataFrame(rows, columns=["item_id", "reason"])
    deviation = lagging.merge(notes, on="item_id", how="left")
    deviation["reason"] = deviation["reason"].fillna("").replace("", "(no progress report)")
    return table.reset_index(drop=True), deviation.reset_index(drop=True)


def stage_of_issues(session: Session) -> pd.DataFrame:
    """Which issues wait for which step, and since when — for operators at a glance."""
    from taskforce.loop.states import NEXT_STEP

    # A major matter in coordination waits for the leadership group's vote, not for another
    # coordination (a re-trial: the board said "coordinate" where the lifecycle said the vote).
    vote_pending = (
        select(Decision.id)
        .where(
            Decision.issue_id == Issue.id,
            Decision.round == Issue.round,
            Decision.status.in_(PENDING_DECISION),
        )
        .exists()
    )
    frame = pd.read_sql(
        select(
            Issue.number,
            Issue.title,
            Issue.classification,
            Issue.stage,
            Issue.stage_entered_at,
            Issue.stage_due_at,
            vote_pending.label("vote_pending"),
        )
        .where(Issue.stage != Stage.closed)
        .order_by(Issue.stage_entered_at),
        session.connection(),
    )
    frame["classification"] = [Classification(c).value for c in frame["classification"]]
    frame["stage"] = frame["stage"].astype(str).str.replace("Stage.", "", regex=False)
    frame["waits_for"] = [
        "leadership_vote"
        if pending and stage == Stage.coordinating.value
        else NEXT_STEP[Stage(stage)]
        for stage, pending in zip(frame["stage"], frame["vote_pending"].astype(bool), strict=True)
    ]
    return frame.drop(columns="vote_pending")
