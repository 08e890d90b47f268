"""Boundary tests of the KPI targets and of the programme's phases (SPEC §3 Check: KPIs
against targets; §1: 以上 / 以下 include the number; §5.1 phases). Targets and phases come
from the policy object (kpi_targets, phases, review.programme_start)."""

from __future__ import annotations

import datetime as dt
import math
from fractions import Fraction

import pytest
from sqlalchemy.orm import Session

from taskforce.kpi.compute import _ratio, _status, compute_kpis, targets
from taskforce.kpi.frames import load_frames
from taskforce.registers.models import MilestoneKind
from taskforce.reviews.periods import period_containing
from tests.reviews import factories as f


@pytest.mark.parametrize(
    ("kpi", "config_key", "step", "status"),
    [
        # resolution_rate: a minimum (≥ 80 %: 80 % itself is met)
        ("resolution_rate", "resolution_rate", "at the target", "met"),
        ("resolution_rate", "resolution_rate", "one record short", "missed"),
        ("resolution_rate", "resolution_rate", "next float", "missed"),
        # duration_ratio: at most the baseline (≤ 1.8 met, above missed)
        ("duration_ratio", "duration_ratio_baseline", "at the target", "met"),
        ("duration_ratio", "duration_ratio_baseline", "one record short", "missed"),
        ("duration_ratio", "duration_ratio_baseline", "next float", "missed"),
    ],
)
def test_kpi_exactly_at_its_target_is_met_and_one_step_worse_is_missed(
    policy, kpi, config_key, step, status
):
    """SPEC §3 (Check: KPIs against targets; resolution rate target ≥ 80 %, the duration
    ratio's baseline 1.8) and §1 (以上 / 以下 include the number): a resolution rate exactly at
    kpi_targets.resolution_rate is met and just below it is missed; a duration ratio exactly
    at kpi_targets.duration_ratio_baseline is met and just above it is missed. The values are
    made as compute_kpis makes them (`_ratio` of two counts: 4 of 5 issues resolved, 9 days
    taken for 5 planned), one record worse (the numerator one smaller or larger over a
    hundredfold basis), and the adjacent float; the status is the pure `_status`."""
    target, rule = targets(policy)[kpi]
    configured = Fraction(str(getattr(policy.kpi_targets, config_key)))
    assert target == float(configured)
    worse = -1 if rule == "min" else 1  # a minimum is missed below, a maximum above
    part, whole = configured.numerator, configured.denominator
    if step == "at the target":
        value = _ratio(part, whole)
        assert value == target and _ratio(part * 7, whole * 7) == target
    elif step == "one record short":
        value = _ratio(part * 100 + worse, whole * 100)
    else:
        value = math.nextafter(target, worse * math.inf)
    assert (value == target) is (step == "at the target")
    assert _status(value, target, rule) == status


def _month(start: dt.date, n: int) -> tuple[dt.date, dt.date]:
    """The first and last day of month `n` of a programme whose month 1 holds `start`."""
    index = start.year * 12 + start.month - 1 + n - 1
    first = dt.date(index // 12, index % 12 + 1, 1)
    nxt = index + 1
    return first, dt.date(nxt // 12, nxt % 12 + 1, 1) - dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("phase", "end", "edge_day"),
    [
        ("startup", 1, "last"),  # month 3, its last day
        ("push", 0, "first"),  # month 4, its first day
        ("push", 1, "last"),  # month 9, its last day
        ("consolidation", 0, "first"),  # month 10, its first day
    ],
)
def test_milestone_phase_changes_between_the_last_and_first_day_of_the_boundary_months(
    engine, policy, phase, end, edge_day
):
    """SPEC §5.1 (phases: start-up months 1–3, push 4–9, consolidation 10–12, counted from
    review.programme_start) and §5.3 (milestones, reported by phase): a milestone due on the
    last day of a phase's last month belongs to that phase, one due the next day (the first
    day of the next month) to the next phase. Months from config phases."""
    month = getattr(policy.phases, phase)[end]
    first, last = _month(policy.review.programme_start, month)
    due = last if edge_day == "last" else first
    # The neighbouring day across the boundary belongs to the neighbouring phase.
    neighbour = due + dt.timedelta(days=1 if edge_day == "last" else -1)
    neighbour_month = month + (1 if edge_day == "last" else -1)
    neighbour_phase = next(
        name
        for name in ("startup", "push", "consolidation")
        if getattr(policy.phases, name)[0] <= neighbour_month <= getattr(policy.phases, name)[1]
    )
    assert neighbour_phase != phase
    with Session(engine) as s, s.begin():
        f.milestone(s, kind=MilestoneKind.progress, due=due, achieved_on=due)
        f.milestone(s, kind=MilestoneKind.outcome, due=neighbour)
    with engine.connect() as conn:
        frames = load_frames(conn)
    now = f.utc(due.year + 1, 1, 1)
    by_phase = {}
    for day in (due, neighbour):
        result = compute_kpis(frames, period_containing("monthly", day), policy, now)
        by_phase |= {
            r["phase"]: (r["due"], r["attained"]) for r in result.details["milestones_by_phase"]
        }
    assert by_phase == {phase: (1, 1), neighbour_phase: (1, 0)}
