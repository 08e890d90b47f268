"""The budget base of a past period: the lines approved by its end, at their amounts then.

Core rule, no database: `approved_budget_fen` over hand-made frames, at the boundary
instant and for all inputs (hypothesis, against a plain loop over the records).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from taskforce.kpi.compute import KpiSet, approved_budget_fen
from taskforce.kpi.frames import Frames
from taskforce.reviews.charts import burndown_rows
from taskforce.reviews.periods import parse_period

UTC = dt.UTC
UNTIL = dt.datetime(2026, 9, 30, 16, tzinfo=UTC)  # the end of 2026-Q3 in Shanghai
MICRO = dt.timedelta(microseconds=1)


def _frames(lines: list[dict], adjustments: list[dict]) -> Frames:
    utc = "datetime64[ns, UTC]"
    empty = pd.DataFrame
    line_frame = pd.DataFrame(
        {
            "id": pd.Series([r["id"] for r in lines], dtype="int64"),
            "fiscal_year": pd.Series([r.get("year", 2026) for r in lines], dtype="int64"),
            "amount_fen": pd.Series([r["amount_fen"] for r in lines], dtype="int64"),
            "status": pd.Series([r.get("status", "approved") for r in lines], dtype=object),
            "is_reserve": pd.Series([r.get("reserve", False) for r in lines], dtype=bool),
            "approved_at": pd.to_datetime([r.get("approved_at") for r in lines], utc=True),
        }
    )
    adjustment_frame = pd.DataFrame(
        {
            "line_id": pd.Series([r["line_id"] for r in adjustments], dtype="int64"),
            "delta_fen": pd.Series([r["delta_fen"] for r in adjustments], dtype="int64"),
            "decided_at": pd.to_datetime([r["decided_at"] for r in adjustments], utc=True),
        }
    ).astype({"decided_at": utc})
    ledger = pd.DataFrame(
        {"fiscal_year": [], "kind": [], "entry_date": [], "amount_fen": [], "entries": []}
    ).astype({"entry_date": "datetime64[ns]", "amount_fen": "int64", "fiscal_year": "int64"})
    return Frames(
        issues=empty(),
        tasks=empty(),
        evaluations=empty(),
        milestones=empty(),
        lines=line_frame.astype({"approved_at": utc}),
        adjustments=adjustment_frame,
        ledger=ledger,
        findings=empty(),
        warnings=empty(),
        emergencies=empty(),
        members=empty(),
    )


def test_a_line_counts_from_the_instant_of_its_approval():
    frames = _frames(
        [
            {"id": 1, "amount_fen": 100, "approved_at": UNTIL - MICRO},  # in
            {"id": 2, "amount_fen": 20, "approved_at": UNTIL},  # approved at the end: out
            {"id": 3, "amount_fen": 4, "approved_at": None, "status": "in_review"},
            {"id": 4, "amount_fen": 8, "approved_at": UNTIL - MICRO, "reserve": True},
            {"id": 5, "amount_fen": 16, "approved_at": UNTIL - MICRO, "year": 2025},
        ],
        [],
    )
    assert approved_budget_fen(frames, 2026, pd.Timestamp(UNTIL)) == 100
    assert approved_budget_fen(frames, 2026, pd.Timestamp(UNTIL + MICRO)) == 120


def test_a_line_counts_at_its_amount_then():
    """Line 1 is 130 now: 100 approved, +50 decided before the end, -20 at the end."""
    frames = _frames(
        [{"id": 1, "amount_fen": 130, "approved_at": UNTIL - dt.timedelta(days=90)}],
        [
            {"line_id": 1, "delta_fen": 50, "decided_at": UNTIL - MICRO},
            {"line_id": 1, "delta_fen": -20, "decided_at": UNTIL},
        ],
    )
    assert approved_budget_fen(frames, 2026, pd.Timestamp(UNTIL)) == 150
    assert approved_budget_fen(frames, 2026, pd.Timestamp(UNTIL + MICRO)) == 130
    assert approved_budget_fen(frames, 2026, pd.Timestamp(UNTIL - MICRO)) == 100


W = 10_000_000_00  # 1,000 万元 in fen: amounts whose even pace survives its rounding


def test_the_burndown_measures_each_month_against_the_budget_approved_by_its_end():
    """A line approved on 15 June (Shanghai) is not 'remaining' in May, nor behind pace."""
    june_15 = dt.datetime(2026, 6, 15, 2, tzinfo=UTC)
    frames = _frames(
        [
            {"id": 1, "amount_fen": 12 * W, "approved_at": dt.datetime(2026, 1, 5, tzinfo=UTC)},
            {"id": 2, "amount_fen": 6 * W, "approved_at": june_15},
        ],
        [],
    )
    frames.ledger = pd.DataFrame(
        {
            "fiscal_year": [2026, 2026],
            "kind": ["disbursement", "disbursement"],
            "entry_date": pd.to_datetime(["2026-02-10", "2026-07-01"]),
            "amount_fen": [3 * W, 5 * W],
            "entries": [1, 1],
        }
    )

    budget = {"year": 2026, "approved_fen": 18 * W, "spent_fen": 8 * W}
    current = KpiSet(period="2026-Q3", kpis={}, details={"budget": budget})
    rows = burndown_rows(frames, parse_period("quarterly", "2026-Q3"), current, "Asia/Shanghai")
    by_month = {r["month"]: r for r in rows}
    assert [r["month"] for r in rows] == [f"2026-{m:02d}" for m in range(1, 10)]
    assert by_month["2026-01"]["remaining_fen"] == 12 * W
    assert by_month["2026-05"] == {
        "month": "2026-05",
        "approved_fen": 12 * W,
        "spent_fen": 3 * W,
        "remaining_fen": 9 * W,
        # The even pace on the same base: 31 May is day 151 of 365 (to the thousand yuan).
        "ideal_fen": 4_964_400_000,
    }
    june = by_month["2026-06"]  # the base grew in June, and its pace with it
    assert (june["approved_fen"], june["ideal_fen"]) == (18 * W, 8_926_000_000)  # day 181
    assert by_month["2026-07"]["remaining_fen"] == 10 * W


def test_a_weekly_review_s_last_month_ends_with_its_week():
    """W36 is 31 August – 6 September: a line approved on 10 September is not in its base,
    not even in September's row, and September's pace runs to the 6th (day 249)."""
    frames = _frames(
        [
            {"id": 1, "amount_fen": 10 * W, "approved_at": dt.datetime(2026, 1, 5, tzinfo=UTC)},
            {"id": 2, "amount_fen": 5 * W, "approved_at": dt.datetime(2026, 9, 10, tzinfo=UTC)},
        ],
        [],
    )
    budget = {"year": 2026, "approved_fen": 10 * W, "spent_fen": 0}
    current = KpiSet(period="2026-W36", kpis={}, details={"budget": budget})
    rows = burndown_rows(frames, parse_period("weekly", "2026-W36"), current, "Asia/Shanghai")
    assert [r["month"] for r in rows][-1] == "2026-09"
    assert rows[-1]["approved_fen"] == rows[-2]["approved_fen"] == 10 * W
    assert rows[-1]["ideal_fen"] == 6_821_900_000  # 1 亿元 × 249 / 365, to the thousand yuan


instants = st.datetimes(
    min_value=dt.datetime(2026, 9, 28), max_value=dt.datetime(2026, 10, 3), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.fixed_dictionaries(
            {
                "amount_fen": st.integers(0, 10**12),
                "approved_at": st.none() | instants,
                "status": st.sampled_from(["approved", "in_review", "proposed", "rejected"]),
                "reserve": st.booleans(),
                "year": st.sampled_from([2025, 2026]),
            }
        ),
        max_size=8,
    ),
    deltas=st.lists(
        st.tuples(st.integers(0, 7), st.integers(-(10**9), 10**9), instants), max_size=10
    ),
    until=instants,
)
def test_the_base_is_what_a_record_by_record_reading_gives(lines, deltas, until):
    for number, line in enumerate(lines, start=1):
        line["id"] = number
        if line["status"] != "approved":
            line["approved_at"] = None
    adjustments = [
        {"line_id": index + 1, "delta_fen": delta, "decided_at": at}
        for index, delta, at in deltas
        if index < len(lines)
    ]
    expected = 0
    for line in lines:
        approved = line["approved_at"] is not None and line["approved_at"] < until
        if line["year"] != 2026 or line["reserve"] or not approved:
            continue
        later = sum(
            a["delta_fen"]
            for a in adjustments
            if a["line_id"] == line["id"] and a["decided_at"] >= until
        )
        expected += line["amount_fen"] - later
    assert approved_budget_fen(_frames(lines, adjustments), 2026, pd.Timestamp(until)) == expected
