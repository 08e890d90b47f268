"""Smoke test of the performance suite at --quick size: every figure yields a number.

No thresholds: timings belong in benchmarks/RESULTS.md, not in assertions.
"""

from __future__ import annotations

import math

import pytest
from sqlalchemy.orm import Session

from benchmarks import databases
from benchmarks.dataset import QUICK_SCALE, Scale, ensure
from taskforce.trail.service import verify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def bench_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(databases, "BENCH_DIR", tmp_path)
    return tmp_path


def test_quick_dataset_verifies_and_reuses(bench_dir):
    scale = Scale(QUICK_SCALE, seed=9)
    name, counts, seconds = ensure("sqlite", scale, say=lambda _line: None)
    assert seconds > 0
    assert counts["trail_entry"] == scale.n("trail_entries")
    assert counts["issue"] == scale.n("issues")
    _url, engine = databases.working_copy("sqlite", name, "copy")
    with Session(engine) as session:
        result = verify(session)
    engine.dispose()
    assert result.ok, result.first_break
    assert result.entries == counts["trail_entry"]
    _, again, seconds = ensure("sqlite", scale, say=lambda _line: None)
    assert (again, seconds) == (counts, 0.0)


def test_every_figure_produces_a_number(bench_dir, prefect_server, tmp_path):
    from benchmarks import run

    # prefect_server already runs a harness; loop_step starts its own inside it, which works.
    results = run.main(["--quick", "--no-deployments", "--json", str(tmp_path / "r.json")])
    figures = {r.figure for r in results}
    assert any(f.startswith("dispatch sweep, first run") for f in figures)
    assert any(f.startswith("dispatch sweep, second run") for f in figures)
    assert "trail verification" in figures
    assert sum(f.startswith("issue-ledger import") for f in figures) == 2
    assert any(f.startswith("report-issue as an async flow call") for f in figures)
    for r in results:
        assert math.isfinite(r.ours) and r.ours > 0, r
        assert r.baseline is not None and math.isfinite(r.baseline) and r.baseline > 0, r
    trail = next(r for r in results if r.figure == "trail verification")
    assert trail.extra["ok"]
