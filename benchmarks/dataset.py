"""A seeded dataset at the scale of issue 9, generated set-based.

`python -m benchmarks.dataset [--quick | --scale 0.1] [--db sqlite|postgresql] [--seed 9]`

Every table is built as numpy columns and written in bulk: `executemany` of
tuples on SQLite, `COPY … FROM STDIN` on PostgreSQL — never an ORM object per
row. The schema comes from `taskforce.migrate.upgrade` and the organisation
from `sync_organisation`, so the result is exactly what the application
creates. The decision trail is hashed with `taskforce.trail.service`'s own
functions, so `verify` passes on it.

The scene is "now" = `NOW` (a Monday morning); the stored action-item colours
are those of last week's sweep (`NOW` minus 7 days), so the first sweep of a
benchmark does a realistic week of recolouring and a second one finds nothing.
Every action item is open and belongs to an executing issue: the sweep figure
measures its worst case, all 1,000,000 items in scope.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from taskforce.db import Base
from taskforce.loop.colours import colours_frame
from taskforce.migrate import upgrade
from taskforce.org.models import Group, Unit
from taskforce.org.service import sync_organisation
from taskforce.policy import load_org, load_policy
from taskforce.trail.service import GENESIS, _entry_bytes, canonical_json, compute_hash

NOW = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in Shanghai
YEARS = 3
FULL = {
    "issues": 100_000,
    "action_items": 1_000_000,
    "ledger_entries": 1_000_000,
    "trail_entries": 1_000_000,
    "emergencies": 20_000,
    "budget_lines": 20_000,
}
QUICK_SCALE = 0.01
CHUNK = 50_000

STAGE_SHARES = {  # share of issues in each stage; only executing issues carry action items
    "executing": 0.70,
    "closed": 0.22,
    "reported": 0.02,
    "coordinating": 0.02,
    "planning": 0.02,
    "evaluating": 0.02,
}
TOPICS = [
    "企业开办",
    "工程建设审批",
    "不动产登记",
    "跨境贸易",
    "融资担保",
    "政务数据共享",
    "税费减免",
    "社保转移",
    "用地指标",
    "环评审批",
    "市场准入",
    "信用修复",
    "电子证照",
    "招投标",
    "知识产权",
]
PROBLEMS = [
    "办理时限过长",
    "材料重复提交",
    "系统数据不互通",
    "标准不统一",
    "责任边界不清",
    "资金拨付滞后",
    "窗口人员不足",
    "政策落实不到位",
    "群众投诉集中",
    "跨部门衔接不畅",
]
PLACES = ["东区", "西区", "北区", "南区", "高新区", "开发区", "自贸片区", "港区", "新城", "老城"]
ACTIONS = [
    ("issue.reported", "issue"),
    ("meeting.recorded", "issue"),
    ("decision.recorded", "issue"),
    ("plan.filed", "issue"),
    ("progress.reported", "task"),
    ("progress.reported", "task"),
    ("progress.reported", "task"),
    ("item.turned_red", "task"),
    ("evaluation.recorded", "issue"),
    ("budget.line_reviewed", "budget_line"),
    ("emergency.opened", "emergency"),
    ("sweep.recoloured", "sweep"),
]


@dataclass(frozen=True)
class Scale:
    factor: float
    seed: int

    def n(self, what: str) -> int:
        return max(10, round(FULL[what] * self.factor))

    @property
    def key(self) -> str:
        return f"s{self.seed}-x{self.factor:g}".replace(".", "_")


# ---------------------------------------------------------------- writing


def _column_defaults(table_name: str) -> dict[str, object]:
    table = Base.metadata.tables[table_name]
    out = {}
    for col in table.columns:
        if col.default is not None and col.default.is_scalar:
            arg = col.default.arg
            out[col.name] = getattr(arg, "value", arg)
    return out


def _as_list(values, kind: str, dialect: str) -> list:
    """One column as a Python list in the form the driver stores for the application's types."""
    if kind == "datetime":
        arr = np.asarray(values, dtype="datetime64[us]")
        strings = np.datetime_as_string(arr, unit="us").astype(object)
        strings[np.isnat(arr)] = None
        if dialect == "sqlite":  # SQLAlchemy's SQLite DATETIME text, naive UTC (UTCDateTime)
            return [s.replace("T", " ") if s else None for s in strings]
        return [s + "+00:00" if s else None for s in strings]
    if kind == "date":
        arr = np.asarray(values, dtype="datetime64[D]")
        strings = np.datetime_as_string(arr).astype(object)
        strings[np.isnat(arr)] = None
        return list(strings)
    if kind == "bool":
        arr = np.asarray(values, dtype=bool)
        return arr.astype(int).tolist() if dialect == "sqlite" else arr.tolist()
    if isinstance(values, np.ndarray):
        return values.tolist()
    return list(values)


def _kind(column) -> str:
    from sqlalchemy import Boolean, Date

    from taskforce.db import UTCDateTime

    if isinstance(column.type, UTCDateTime):
        return "datetime"
    if isinstance(column.type, Date):
        return "date"
    if isinstance(column.type, Boolean):
        return "bool"
    return "other"


def write_table(
    engine: Engine,
    table_name: str,
    columns: dict[str, Sequence],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Bulk-write one table from column arrays (missing columns take their model default)."""
    table = Base.metadata.tables[table_name]
    length = len(next(iter(columns.values())))
    defaults = _column_defaults(table_name)
    names, data = [], []
    dialect = engine.dialect.name
    for col in table.columns:
        if col.name in columns:
            values = columns[col.name]
            if len(values) != length:
                raise ValueError(
                    f"{table_name}.{col.name}: {len(values)} values, expected {length}"
                )
            data.append(_as_list(values, _kind(col), dialect))
        elif col.name in defaults:
            value = defaults[col.name]
            if isinstance(value, bool) and dialect == "sqlite":
                value = int(value)
            data.append([value] * length)
        elif col.nullable:
            data.append([None] * length)
        else:
            raise ValueError(f"{table_name}.{col.name} is required and has no default")
        names.append(col.name)
    rows = list(zip(*data, strict=True))
    raw = engine.raw_connection()
    try:
        if dialect == "sqlite":
            cur = raw.cursor()
            cur.execute("BEGIN")
            sql = f"INSERT INTO {table_name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            for start in range(0, length, CHUNK):
                cur.executemany(sql, rows[start : start + CHUNK])
                if progress:
                    progress(min(CHUNK, length - start))
            cur.execute("COMMIT")
        else:
            pg = raw.driver_connection
            with pg.cursor() as cur:
                with cur.copy(f"COPY {table_name} ({', '.join(names)}) FROM STDIN") as copy:
                    for start in range(0, length, CHUNK):
                        for row in rows[start : start + CHUNK]:
                            copy.write_row(row)
                        if progress:
                            progress(min(CHUNK, length - start))
                if "id" in names and table.c.id.autoincrement is not False:
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table_name}', 'id'), "
                        f"(SELECT max(id) FROM {table_name}))"
                    )
            pg.commit()
    finally:
        raw.close()
    return length


# ---------------------------------------------------------------- generating


def _days(n) -> np.ndarray:
    return np.asarray(n, dtype="int64").astype("timedelta64[D]")


def _seconds(n) -> np.ndarray:
    return np.asarray(n, dtype="int64").astype("timedelta64[s]")


def _now64() -> np.datetime64:
    return np.datetime64(NOW.replace(tzinfo=None), "us")


class Generator:
    def __init__(self, engine: Engine, scale: Scale, progress=None) -> None:
        self.engine = engine
        self.scale = scale
        self.rng = np.random.default_rng(scale.seed)
        self.progress = progress  # (label, total) -> advance(n) callable
        self.counts: dict[str, int] = {}

    def _write(self, table: str, columns: dict[str, Sequence]) -> None:
        total = len(next(iter(columns.values())))
        advance = self.progress(f"writing {table}", total) if self.progress else None
        self.counts[table] = self.counts.get(table, 0) + write_table(
            self.engine, table, columns, advance
        )

    def run(self) -> dict[str, int]:
        upgrade(self.engine)
        with Session(self.engine) as s, s.begin():
            sync_organisation(s, load_org())
            self.unit_ids = np.array(s.scalars(select(Unit.id).order_by(Unit.id)).all())
            self.groups = {g.kind.value: g.code for g in s.scalars(select(Group))}
        self.issues()
        self.plans_and_tasks()
        self.emergencies()
        self.budget()
        self.trail()
        return self.counts

    # issues ------------------------------------------------------------
    def issues(self) -> None:
        rng, n = self.rng, self.scale.n("issues")
        stages = np.array(list(STAGE_SHARES))
        stage = rng.choice(stages, size=n, p=list(STAGE_SHARES.values()))
        span_s = YEARS * 365 * 86400
        reported = _now64() - _seconds(rng.integers(14 * 86400, span_s, n))
        early = np.isin(stage, ["reported", "coordinating", "planning", "evaluating"])
        # Issues still in an early stage are recent; a few are overdue (the sweep lists them).
        reported[early] = _now64() - _seconds(rng.integers(86400, 30 * 86400, int(early.sum())))
        reported = np.sort(reported)  # ids in reporting order, like the application
        entered = reported + _seconds(rng.integers(3600, 20 * 86400, n))
        entered = np.minimum(entered, _now64() - _seconds(3600))
        due = np.where(
            early, entered + _days(rng.integers(3, 40, n)), np.datetime64("NaT", "us")
        ).astype("datetime64[us]")
        ids = np.arange(1, n + 1)
        years = reported.astype("datetime64[Y]").astype(int) + 1970
        # Five digits as the application writes them; ids are unique below 100,000 anyway.
        numbers = [
            f"TF-{y}-{i % 100_000:05d}" for y, i in zip(years.tolist(), ids.tolist(), strict=True)
        ]
        titles = self._titles(n)
        units = self.unit_ids
        closed = stage == "closed"
        self._write(
            "issue",
            {
                "id": ids,
                "number": numbers,
                "title": titles,
                "description": [""] * n,
                "category": rng.choice(["approval", "data", "finance", "general"], n),
                "classification": rng.choice(
                    ["public", "internal", "secret"], n, p=[0.3, 0.65, 0.05]
                ),
                "reporting_unit_id": rng.choice(units, n),
                "lead_unit_id": rng.choice(units, n),
                "estimated_budget_fen": rng.integers(0, 500_000_00, n),
                "stage": stage,
                "stage_entered_at": entered,
                "stage_due_at": due,
                "reported_at": reported,
                "first_response_at": reported + _seconds(rng.integers(600, 86400, n)),
                "closed_at": np.where(closed, entered, np.datetime64("NaT", "us")).astype(
                    "datetime64[us]"
                ),
                "major": rng.random(n) < 0.05,
                "origin": rng.choice(["report", "emergency", "review", "import"], n),
            },
        )
        self.issue_stage = stage
        self.issue_numbers = numbers
        self.issue_reported = reported

    def _titles(self, n: int) -> list[str]:
        rng = self.rng
        t = np.array(TOPICS)[rng.integers(0, len(TOPICS), n)]
        p = np.array(PROBLEMS)[rng.integers(0, len(PROBLEMS), n)]
        place = np.array(PLACES)[rng.integers(0, len(PLACES), n)]
        serial = rng.integers(1, 10_000, n)
        return [
            f"{a}{b}{c}（第{s}号线索）"
            for a, b, c, s in zip(
                place.tolist(), t.tolist(), p.tolist(), serial.tolist(), strict=True
            )
        ]

    # plans and the task tree --------------------------------------------
    def plans_and_tasks(self) -> None:
        rng = self.rng
        executing = np.flatnonzero(self.issue_stage == "executing") + 1  # issue ids
        e = len(executing)
        filed = self.issue_reported[executing - 1] + _days(rng.integers(5, 20, e))
        filed = np.minimum(filed, _now64() - _days(7))
        self._write(
            "plan",
            {
                "id": np.arange(1, e + 1),
                "issue_id": executing,
                "round": np.ones(e, dtype=int),
                "filed_at": filed,
                "due_date": filed.astype("datetime64[D]"),
                "on_time": rng.random(e) < 0.9,
            },
        )
        # One goal and two sub-projects per plan, then the action items under them.
        plan_ids = np.arange(1, e + 1)
        goal_ids = plan_ids
        sub_a, sub_b = e + 2 * plan_ids - 1, e + 2 * plan_ids
        units = self.unit_ids
        filed_day = filed.astype("datetime64[D]")
        self._write(
            "task_node",
            {
                "id": goal_ids,
                "plan_id": plan_ids,
                "issue_id": executing,
                "parent_id": [None] * e,
                "level": ["goal"] * e,
                "title": ["总目标"] * e,
                "owner_unit_id": rng.choice(units, e),
            },
        )
        subs = np.empty(2 * e, dtype=int)
        subs[0::2], subs[1::2] = sub_a, sub_b
        self._write(
            "task_node",
            {
                "id": subs,
                "plan_id": np.repeat(plan_ids, 2),
                "issue_id": np.repeat(executing, 2),
                "parent_id": np.repeat(goal_ids, 2),
                "level": ["sub_project"] * (2 * e),
                "title": ["子项目"] * (2 * e),
                "owner_unit_id": rng.choice(units, 2 * e),
            },
        )
        n = self.scale.n("action_items")
        plan_of = np.sort(rng.integers(0, e, n))  # index into plans
        # Items of a long-running issue belong to its current phase: started in the last ten months.
        start = np.maximum(
            filed_day[plan_of],
            (_now64() - _days(rng.integers(8, 300, n))).astype("datetime64[D]"),
        )
        start = np.minimum(start, (_now64() - _days(8)).astype("datetime64[D]"))
        due = start + _days(rng.integers(30, 400, n))
        last_week = (NOW - dt.timedelta(days=7)).astimezone(dt.UTC)
        today_last_week = (last_week + dt.timedelta(hours=8)).date()  # Asia/Shanghai
        elapsed = (np.datetime64(today_last_week, "D") - start).astype(int)
        span = np.maximum((due - start).astype(int), 1)
        expected = np.clip(elapsed * 100 / span, 0, 100)
        percent = np.clip(expected + rng.normal(0, 15, n), 0, 99).round().astype(int)
        frame = pd.DataFrame(
            {"start_date": start, "due_date": due, "percent": percent, "done": False}
        )
        colour = colours_frame(frame, today_last_week, load_policy().progress).to_numpy()
        red = colour == "red"
        red_since = (due + _days(1)).astype("datetime64[us]") + _seconds(3600)
        colour_since = np.where(red, red_since, start.astype("datetime64[us]"))
        window = _days(load_policy().progress.red_escalation_days)
        nat = np.datetime64("NaT", "us")
        escalated = red & (red_since <= _now64() - _days(7) - window)
        first = 3 * e + 1
        self._write(
            "task_node",
            {
                "id": np.arange(first, first + n),
                "plan_id": plan_ids[plan_of],
                "issue_id": executing[plan_of],
                "parent_id": np.where(rng.random(n) < 0.5, sub_a[plan_of], sub_b[plan_of]),
                "level": ["action_item"] * n,
                "title": [f"行动项{i}" for i in range(1, n + 1)],
                "owner_unit_id": rng.choice(units, n),
                "start_date": start,
                "due_date": due,
                "deliverable": ["按期交付"] * n,
                "progress_percent": percent,
                "done": np.zeros(n, dtype=bool),
                "colour": colour,
                "colour_since": colour_since,
                "interview_requested_at": np.where(red, red_since, nat).astype("datetime64[us]"),
                "escalated_at": np.where(escalated, red_since + window, nat).astype(
                    "datetime64[us]"
                ),
            },
        )

    # budget -------------------------------------------------------------
    def budget(self) -> None:
        rng = self.rng
        first_year = NOW.year - YEARS
        years = np.arange(first_year, NOW.year + 1)
        self._write(
            "fiscal_year",
            {
                "year": years,
                "total_fen": np.full(len(years), 2_000_000_000_00),
                "reserve_fen": np.full(len(years), 100_000_000_00),
            },
        )
        lines = self.scale.n("budget_lines")
        issue_of = np.sort(rng.integers(1, len(self.issue_stage) + 1, lines))
        line_year = self.issue_reported[issue_of - 1].astype("datetime64[Y]").astype(int) + 1970
        reserve_ids = np.arange(lines + 1, lines + 1 + len(years))
        created = self.issue_reported[issue_of - 1] + _days(rng.integers(1, 30, lines))
        created = np.minimum(created, _now64() - _days(1))
        self._write(
            "budget_line",
            {
                "id": np.concatenate([np.arange(1, lines + 1), reserve_ids]),
                "code": [f"BL-{i:06d}" for i in range(1, lines + 1)]
                + [f"RESERVE-{y}" for y in years],
                "fiscal_year": np.concatenate([line_year, years]),
                "issue_id": [*issue_of.tolist(), *([None] * len(years))],
                "is_reserve": np.concatenate([np.zeros(lines, bool), np.ones(len(years), bool)]),
                "purpose": ["专项经费"] * (lines + len(years)),
                "output_target": ["完成整改"] * (lines + len(years)),
                "benefit_target": ["办理时限压缩30%"] * (lines + len(years)),
                "amount_fen": np.concatenate(
                    [rng.integers(10_000_00, 5_000_000_00, lines), np.full(len(years), 10**10)]
                ),
                "status": rng.choice(["approved", "in_review", "proposed"], lines + len(years)),
                "created_at": np.concatenate(
                    [created, np.array([f"{y}-01-02" for y in years], dtype="datetime64[us]")]
                ),
            },
        )
        n = self.scale.n("ledger_entries")
        line = rng.integers(1, lines + 1, n)
        reserve = rng.random(n) < 0.01
        year = line_year[line - 1]
        year_start = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]")
        end = np.minimum(
            (year + 1 - 1970).astype("datetime64[Y]").astype("datetime64[D]"),
            np.datetime64(NOW.date(), "D"),
        )
        day_span = np.maximum((end - year_start).astype(int), 1)
        entry_date = year_start + _days((rng.random(n) * day_span).astype(int))
        order = np.argsort(entry_date, kind="stable")
        entry_date, line, reserve, year = (
            entry_date[order],
            line[order],
            reserve[order],
            year[order],
        )
        emergencies = self.scale.n("emergencies")
        self._write(
            "ledger_entry",
            {
                "id": np.arange(1, n + 1),
                "fiscal_year": year,
                "line_id": np.where(reserve, reserve_ids[year - first_year], line),
                "kind": np.where(reserve, "reserve_draw", "disbursement"),
                "emergency_id": [
                    int(x) if r else None
                    for x, r in zip(rng.integers(1, emergencies + 1, n), reserve, strict=True)
                ],
                "entry_date": entry_date,
                "amount_fen": rng.integers(100_00, 200_000_00, n),
                "payee": rng.choice([f"供应商{i:03d}" for i in range(1, 401)], n),
                "description": ["拨付"] * n,
                "external_ref": [f"BANK-{i:08d}" for i in range(1, n + 1)],
                "created_at": entry_date.astype("datetime64[us]") + _seconds(36000),
            },
        )

    # emergencies --------------------------------------------------------
    def emergencies(self) -> None:
        rng, n = self.rng, self.scale.n("emergencies")
        opened = np.sort(_now64() - _seconds(rng.integers(3600, YEARS * 365 * 86400, n)))
        level = rng.choice(["I", "II", "III"], n, p=[0.02, 0.18, 0.8])
        leading = np.where(
            level == "I",
            self.groups["leadership"],
            np.where(level == "II", self.groups["executive"], self.groups["working_group"]),
        )
        status = np.where(np.arange(n) >= n - 5, "acknowledged", "closed")
        source = rng.choice(["prometheus", "zabbix", "hotline", "manual"], n)
        public = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
        ack = opened + _seconds(rng.integers(60, 1800, n))
        resolved = np.where(
            status == "closed", ack + _seconds(rng.integers(3600, 7 * 86400, n)), None
        )
        self._write(
            "emergency",
            {
                "id": np.arange(1, n + 1),
                "public_id": public,
                "source": source,
                "dedup_key": [f"{s}:alert-{i}" for i, s in enumerate(source.tolist(), 1)],
                "level": level,
                "title": [f"告警{i}" for i in range(1, n + 1)],
                "classification": rng.choice(["internal", "secret"], n, p=[0.9, 0.1]),
                "status": status,
                "leading_group": leading,
                "opened_at": opened,
                "acknowledged_at": ack,
                "resolved_at": np.array(
                    [np.datetime64("NaT") if r is None else r for r in resolved],
                    dtype="datetime64[us]",
                ),
                "deadlines": ["{}"] * n,
                "payload": ["{}"] * n,
            },
        )

    # the decision trail ---------------------------------------------------
    def trail(self) -> None:
        rng, n = self.rng, self.scale.n("trail_entries")
        start = _now64() - _seconds(YEARS * 365 * 86400)
        gaps = rng.integers(0, 2 * YEARS * 365 * 86400 // n + 1, n)
        at = start + _seconds(np.cumsum(gaps))
        at = np.minimum(at, _now64() - _days(7))
        which = rng.integers(0, len(ACTIONS), n)
        issue = rng.integers(0, len(self.issue_numbers), n)
        subject = rng.integers(1, 1_000_000, n)
        cls = rng.choice(["public", "internal", "secret"], n, p=[0.2, 0.75, 0.05])
        ats = [
            dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC)
            for s in np.datetime_as_string(at, unit="us")
        ]
        actors, actions, stypes, sids, payloads, prevs, hashes = [], [], [], [], [], [], []
        prev = GENESIS
        advance = self.progress("hashing the trail", n) if self.progress else None
        numbers = self.issue_numbers
        for i in range(n):
            action, stype = ACTIONS[which[i]]
            number = numbers[issue[i]]
            sid = number if stype == "issue" else str(int(subject[i]))
            payload = canonical_json({"issue": number, "seq": i + 1})
            actor = "executive-office" if i % 3 else "dispatch-sweep"
            body = _entry_bytes(i + 1, ats[i], actor, action, stype, sid, payload, cls[i], False)
            digest = compute_hash(prev, body)
            actors.append(actor)
            actions.append(action)
            stypes.append(stype)
            sids.append(sid)
            payloads.append(payload)
            prevs.append(prev)
            hashes.append(digest)
            prev = digest
            if advance and (i + 1) % CHUNK == 0:
                advance(CHUNK)
        if advance:
            advance(n % CHUNK)
        self._write(
            "trail_entry",
            {
                "id": np.arange(1, n + 1),
                "at": at,
                "actor": actors,
                "action": actions,
                "subject_type": stypes,
                "subject_id": sids,
                "payload": payloads,
                "classification": cls,
                "calendar_fallback": np.zeros(n, bool),
                "prev_hash": prevs,
                "hash": hashes,
            },
        )
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE trail_head SET last_id = :n, last_hash = :h WHERE id = 1"),
                {"n": n, "h": prev},
            )


def generate(engine: Engine, scale: Scale, progress=None) -> dict[str, int]:
    """Fill an empty database at `engine` (migrated here) with the seeded dataset."""
    return Generator(engine, scale, progress).run()


def rich_progress():
    """A progress factory for `generate`: one rich bar per phase."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bars = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )

    def factory(label: str, total: int):
        task = bars.add_task(label, total=total)
        return lambda k: bars.advance(task, k)

    return bars, factory


def ensure(backend: str, scale: Scale, say=print) -> tuple[str, dict[str, int], float]:
    """The pristine dataset for (backend, seed, scale): reused if complete, else generated.

    Returns its name (see benchmarks.databases), its row counts and the seconds spent generating.
    """
    from benchmarks import databases

    pristine = f"data-{scale.key}"
    counts = databases.completed(backend, pristine)
    if counts is not None:
        # The pristine copy stays at the schema it was made with: each run migrates its
        # own working copy, so branches with different migrations can share one dataset.
        say(f"reusing dataset {pristine} ({backend})")
        return pristine, counts, 0.0
    say(f"generating dataset {pristine} ({backend}) …")
    started = time.perf_counter()
    bars, factory = rich_progress()
    with bars:
        _url, engine = databases.fresh_database(backend, pristine)
        counts = generate(engine, scale, factory)
    databases.mark_complete(backend, pristine, engine, counts)
    return pristine, counts, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    from benchmarks import databases

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"scale {QUICK_SCALE}")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args(argv)
    scale = Scale(QUICK_SCALE if args.quick else args.scale, args.seed)
    if args.regenerate:
        databases.drop(args.db, f"data-{scale.key}")
    name, counts, seconds = ensure(args.db, scale)
    print(json.dumps({"dataset": name, "seconds": round(seconds, 1), **counts}))


if __name__ == "__main__":
    main()
