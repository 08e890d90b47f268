"""Routine verification from the last checkpoint; --full walks everything."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from taskforce import trail
from taskforce.trail.checkpoint import latest, verify_routine
from taskforce.trail.models import TrailCheckpoint
from tests.trail.test_parallel import _build, _entries, _unguard

NOW = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


def _routine(engine, **kwargs):
    with Session(engine) as s, s.begin():
        return verify_routine(s, at=NOW, **kwargs)


def test_first_run_is_full_then_only_new_entries(engine):
    _build(engine, 10)
    result, since = _routine(engine)
    assert result.ok and result.entries == 10 and since is None
    with Session(engine) as s:
        cp = latest(s)
        assert (cp.last_id, cp.full) == (10, True)
        assert cp.last_hash == s.scalar(text("SELECT hash FROM trail_entry WHERE id = 10"))
    with Session(engine) as s, s.begin():
        trail.append_many(s, _entries(5))
    result, since = _routine(engine)
    assert result.ok and result.entries == 15 and since.last_id == 10
    with Session(engine) as s:
        assert (latest(s).last_id, latest(s).full) == (15, False)
        assert s.scalar(select(func.count(TrailCheckpoint.id))) == 2


def test_nothing_new_is_intact(engine):
    _build(engine, 3)
    _routine(engine)
    result, since = _routine(engine)
    assert result.ok and result.entries == 3 and since.last_id == 3


def test_change_after_the_checkpoint_found_by_routine_run(engine):
    _build(engine, 10)
    _routine(engine)
    with Session(engine) as s, s.begin():
        trail.append_many(s, _entries(5))
    _unguard(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE trail_entry SET actor = 'forged' WHERE id = 13"))
    result, _ = _routine(engine)
    assert result.first_break == trail.TrailBreak(13, "content does not match its hash")
    with Session(engine) as s:
        assert latest(s).last_id == 10  # no checkpoint over a broken chain


def test_change_of_the_checkpoint_entry_found(engine):
    _build(engine, 10)
    _routine(engine)
    _unguard(engine)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE trail_entry SET hash = '{'a' * 64}' WHERE id = 10"))
    result, _ = _routine(engine)
    assert result.first_break.entry_id == 10 and "checkpoint" in result.first_break.reason


def test_change_before_the_checkpoint_needs_full(engine):
    """What a routine run cannot see, and why --full exists."""
    _build(engine, 10)
    _routine(engine)
    _unguard(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE trail_entry SET actor = 'forged' WHERE id = 4"))
    assert _routine(engine)[0].ok
    full, since = _routine(engine, full=True)
    assert since is None and full.first_break == trail.TrailBreak(
        4, "content does not match its hash"
    )


def test_cli_routine_and_full(db_url, monkeypatch):
    from taskforce.cli import app
    from taskforce.db import make_engine

    monkeypatch.setenv("TASKFORCE_DATABASE_URL", db_url)
    engine = make_engine(db_url)
    _build(engine, 6)
    runner = CliRunner()
    first = runner.invoke(app, ["trail", "verify"])
    assert first.exit_code == 0 and "6 entries verified" in first.output
    with Session(engine) as s, s.begin():
        trail.append_many(s, _entries(2))
    routine = runner.invoke(app, ["trail", "verify", "--workers", "1"])
    assert routine.exit_code == 0 and "entries 7..8" in routine.output
    again = runner.invoke(app, ["trail", "verify"])  # printed "entries 9..8" before
    assert again.exit_code == 0 and "no entry since the last check (1..8 verified" in " ".join(
        again.output.split()
    )
    full = runner.invoke(app, ["trail", "verify", "--full"])
    assert full.exit_code == 0 and "8 entries verified" in full.output
    _unguard(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE trail_entry SET actor = 'forged' WHERE id = 2"))
    broken = runner.invoke(app, ["trail", "verify", "--full"])
    assert broken.exit_code == 1 and "trail broken" in broken.output
    engine.dispose()
