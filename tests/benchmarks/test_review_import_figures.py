"""The quarterly-review and budget-import figures: the baseline's hand-written KPI script
agrees with ours on a dataset that has every kind of record (the benchmark dataset has no
evaluations, milestones, warnings or findings), and both figures run at --quick size.

No thresholds: timings belong in benchmarks/RESULTS.md, not in assertions.
"""

from __future__ import annotations

import math

import pytest
from sqlalchemy.orm import Session

from benchmarks import databases
from benchmarks.figures.quarterly_review import baseline_kpis, same_values
from taskforce.kpi.compute import compute_kpis
from taskforce.kpi.frames import load_frames
from taskforce.reviews.periods import parse_period
from tests.reviews import factories as f

NOW = f.utc(2026, 12, 1, 1)


@pytest.mark.parametrize("label", ["2026-Q3", "2026-Q4"])
def test_the_baseline_script_computes_our_kpis(engine, policy, label):
    with Session(engine) as s, s.begin():
        f.november_dataset(s)
    with engine.connect() as conn:
        ours = compute_kpis(load_frames(conn), parse_period("quarterly", label), policy, NOW)
    values = ours.values()
    assert sum(v is not None for v in values.values()) >= 10  # most KPIs have data here
    assert same_values(values, baseline_kpis(engine, label, policy, NOW)) == []


def test_same_values_names_the_kpi_that_differs():
    assert same_values({"a": 1.0, "b": None}, {"a": 1.0, "b": None}) == []
    assert same_values({"a": 1.0}, {"a": 1.1}) == ["a: ours 1.0, baseline 1.1"]
    assert same_values({"a": None}, {"a": 0.0}) == ["a: ours None, baseline 0.0"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_run_of_the_review_and_import_figures(tmp_path, monkeypatch):
    from benchmarks import run

    monkeypatch.setattr(databases, "BENCH_DIR", tmp_path)
    results = run.main(["--quick", "--only", "quarterly_review,budget_import"])
    figures = {r.figure: r for r in results}
    assert sum(name.startswith("budget-ledger import") for name in figures) == 2
    review = next(r for name, r in figures.items() if name.startswith("quarterly review"))
    assert review.extra["rss_mib"] > 0 and len(review.extra["files"]) == 6
    for r in results:
        assert math.isfinite(r.ours) and r.ours > 0, r
        assert r.baseline is not None and r.baseline > 0, r
