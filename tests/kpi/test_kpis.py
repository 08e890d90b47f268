"""KPIs on the hand-built November dataset (tests/reviews/factories.py: november_dataset).

Shanghai is UTC+8: 2026-11 runs from 2026-10-31T16:00Z to 2026-11-30T16:00Z.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from taskforce.kpi.compute import compare, compute_kpis, kpi_history
from taskforce.kpi.frames import load_frames
from taskforce.reviews.periods import parse_period
from tests.reviews import factories as f

NOW = f.utc(2026, 12, 1, 1)  # 09:00 on 1 December in Shanghai


@pytest.fixture
def november(engine, policy):
    with Session(engine) as s, s.begin():
        f.november_dataset(s)
    with engine.connect() as conn:
        frames = load_frames(conn)
    return frames


def test_kpis_of_november(november, policy):
    result = compute_kpis(november, parse_period("monthly", "2026-11"), policy, NOW)
    k = {code: kpi.value for code, kpi in result.kpis.items()}

    # In scope: A (open since October), B, C, and F (reported at 00:00 on 1 November);
    # not D (closed in October) nor E (reported at 00:00 on 1 December). Closed in
    # November: A and B.
    assert result.kpis["resolution_rate"].basis == 4
    assert k["resolution_rate"] == pytest.approx(2 / 4)
    assert result.kpis["resolution_rate"].status == "missed"  # target 0.80
    # Cycle times of A (20 Oct → 5 Nov = 16 d) and B (2 Nov → 12 Nov 12:00 = 10.5 d).
    assert k["cycle_time_mean_days"] == pytest.approx(13.25)
    assert k["cycle_time_median_days"] == pytest.approx(13.25)
    # First response of issues reported in November: B 2 h, C 6 h (F has none yet).
    assert k["first_response_hours"] == pytest.approx(4.0)
    # Due in November: t1 (done 23:00 on its due day: on time), t2 (done 00:00 the day
    # after: late), t3 (not done): 1 of 3.
    assert k["on_time_rate"] == pytest.approx(1 / 3)
    assert result.kpis["on_time_rate"].basis == 3
    # Completed in November, both ends counted (工期): t1 10/10 d, t2 11/10 d, t4 34/31 d
    # → 55 / 51.
    assert k["duration_ratio"] == pytest.approx(55 / 51)
    assert result.kpis["duration_ratio"].status == "met"  # <= baseline 1.8
    # Evaluations of November: 80 and 95 (the October 50 is not counted).
    assert k["satisfaction"] == pytest.approx(87.5)
    assert result.kpis["satisfaction"].status == "missed"
    # Milestones due in November: organisational on time; progress late; progress open.
    assert k["milestone_attainment"] == pytest.approx(1 / 3)
    by_kind = {r["kind"]: (r["due"], r["attained"]) for r in result.details["milestones_by_kind"]}
    assert by_kind == {"organisational": (1, 1), "progress": (2, 0)}
    by_phase = {
        r["phase"]: (r["due"], r["attained"]) for r in result.details["milestones_by_phase"]
    }
    assert by_phase == {"consolidation": (3, 1)}  # month 11 of the programme
    # Approved non-reserve lines 1,000,000 + 500,000 yuan as of November's end (l1's +200,000
    # and the 400,000 line were approved at its end instant, 16:00Z, so they are not in the
    # base); disbursed by 30 Nov 300,000 + 150,000 (the 1 December payment and the reserve
    # draw do not count).
    assert result.details["budget"] == {
        "year": 2026,
        "approved_fen": 150_000_000,
        "spent_fen": 45_000_000,
        "recorded_to": dt.date(2026, 11, 30),  # the 1 December entry is after the period
    }
    assert k["budget_execution_rate"] == pytest.approx(0.3)
    # Findings first seen in W44..W49: W45 and W47. Open at the end of W49: W45 (never
    # resolved) and W47 (resolved only in W50).
    assert k["audit_findings_new"] == 2
    assert k["audit_findings_open"] == 2
    assert result.details["findings_by_severity"] == {"high": 1, "medium": 1}
    # Warnings raised in November: yellow handled in 24 h of 48 (on time), orange in 96 h
    # of 72 (late), red unhandled past its deadline (late). The 30 Nov 16:00Z yellow is
    # 00:00 on 1 December in Shanghai: not November's.
    assert k["warnings_raised"] == 3
    assert k["warnings_on_time_rate"] == pytest.approx(1 / 3)
    colours = {r["colour"]: r for r in result.details["warnings_by_colour"]}
    assert colours["yellow"]["mean_response_h"] == pytest.approx(24)
    assert colours["orange"]["on_time"] == 0 and colours["orange"]["count"] == 1
    assert colours["red"]["mean_response_h"] is None
    # Emergencies (the drill excluded): II resolved in 24 h of 48 (on time); I in 36 h of
    # 24 (late); III has no deadline, so it is not judged.
    assert k["emergencies"] == 3
    assert result.details["drills"] == 1
    assert k["emergency_on_time_rate"] == pytest.approx(1 / 2)
    levels = {r["level"]: r for r in result.details["emergencies_by_level"]}
    assert levels["II"]["mean_response_h"] == pytest.approx(10 / 60)
    assert levels["I"]["mean_response_h"] == pytest.approx(0.5)
    # Open items by colour: t3 red, t5 yellow, t6 green.
    assert (k["items_red"], k["items_yellow"], k["items_green"]) == (1, 1, 1)
    # Sample organisation (config/org.yaml): 9 of 22 members full-time; 1151 hours in all.
    assert k["full_time_share"] == pytest.approx(9 / 22)
    assert result.kpis["full_time_share"].status == "missed"  # below 60 %
    assert k["training_hours_per_member"] == pytest.approx(1151 / 22)
    # Open issues by stage, overdue at 1 December: C's stage was due 20 November.
    funnel = {r["stage"]: (r["open"], r["overdue"]) for r in result.details["stages"]}
    assert funnel["executing"] == (1, 1)
    assert funnel["coordinating"] == (1, 0)
    assert funnel["reported"] == (1, 0)


def test_previous_period_and_direction(november, policy):
    history = kpi_history(november, parse_period("monthly", "2026-11"), policy, NOW, 3)
    sep, oct_, nov = history
    assert [h.period for h in history] == ["2026-09", "2026-10", "2026-11"]
    # October: A (reported 20 Oct, open) and D (closed 15 Oct) in scope, D closed: 1 of 2.
    assert oct_.kpis["resolution_rate"].value == pytest.approx(0.5)
    assert oct_.kpis["satisfaction"].value == pytest.approx(50)
    # Snapshot KPIs exist only for the period under review.
    assert oct_.kpis["items_red"].value is None
    assert sep.kpis["satisfaction"].value is None
    compare(nov, oct_.values())
    assert nov.kpis["resolution_rate"].change == "flat"
    assert nov.kpis["satisfaction"].change == "up"
    assert nov.kpis["satisfaction"].previous == pytest.approx(50)
    assert nov.kpis["items_red"].change is None


def test_empty_period_has_no_values_not_zeroes(engine, policy):
    with engine.connect() as conn:
        frames = load_frames(conn)
    result = compute_kpis(frames, parse_period("monthly", "2026-11"), policy, NOW)
    assert result.kpis["resolution_rate"].value is None
    assert result.kpis["resolution_rate"].status is None
    assert result.kpis["on_time_rate"].value is None
    assert result.kpis["warnings_raised"].value == 0


def test_a_raised_emergency_is_judged_by_the_deadlines_of_its_raise(engine, policy):
    """A level-III alert opened at 08:00 (no deadline), raised to level I at 20:00 (24 h to
    form the command), resolved 23 h after the raise: on time. It was judged from its
    opening (35 h against 24: late), a deadline it never had."""
    from taskforce.clock import ManualClock
    from taskforce.context import Context
    from taskforce.db import unit_of_work
    from taskforce.emergency import service
    from taskforce.emergency.forms import EmergencyIntake
    from taskforce.emergency.models import Level

    clock = ManualClock(f.utc(2026, 11, 10, 0))  # 08:00 in Shanghai
    ctx = Context(policy=policy, clock=clock)

    def deliver(level: Level) -> str:
        intake = EmergencyIntake(level=level, title="磁盘告警", working_group="wg:data")
        with unit_of_work(engine) as s:
            return service.open_emergency(
                s, ctx, intake, source="monitor", dedup_key="disk", actor="gateway:test"
            ).emergency_id

    opened = deliver(Level.III)
    clock.set(f.utc(2026, 11, 10, 12))  # 20:00: the same alert, now level I
    assert deliver(Level.I) == opened  # raised, not a new emergency
    clock.set(f.utc(2026, 11, 11, 11))  # 23 h after the raise, 35 h after the opening
    with unit_of_work(engine) as s:
        service.resolve(s, ctx, opened, actor="E1")
    with engine.connect() as conn:
        frames = load_frames(conn)
    result = compute_kpis(frames, parse_period("monthly", "2026-11"), policy, NOW)
    assert result.kpis["emergency_on_time_rate"].basis == 1
    assert result.kpis["emergency_on_time_rate"].value == pytest.approx(1.0)
