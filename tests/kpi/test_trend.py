"""A KPI's change is read against the direction that is better for it: the report says
"better" or "worse", so the reader need not know which way each KPI should go."""

from __future__ import annotations

import pytest

from taskforce.kpi.compute import BY_CODE, Kpi, KpiSet, compare


def _set(code: str, value: float | None) -> KpiSet:
    return KpiSet(
        "2026-11", {code: Kpi(code, BY_CODE[code].unit, BY_CODE[code].better.value, value)}
    )


@pytest.mark.parametrize(
    ("code", "value", "previous", "change", "trend"),
    [
        ("resolution_rate", 0.9, 0.8, "up", "better"),
        ("resolution_rate", 0.7, 0.8, "down", "worse"),
        ("cycle_time_mean_days", 12.0, 15.0, "down", "better"),  # shorter is better
        ("cycle_time_mean_days", 18.0, 15.0, "up", "worse"),
        ("resolution_rate", 0.8, 0.8, "flat", None),
        ("resolution_rate", 0.8, None, None, None),  # no previous period: no change to read
    ],
)
def test_the_change_is_read_against_the_better_direction(code, value, previous, change, trend):
    kpi = compare(_set(code, value), {code: previous}).kpis[code]
    assert (kpi.change, kpi.trend) == (change, trend)
