"""Smoke tests of the gateway-intake and emergency-path figures at --quick size.

No thresholds: the numbers belong in benchmarks/RESULTS.md. What is asserted is that
each figure runs end to end over real HTTP on 127.0.0.1 and that the intake figure's
own correctness check (every 202 in the database, duplicates collapsed exactly) holds.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import databases

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def bench_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(databases, "BENCH_DIR", tmp_path)
    return tmp_path


def test_gateway_figure_accounts_for_every_accepted_webhook(bench_dir, tmp_path):
    from benchmarks import run

    results = run.main(["--quick", "--only", "gateway", "--json", str(tmp_path / "g.json")])
    rate, _p99 = results
    assert rate.figure.startswith("gateway intake, accepted webhooks/s")
    assert rate.extra["accounting_ok"], rate.notes
    assert all(rate.extra["checks"].values()), rate.extra["checks"]
    assert "accounting exact" in rate.notes
    for r in results:
        assert math.isfinite(r.ours) and r.ours > 0, r
        assert r.baseline is not None and math.isfinite(r.baseline) and r.baseline > 0, r


def test_the_empty_endpoint_is_measured_after_the_warm_ups_pages(bench_dir, monkeypatch):
    """The baseline runs on a server with nothing else to do: the warm-up's emergencies are
    dispatched and paged before the empty endpoint is driven (beside those pages its rate
    was a third lower, and the ratio flattered)."""
    from benchmarks import run
    from benchmarks.figures import gateway

    real_drive, left_at_empty = gateway._drive, []

    def drive(bench, requests, port, tag):  # the real drive, with a look at the database
        if tag == "empty":
            run_id = requests[0].split("bench-gw-", 1)[1].split("-", 1)[0]  # the burst's id
            left_at_empty.append(gateway.undrained(bench, f"{run_id}w"))
        return real_drive(bench, requests, port, tag)

    monkeypatch.setattr(gateway, "_drive", drive)
    rate, _p99 = run.main(["--quick", "--only", "gateway"])
    assert rate.extra["accounting_ok"], rate.notes
    assert left_at_empty == [0]


def test_emergency_path_figure_pages_through_the_served_flow(bench_dir, prefect_server, tmp_path):
    from benchmarks import run

    results = run.main(
        ["--quick", "--only", "emergency_path", "--deployments", "--json", str(tmp_path / "e.json")]
    )
    assert [r.figure for r in results] == [
        "emergency path, webhook → first page, p50",
        "emergency path, webhook → first page, p95",
    ]
    assert len(results[0].extra["ours"]) == len(results[0].extra["empty"]) == 2
    assert len(results[0].extra["run_starts"]) == 2  # our flow runs did start, after the page
    assert all(
        page < start
        for page, start in zip(
            results[0].extra["ours"], results[0].extra["run_starts"], strict=True
        )
    )
    for r in results:
        assert math.isfinite(r.ours) and r.ours > 0, r
        assert r.baseline is not None and math.isfinite(r.baseline) and r.baseline > 0, r
