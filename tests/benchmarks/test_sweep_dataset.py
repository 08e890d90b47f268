"""The benchmark dataset stores what last week's incremental sweep would have stored: this
week's incremental sweep then leaves nothing for a full sweep to do, and a second incremental
sweep reads nothing."""

from __future__ import annotations

import pytest

from benchmarks import databases
from benchmarks.dataset import NOW, QUICK_SCALE, Scale, ensure
from taskforce.clock import ManualClock
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop.sweep import dispatch_sweep
from taskforce.policy import load_policy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_quick_dataset_sweeps_incrementally_to_the_full_answer(tmp_path, monkeypatch):
    monkeypatch.setattr(databases, "BENCH_DIR", tmp_path)
    scale = Scale(QUICK_SCALE, seed=9)
    name, counts, _ = ensure("sqlite", scale, say=lambda _line: None)
    _url, engine = databases.working_copy("sqlite", name, "copy")
    ctx = Context(policy=load_policy(), clock=ManualClock(NOW))
    try:
        with unit_of_work(engine) as s:
            first = dispatch_sweep(s, ctx, board=False)
        assert not first.full and 0 < first.examined < counts["task_node"] / 4
        assert first.newly_red and first.escalated
        with unit_of_work(engine) as s:
            again = dispatch_sweep(s, ctx, board=False)
        assert again.examined == 0 and again.new_overdue == 0
        with unit_of_work(engine) as s:
            full = dispatch_sweep(s, ctx, board=False, full=True)
        assert full.full and full.examined > first.examined
        assert (full.newly_red, full.escalated, full.new_overdue) == ([], [], 0)
    finally:
        engine.dispose()
