"""The quarterly review (KPIs + charts + HTML + XLSX) on the full dataset, against the same
KPIs computed by one hand-written pandas script over `read_sql`.

Ours is `taskforce.reviews.service.run_review(engine, ctx, "quarterly", <period>)`, the
function the CLI calls and whose four steps (gather → act → render → store) the
`quarterly-review` flow runs as tasks: it reads the KPI frames and the report lists,
computes the KPIs of the quarter and of the trend's earlier quarters, opens the
improvement issues of missed targets, draws the charts and writes HTML, Markdown and
XLSX in both locales, and stores the Review row with its trail entry.

The baseline computes the quarter's KPI values only (no history, no lists, no files) the
way an analyst would: one `read_sql` per table of the columns needed, then pandas. The
figure asserts that both give the same value for every KPI: a mismatch fails the figure.

Both run in a child process of their own (spawn), so each one's peak RSS is its own.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import text

from benchmarks.core import Bench, Result

NAME = "quarterly_review"
GOAL_SECONDS = 15.0
GOAL_RSS_MIB = 2048.0
GOAL_RATIO = 1.5
KIND = "quarterly"


def period_label(now: dt.datetime, timezone: str) -> str:
    """The quarter a scheduled run at `now` reviews: the last complete one."""
    from taskforce.reviews.periods import last_complete_period

    return last_complete_period(KIND, now.astimezone(_tz(timezone)).date()).label


def _tz(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


# --- the baseline: one hand-written pandas script -------------------------------------


def _instant(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, format="ISO8601")


def _day(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, format="ISO8601")


def baseline_kpis(engine, label: str, policy, now: dt.datetime) -> dict[str, float | None]:
    """The quarter's KPIs (SPEC §3), straight from SQL: read_sql + pandas, nothing else."""
    tz = policy.timezone
    year, quarter = int(label[:4]), int(label[-1])
    first_day = dt.date(year, 3 * quarter - 2, 1)
    after = dt.date(year + (quarter == 4), 1 if quarter == 4 else 3 * quarter + 1, 1)
    last_day = after - dt.timedelta(days=1)
    start = pd.Timestamp(dt.datetime.combine(first_day, dt.time(0), _tz(tz))).tz_convert("UTC")
    end = pd.Timestamp(dt.datetime.combine(after, dt.time(0), _tz(tz))).tz_convert("UTC")
    first, last, now_ts = pd.Timestamp(first_day), pd.Timestamp(last_day), pd.Timestamp(now)
    with engine.connect() as conn:

        def q(sql: str, **params) -> pd.DataFrame:
            return pd.read_sql(text(sql), conn, params=params)

        iss = q("SELECT reported_at, first_response_at, closed_at FROM issue")
        tasks = q(
            "SELECT start_date, due_date, done, completed_at, progress_percent FROM task_node "
            "WHERE level = 'action_item'"
        )
        ev = q("SELECT satisfaction, evaluated_at FROM evaluation")
        ms = q("SELECT due_date, achieved, achieved_on FROM milestone")
        approved = q(
            "SELECT id, amount_fen, approved_at FROM budget_line WHERE fiscal_year = :y "
            "AND status = 'approved' AND NOT is_reserve",
            y=year,
        )
        adjusted = q(
            "SELECT line_id, delta_fen, decided_at FROM budget_adjustment WHERE status = 'approved'"
        )
        ledger = q(
            "SELECT entry_date, amount_fen FROM ledger_entry WHERE fiscal_year = :y "
            "AND kind = 'disbursement'",
            y=year,
        )
        fi = q("SELECT first_seen_week, resolved, resolved_week FROM audit_finding")
        wa = q("SELECT raised_at, deadline_at, handled_at FROM warning")
        em = q(
            "SELECT level, is_drill, opened_at, resolved_at, CAST(deadlines AS TEXT) AS deadlines "
            "FROM emergency"
        )
        mem = q("SELECT full_time, training_hours FROM member WHERE active")

    def ratio(part, whole):
        return None if not whole else float(part) / float(whole)

    def mean(s):
        s = s.dropna()
        return None if s.empty else float(s.mean())

    k: dict[str, float | None] = {}
    reported, closed = _instant(iss.reported_at), _instant(iss.closed_at)
    closed_in = closed.notna() & (closed >= start) & (closed < end)
    scope = (reported < end) & (closed.isna() | (closed >= start))
    k["resolution_rate"] = ratio((scope & closed_in).sum(), scope.sum())
    cycle = (closed - reported)[closed_in].dt.total_seconds() / 86400
    k["cycle_time_mean_days"] = mean(cycle)
    k["cycle_time_median_days"] = None if cycle.empty else float(cycle.median())
    rep_in = (reported >= start) & (reported < end)
    k["first_response_hours"] = mean(
        (_instant(iss.first_response_at) - reported)[rep_in].dt.total_seconds() / 3600
    )

    due, began = _day(tasks.due_date), _day(tasks.start_date)
    completed = _instant(tasks.completed_at)
    done_day = completed.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    done = tasks.done.astype(bool)
    due_in = (due >= first) & (due <= last)
    k["on_time_rate"] = ratio((due_in & done & (done_day <= due)).sum(), due_in.sum())
    dated = (completed >= start) & (completed < end) & began.notna() & due.notna()
    planned = ((due - began).dt.days + 1)[dated].clip(lower=1)  # both ends count (工期)
    actual = ((done_day - began).dt.days + 1)[dated].clip(lower=1)
    k["duration_ratio"] = ratio(actual.sum(), planned.sum()) if len(planned) else None

    evaluated = _instant(ev.evaluated_at)
    k["satisfaction"] = mean(
        ev.satisfaction[(evaluated >= start) & (evaluated < end)].astype(float)
    )

    ms_due_on, achieved_on = _day(ms.due_date), _day(ms.achieved_on)
    ms_in = (ms_due_on >= first) & (ms_due_on <= last)
    attained = ms.achieved.astype(bool) & (achieved_on.isna() | (achieved_on <= ms_due_on))
    k["milestone_attainment"] = ratio((ms_in & attained).sum(), ms_in.sum())

    spent = int(ledger.amount_fen[_day(ledger.entry_date) <= last].sum())
    # The base as of the quarter's end: lines approved by then, less changes decided since.
    approved = approved[_instant(approved.approved_at) < end]
    later = adjusted[adjusted.line_id.isin(approved.id) & (_instant(adjusted.decided_at) >= end)]
    base = int(approved.amount_fen.sum()) - int(later.delta_fen.sum())
    k["budget_execution_rate"] = ratio(spent, base)

    days = pd.date_range(first_day, last_day, freq="D")
    weeks = sorted({f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}" for d in days})
    k["audit_findings_new"] = float(fi.first_seen_week.isin(weeks).sum())
    k["audit_findings_open"] = float(
        (
            (fi.first_seen_week <= weeks[-1])
            & (~fi.resolved.astype(bool) | (fi.resolved_week.fillna("9999") > weeks[-1]))
        ).sum()
    )

    raised, deadline, handled = (
        _instant(wa[c]) for c in ("raised_at", "deadline_at", "handled_at")
    )
    wa_in = (raised >= start) & (raised < end)
    decided = wa_in & (handled.notna() | (deadline < now_ts))
    k["warnings_raised"] = float(wa_in.sum())
    k["warnings_on_time_rate"] = ratio(
        (decided & handled.notna() & (handled <= deadline)).sum(), decided.sum()
    )

    opened, resolved = _instant(em.opened_at), _instant(em.resolved_at)
    real = (opened >= start) & (opened < end) & ~em.is_drill.astype(bool)
    limit_h = em.level.map(
        {
            lvl: max(lp.deadlines_hours.values(), default=np.nan)
            for lvl, lp in policy.emergency.levels.items()
        }
    ).astype(float)
    # The stored deadlines (a raised emergency's run from the raise), else the level's limit.
    stored = pd.to_datetime(
        em.deadlines.map(lambda v: max(json.loads(v).values(), default=None) if v else None),
        utc=True,
        format="ISO8601",
    )
    em_deadline = stored.fillna(opened + pd.to_timedelta(limit_h, unit="h"))
    em_decided = real & em_deadline.notna() & (resolved.notna() | (em_deadline < now_ts))
    k["emergencies"] = float(real.sum())
    k["emergency_on_time_rate"] = ratio(
        (em_decided & resolved.notna() & (resolved <= em_deadline)).sum(), em_decided.sum()
    )

    k["full_time_share"] = ratio(mem.full_time.astype(bool).sum(), len(mem))
    k["training_hours_per_member"] = mean(mem.training_hours.astype(float))
    # Today's colours of the open items (SPEC §2.4), written out: red past due, yellow within
    # the due window or behind the time-proportional line, green otherwise.
    rules = policy.progress
    today = pd.Timestamp(now_ts.tz_convert(_tz(tz)).date())
    items = tasks[~done]
    due = _day(items.due_date)
    start = _day(items.start_date).fillna(due)
    days_left = (due - today).dt.days
    span = (due - start).dt.days
    line = (today - start).dt.days * 100 / span.where(span > 0, 1)
    expected = np.where(span > 0, line.clip(0, 100), np.where(days_left <= 0, 100.0, 0.0))
    red = days_left < 0
    behind = expected - items.progress_percent >= rules.yellow_behind_expected_points
    yellow = ~red & ((days_left <= rules.yellow_due_within_days) | behind)
    k["items_red"] = float(red.sum())
    k["items_yellow"] = float(yellow.sum())
    k["items_green"] = float(len(items) - red.sum() - yellow.sum())
    return k


def same_values(ours: dict, base: dict) -> list[str]:
    """The KPIs on which the two disagree (floats compared to 1e-9 relative)."""
    wrong = []
    for code in sorted(set(ours) | set(base)):
        a, b = ours.get(code), base.get(code)
        if a is None or b is None:
            if a is not b:
                wrong.append(f"{code}: ours {a}, baseline {b}")
        elif not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12):
            wrong.append(f"{code}: ours {a!r}, baseline {b!r}")
    return wrong


# --- the two runs, each in a child process -------------------------------------------


def _context():
    from benchmarks.dataset import NOW
    from taskforce.clock import ManualClock
    from taskforce.context import Context, use_clock
    from taskforce.policy import load_policy

    clock = ManualClock(NOW)
    use_clock(clock)
    return Context(policy=load_policy(), clock=clock)


def _peak_mib() -> float:
    """This process's own peak RSS.

    VmHWM, not `ru_maxrss`: Linux carries `ru_maxrss` over an exec, so a spawned child
    would report the benchmark parent's peak (both figures read 2,143 MiB once).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child_ours(url: str, label: str, out_root: str) -> dict:
    from taskforce.db import make_engine
    from taskforce.reviews.service import run_review

    ctx, engine = _context(), make_engine(url)
    rss_before = _peak_mib()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    outcome = run_review(engine, ctx, KIND, label, out_root=Path(out_root))
    seconds = time.perf_counter() - started
    engine.dispose()
    sizes = {name: Path(p).stat().st_size for name, p in outcome.files.items()}
    return {
        "seconds": seconds,
        "values": {k["code"]: k["value"] for k in outcome.kpis},
        "missed": [k["code"] for k in outcome.kpis if k["status"] == "missed"],
        "actions": len(outcome.actions),
        "files": sizes,
        "rss_mib": _peak_mib(),
        "rss_at_start_mib": rss_before,
        # The workbooks are written by a process of their own at this scale: its own peak.
        "workbook_rss_mib": outcome.workbook_process.get("rss_mib") or 0.0,
        # CPU time is steadier than wall time on a shared machine: the review's process
        # during run_review, and the workbook process (imports included).
        "cpu_seconds": _cpu_seconds() - cpu_before,
        "workbook_cpu_seconds": outcome.workbook_process.get("cpu_seconds") or 0.0,
    }


def _child_baseline(url: str, label: str) -> dict:
    from taskforce.db import make_engine

    ctx, engine = _context(), make_engine(url)
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    values = baseline_kpis(engine, label, ctx.policy, ctx.now())
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    engine.dispose()
    return {"seconds": seconds, "values": values, "rss_mib": _peak_mib(), "cpu_seconds": cpu}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _in_child(fn, *args) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run(bench: Bench) -> list[Result]:
    label = period_label(bench.ctx.now(), bench.ctx.policy.timezone)
    out_root = bench.workdir / "reviews"
    bench.status(f"quarterly review {label}: baseline (the KPIs in one pandas script)")
    base = _in_child(_child_baseline, bench.url, label)
    bench.status(f"quarterly review {label}: ours (KPIs, charts, HTML, Markdown, XLSX)")
    ours = _in_child(_child_ours, bench.url, label, str(out_root))
    wrong = same_values(ours["values"], base["values"])
    if wrong:
        raise AssertionError("quarterly review KPIs differ from the baseline: " + "; ".join(wrong))
    seconds, main_rss, book_rss = ours["seconds"], ours["rss_mib"], ours["workbook_rss_mib"]
    rss = main_rss + book_rss  # both at their peaks at once: an upper bound
    ratio = seconds / base["seconds"]
    files_mib = sum(ours["files"].values()) / 2**20
    return [
        Result(
            f"quarterly review {label} (KPIs + charts + HTML + XLSX)",
            seconds,
            base["seconds"],
            goal=f"≤ {GOAL_SECONDS:g} s, peak RSS ≤ {GOAL_RSS_MIB / 1024:g} GiB, "
            f"ratio ≤ {GOAL_RATIO:g}",
            met=seconds <= GOAL_SECONDS and rss <= GOAL_RSS_MIB and ratio <= GOAL_RATIO,
            notes=f"peak RSS {rss:,.0f} MiB = review {main_rss:,.0f} + workbook process "
            f"{book_rss:,.0f} (baseline's process {base['rss_mib']:,.0f} MiB); "
            f"{len(ours['values'])} KPIs equal to the baseline's; "
            f"missed {len(ours['missed'])}, improvement issues {ours['actions']}; "
            f"{len(ours['files'])} files, {files_mib:,.1f} MiB; CPU s: review "
            f"{ours['cpu_seconds']:.1f} + workbook process {ours['workbook_cpu_seconds']:.1f}, "
            f"baseline {base['cpu_seconds']:.1f}",
            extra={
                "rss_mib": rss,
                "review_rss_mib": main_rss,
                "workbook_rss_mib": book_rss,
                "cpu_seconds": ours["cpu_seconds"],
                "workbook_cpu_seconds": ours["workbook_cpu_seconds"],
                "baseline_cpu_seconds": base["cpu_seconds"],
                "baseline_rss_mib": base["rss_mib"],
                "values": ours["values"],
                "files": ours["files"],
            },
        )
    ]
