"""The KPIs of SPEC §3, computed over whole columns for one period.

Each KPI has a code (stable: keys of stored reviews and of improvement actions),
a unit, the direction that is better, and where policy sets one a target.
Definitions (P = the period, local dates first..last, instants [start, end)):

* resolution_rate — issues open at some time in P (reported before its end, not
  closed before its start) that were closed within P.
* on_time_rate — action items due in P that were done by their due date.
* cycle_time_mean_days / cycle_time_median_days — report→close of issues closed in P.
* duration_ratio — actual / planned duration (工期) of action items completed in P,
  Σ(completed − start + 1) / Σ(due − start + 1) in days: both ends count, as a 工期 is
  counted, so an item planned and done within its start day is 1 / 1, not 0 / 0 (a
  same-day item read as "took no time", 0.00, and pulled the ratio down). An item done
  before its planned start counts 1 day.
* first_response_hours — mean report→first response of issues reported in P.
* satisfaction — mean score of evaluations made in P.
* milestone_attainment — milestones due in P achieved on or before their due date.
* budget_execution_rate — disbursed / approved (non-reserve lines) in the fiscal
  year of P, both as of P's end: lines approved after P, and amount changes approved
  after P, are not in the base (`approved_budget_fen`). Money is summed in integer fen.
  The numerator is every disbursement of the year, so spending before a line's approval
  (itself an audit finding) can take the rate above 100 %.
* audit_findings_new / audit_findings_open — findings first seen in P's ISO weeks /
  unresolved at P's end.
* warnings_raised, warnings_on_time_rate — warnings raised in P; the share handled
  within their deadline among those handled or already past it.
* emergencies, emergency_on_time_rate — real (not drill) emergencies opened in P;
  the share resolved by the latest deadline they carry (a raised one's run from the
  raise), or without stored deadlines by their level's longest from the opening.
* full_time_share, training_hours_per_member — the organisation's health (§4.1).
* items_red / items_yellow / items_green — open action items by colour now (a snapshot:
  colours are derived from today, taskforce/loop/colours.py; a past period's counts are
  those its stored review recorded).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from taskforce.clock import local_date
from taskforce.kpi.frames import Frames, latest_deadline
from taskforce.loop.colours import colours_frame
from taskforce.policy.schema import Policy
from taskforce.reviews.periods import Period


class Better(StrEnum):
    up = "up"
    down = "down"


@dataclass(frozen=True)
class KpiDef:
    code: str
    unit: str  # ratio / days / hours / score / count
    better: Better
    snapshot: bool = False  # only computable for "now", not for a past period


CATALOGUE: tuple[KpiDef, ...] = (
    KpiDef("resolution_rate", "ratio", Better.up),
    KpiDef("on_time_rate", "ratio", Better.up),
    KpiDef("cycle_time_mean_days", "days", Better.down),
    KpiDef("cycle_time_median_days", "days", Better.down),
    KpiDef("duration_ratio", "times", Better.down),
    KpiDef("first_response_hours", "hours", Better.down),
    KpiDef("satisfaction", "score", Better.up),
    KpiDef("milestone_attainment", "ratio", Better.up),
    KpiDef("budget_execution_rate", "ratio", Better.up),
    KpiDef("audit_findings_new", "count", Better.down),
    KpiDef("audit_findings_open", "count", Better.down),
    KpiDef("warnings_raised", "count", Better.down),
    KpiDef("warnings_on_time_rate", "ratio", Better.up),
    KpiDef("emergencies", "count", Better.down),
    KpiDef("emergency_on_time_rate", "ratio", Better.up),
    KpiDef("full_time_share", "ratio", Better.up, snapshot=True),
    KpiDef("training_hours_per_member", "hours", Better.up, snapshot=True),
    KpiDef("items_red", "count", Better.down, snapshot=True),
    KpiDef("items_yellow", "count", Better.down, snapshot=True),
    KpiDef("items_green", "count", Better.up, snapshot=True),
)
BY_CODE = {k.code: k for k in CATALOGUE}


@dataclass
class Kpi:
    code: str
    unit: str
    better: str
    value: float | None
    target: float | None = None
    target_rule: str | None = None  # "min": value >= target; "max": value <= target
    previous: float | None = None
    change: str | None = None  # up / down / flat
    trend: str | None = None  # better / worse: the change read against `better` (None: flat)
    status: str | None = None  # met / missed (None: no target or no value)
    basis: int | None = None  # how many records the value rests on

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class KpiSet:
    period: str
    kpis: dict[str, Kpi]
    details: dict = field(default_factory=dict)

    def values(self) -> dict[str, float | None]:
        return {code: k.value for code, k in self.kpis.items()}


def targets(policy: Policy) -> dict[str, tuple[float, str]]:
    """Plan: the period's targets, from config (kpi_targets)."""
    t = policy.kpi_targets
    return {
        "resolution_rate": (float(t.resolution_rate), "min"),
        "on_time_rate": (float(t.on_time_rate), "min"),
        "duration_ratio": (float(t.duration_ratio_baseline), "max"),
        "satisfaction": (float(t.satisfaction), "min"),
        "full_time_share": (float(t.full_time_share_min), "min"),
        "training_hours_per_member": (float(t.training_hours_per_year_min), "min"),
    }


def _ratio(part: int | float, whole: int | float) -> float | None:
    return None if not whole else float(part) / float(whole)


def _mean(series: pd.Series) -> float | None:
    series = series.dropna()
    return None if series.empty else float(series.mean())


def approved_budget_fen(frames: Frames, year: int, until: pd.Timestamp) -> int:
    """The approved non-reserve budget of a fiscal year as it stood just before `until`.

    A review of a past period measures spending against what had been approved by then,
    not against lines approved since: a line counts from its approval, at its amount then
    (its amount now less the changes to it approved at or after `until`).
    """
    lines = frames.lines
    counted = lines[
        (lines.fiscal_year == year)
        & (lines.status == "approved")
        & ~lines.is_reserve.astype(bool)
        & (lines.approved_at < until)
    ]
    adj = frames.adjustments
    later = adj.delta_fen[adj.line_id.isin(counted.id) & (adj.decided_at >= until)]
    return int(counted.amount_fen.sum()) - int(later.sum())


def item_colours(items: pd.DataFrame, now: pd.Timestamp, policy: Policy) -> pd.Series:
    """The colours of these action items (the tasks frame's rows) on `now`'s local day."""
    today = local_date(now.to_pydatetime(), policy.timezone)
    rows = items.assign(start_date=items.start_date.fillna(items.due_date))
    return colours_frame(rows, today, policy.progress)


def _local_dates(instants: pd.Series, timezone: str) -> pd.Series:
    return instants.dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()


def _phase_of(months: pd.Series, policy: Policy) -> pd.Series:
    out = pd.Series("later", index=months.index, dtype=object)
    for name in ("startup", "push", "consolidation"):
        lo, hi = getattr(policy.phases, name)
        out[(months >= lo) & (months <= hi)] = name
    return out


def compute_kpis(
    frames: Frames,
    period: Period,
    policy: Policy,
    now: dt.datetime,
    *,
    snapshot: bool = True,
) -> KpiSet:
    """All KPIs of one period; snapshot KPIs only when `snapshot` (the period under review)."""
    tz = policy.timezone
    start, end = pd.Timestamp(period.starts_at(tz)), pd.Timestamp(period.ends_at(tz))
    first, last = pd.Timestamp(period.first_day), pd.Timestamp(period.last_day)
    now_ts = pd.Timestamp(now)
    values: dict[str, float | None] = {}
    basis: dict[str, int] = {}
    details: dict = {}

    # --- the closed loop ----------------------------------------------------
    iss = frames.issues
    closed_in = iss.closed_at.notna() & (iss.closed_at >= start) & (iss.closed_at < end)
    in_scope = (iss.reported_at < end) & (iss.closed_at.isna() | (iss.closed_at >= start))
    values["resolution_rate"] = _ratio((in_scope & closed_in).sum(), in_scope.sum())
    basis["resolution_rate"] = int(in_scope.sum())

    cycle = (iss.closed_at - iss.reported_at)[closed_in].dt.total_seconds() / 86400
    values["cycle_time_mean_days"] = _mean(cycle)
    values["cycle_time_median_days"] = None if cycle.empty else float(cycle.median())
    basis["cycle_time_mean_days"] = basis["cycle_time_median_days"] = int(closed_in.sum())

    reported_in = (iss.reported_at >= start) & (iss.reported_at < end)
    response = (iss.first_response_at - iss.reported_at)[reported_in].dt.total_seconds() / 3600
    values["first_response_hours"] = _mean(response)
    basis["first_response_hours"] = int(response.notna().sum())

    tasks = frames.tasks
    item = _item_columns(frames, tz)
    due_in = (tasks.due_date >= first) & (tasks.due_date <= last)
    values["on_time_rate"] = _ratio((due_in & item["on_time"]).sum(), due_in.sum())
    basis["on_time_rate"] = int(due_in.sum())

    done_in = (
        tasks.completed_at.notna() & (tasks.completed_at >= start) & (tasks.completed_at < end)
    )
    dated = done_in & item["dated"]
    actual = item["actual_days"][dated].clip(lower=1)
    planned = item["planned_days"][dated].clip(lower=1)
    values["duration_ratio"] = _ratio(actual.sum(), planned.sum()) if len(planned) else None
    basis["duration_ratio"] = int(dated.sum())

    ev = frames.evaluations
    ev_in = (ev.evaluated_at >= start) & (ev.evaluated_at < end)
    values["satisfaction"] = _mean(ev.satisfaction[ev_in].astype(float))
    basis["satisfaction"] = int(ev_in.sum())

    # --- milestones (§5.3), by kind and by phase (§5.1) ----------------------
    ms = frames.milestones
    ms_due = ms[(ms.due_date >= first) & (ms.due_date <= last)].copy()
    ms_due["attained"] = ms_due.achieved.astype(bool) & (
        ms_due.achieved_on.isna() | (ms_due.achieved_on <= ms_due.due_date)
    )
    start_month = policy.review.programme_start
    ms_due["phase"] = _phase_of(
        (ms_due.due_date.dt.year - start_month.year) * 12
        + (ms_due.due_date.dt.month - start_month.month)
        + 1,
        policy,
    )
    values["milestone_attainment"] = _ratio(ms_due.attained.sum(), len(ms_due))
    basis["milestone_attainment"] = len(ms_due)
    details["milestones_by_kind"] = _attainment(ms_due, "kind")
    details["milestones_by_phase"] = _attainment(ms_due, "phase")

    # --- budget (§4) ----------------------------------------------------------
    year = period.last_day.year
    ledger = frames.ledger
    approved_fen = approved_budget_fen(frames, year, end)
    spent_rows = (
        (ledger.fiscal_year == year) & (ledger.kind == "disbursement") & (ledger.entry_date <= last)
    )
    spent_fen = int(ledger.amount_fen[spent_rows].sum())
    values["budget_execution_rate"] = _ratio(spent_fen, approved_fen)
    basis["budget_execution_rate"] = int(ledger.entries[spent_rows].sum())  # entries, not days
    recorded = ledger.entry_date[(ledger.fiscal_year == year) & (ledger.entry_date <= last)]
    details["budget"] = {
        "year": year,
        "approved_fen": approved_fen,
        "spent_fen": spent_fen,
        # The last day the ledger has an entry for, up to the period's end: a month whose
        # export was not imported yet reads as "nothing spent" otherwise.
        "recorded_to": None if recorded.empty else recorded.max().date(),
    }

    # --- audit findings (weekly compliance audit) -----------------------------
    fi = frames.findings
    weeks = period.iso_weeks()
    new = fi.first_seen_week.isin(weeks)
    open_at_end = (fi.first_seen_week <= weeks[-1]) & (
        ~fi.resolved.astype(bool) | (fi.resolved_week.fillna("9999") > weeks[-1])
    )
    values["audit_findings_new"] = float(new.sum())
    values["audit_findings_open"] = float(open_at_end.sum())
    details["findings_by_severity"] = {
        str(k): int(v) for k, v in fi.severity[new].value_counts().sort_index().items()
    }

    # --- warnings (§5) and emergencies ------------------------------------------
    wa = frames.warnings
    wa_in = wa[(wa.raised_at >= start) & (wa.raised_at < end)].copy()
    wa_in["on_time"] = wa_in.handled_at.notna() & (wa_in.handled_at <= wa_in.deadline_at)
    wa_in["decided"] = wa_in.handled_at.notna() | (wa_in.deadline_at < now_ts)
    wa_in["response_h"] = (wa_in.handled_at - wa_in.raised_at).dt.total_seconds() / 3600
    values["warnings_raised"] = float(len(wa_in))
    values["warnings_on_time_rate"] = _ratio(
        (wa_in.on_time & wa_in.decided).sum(), wa_in.decided.sum()
    )
    basis["warnings_on_time_rate"] = int(wa_in.decided.sum())
    details["warnings_by_colour"] = _response_table(
        wa_in,
        "colour",
        ["yellow", "orange", "red"],
        {c: getattr(policy.warnings, c).deadline_hours for c in ("yellow", "orange", "red")},
    )

    em = frames.emergencies
    em_in = em[(em.opened_at >= start) & (em.opened_at < end)].copy()
    details["drills"] = int(em_in.is_drill.astype(bool).sum())
    em_in = em_in[~em_in.is_drill.astype(bool)]
    limit_h = {
        lvl: max(lp.deadlines_hours.values(), default=None)
        for lvl, lp in policy.emergency.levels.items()
    }
    em_in["limit_h"] = em_in.level.map(limit_h).astype(float)
    # The deadlines the emergency carries: a raised one's run from the raise (SPEC §2.4, the
    # stricter level's), not from its opening. Rows without stored deadlines (written before
    # they were stored) are judged by their level's limit from the opening.
    em_in["deadline_at"] = latest_deadline(em_in.deadlines).fillna(
        em_in.opened_at + pd.to_timedelta(em_in.limit_h, unit="h")
    )
    em_in["on_time"] = em_in.resolved_at.notna() & (em_in.resolved_at <= em_in.deadline_at)
    em_in["decided"] = em_in.deadline_at.notna() & (
        em_in.resolved_at.notna() | (em_in.deadline_at < now_ts)
    )
    em_in["response_h"] = (em_in.acknowledged_at - em_in.opened_at).dt.total_seconds() / 3600
    values["emergencies"] = float(len(em_in))
    values["emergency_on_time_rate"] = _ratio(
        (em_in.on_time & em_in.decided).sum(), em_in.decided.sum()
    )
    basis["emergency_on_time_rate"] = int(em_in.decided.sum())
    details["emergencies_by_level"] = _response_table(em_in, "level", ["I", "II", "III"], limit_h)

    # --- Do: what was done in the period ----------------------------------------
    details["done"] = [
        {"label": "issues_reported", "value": int(reported_in.sum())},
        {"label": "issues_closed", "value": int(closed_in.sum())},
        {"label": "items_completed", "value": int(done_in.sum())},
        {"label": "evaluations", "value": int(ev_in.sum())},
        {"label": "milestones_attained", "value": int(ms_due.attained.sum())},
        {"label": "warnings_handled", "value": int(wa_in.handled_at.notna().sum())},
    ]

    # --- snapshot KPIs: the organisation and the colours, as they are now ----------
    if snapshot:
        mem = frames.members
        values["full_time_share"] = _ratio(mem.full_time.astype(bool).sum(), len(mem))
        values["training_hours_per_member"] = _mean(mem.training_hours.astype(float))
        basis["full_time_share"] = basis["training_hours_per_member"] = len(mem)
        details["members_below_training"] = int(
            (mem.training_hours < policy.kpi_targets.training_hours_per_year_min).sum()
        )
        open_items = tasks[~tasks.done.astype(bool)]
        counts = item_colours(open_items, now_ts, policy).value_counts()
        for colour in ("red", "yellow", "green"):
            values[f"items_{colour}"] = float(counts.get(colour, 0))
        details["colours"] = {c: int(counts.get(c, 0)) for c in ("green", "yellow", "red")}
        details["stages"] = stage_funnel(frames, now_ts)

    goals = targets(policy)
    kpis = {}
    for d in CATALOGUE:
        target, rule = goals.get(d.code, (None, None))
        value = values.get(d.code)
        kpis[d.code] = Kpi(
            code=d.code,
            unit=d.unit,
            better=d.better.value,
            value=value,
            target=target,
            target_rule=rule,
            status=_status(value, target, rule),
            basis=basis.get(d.code),
        )
    return KpiSet(period=period.label, kpis=kpis, details=details)


def _item_columns(frames: Frames, timezone: str) -> dict[str, pd.Series]:
    """What every period's KPIs derive from each action item the same way (its local
    completion day, on time or not, actual and planned days): computed once per frames and
    time zone, not once per period of the trend (a million items at scale)."""
    key = ("items", timezone)
    if key not in frames.derived:
        tasks = frames.tasks
        completed_day = _local_dates(tasks.completed_at, timezone)
        frames.derived[key] = {
            "on_time": tasks.done.astype(bool)
            & completed_day.notna()
            & (completed_day <= tasks.due_date),
            "dated": tasks.start_date.notna() & tasks.due_date.notna(),
            # Both ends counted (工期): the module's docstring, duration_ratio.
            "actual_days": (completed_day - tasks.start_date).dt.days + 1,
            "planned_days": (tasks.due_date - tasks.start_date).dt.days + 1,
        }
    return frames.derived[key]


STAGES = ("reported", "coordinating", "planning", "executing", "evaluating")


def stage_funnel(frames: Frames, now: pd.Timestamp) -> list[dict]:
    """Open issues per stage of the loop, and how many are past their stage deadline."""
    iss = frames.issues
    open_ = iss[iss.stage != "closed"]
    overdue = open_.stage_due_at.notna() & (open_.stage_due_at < now)
    total = open_.stage.value_counts()
    late = open_.stage[overdue].value_counts()
    return [
        {"stage": s, "open": int(total.get(s, 0)), "overdue": int(late.get(s, 0))} for s in STAGES
    ]


def _attainment(frame: pd.DataFrame, by: str) -> list[dict]:
    if frame.empty:
        return []
    g = frame.groupby(by).agg(due=("attained", "size"), attained=("attained", "sum"))
    return [
        {
            by: str(k),
            "due": int(r.due),
            "attained": int(r.attained),
            "rate": float(r.attained / r.due),
        }
        for k, r in g.iterrows()
    ]


def _response_table(
    frame: pd.DataFrame, by: str, order: list[str], deadline_h: dict[str, float | None]
) -> list[dict]:
    g = frame.groupby(by).agg(
        count=("on_time", "size"),
        decided=("decided", "sum"),
        on_time=("on_time", "sum"),
        mean_response_h=("response_h", "mean"),
    )
    out = []
    for key in order:
        row = g.loc[key] if key in g.index else None
        count = 0 if row is None else int(row["count"])
        mean_h = (
            None if row is None or np.isnan(row.mean_response_h) else float(row.mean_response_h)
        )
        out.append(
            {
                by: key,
                "count": count,
                "on_time": 0 if row is None else int(row.on_time),
                "decided": 0 if row is None else int(row.decided),
                "mean_response_h": mean_h,
                "deadline_h": deadline_h.get(key),
            }
        )
    return out


def _status(value: float | None, target: float | None, rule: str | None) -> str | None:
    if value is None or target is None:
        return None
    ok = value >= target if rule == "min" else value <= target
    return "met" if ok else "missed"


def _change(current: float | None, previous: float | None) -> str | None:
    if current is None or previous is None:
        return None
    if np.isclose(current, previous):
        return "flat"
    return "up" if current > previous else "down"


def _trend(change: str | None, better: str) -> str | None:
    """Whether a change is an improvement: a falling cycle time is, a falling resolution
    rate is not (the reader should not have to know which direction each KPI prefers)."""
    if change not in ("up", "down"):
        return None
    return "better" if change == better else "worse"


def compare(current: KpiSet, previous: dict[str, float | None]) -> KpiSet:
    """Fill each KPI's previous value and the direction of change."""
    for code, kpi in current.kpis.items():
        kpi.previous = previous.get(code)
        kpi.change = _change(kpi.value, kpi.previous)
        kpi.trend = _trend(kpi.change, kpi.better)
    return current


def kpi_history(
    frames: Frames, period: Period, policy: Policy, now: dt.datetime, count: int
) -> list[KpiSet]:
    """The KPIs of the last `count` periods, oldest first; the last one is `period`'s own."""
    history = period.history(count)
    return [compute_kpis(frames, p, policy, now, snapshot=p == period) for p in history]
