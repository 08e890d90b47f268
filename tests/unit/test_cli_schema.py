"""Code newer than its database: the CLI says which migration is missing, not a traceback."""

import subprocess
import sys

from alembic import command

from taskforce.db import make_engine
from taskforce.migrate import alembic_config, schema_behind, upgrade
from tests.conftest import ROOT


def _database_at(path, revision: str):
    engine = make_engine(f"sqlite:///{path}")
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    return engine


def _verify_trail_at(path) -> subprocess.CompletedProcess:
    """`taskforce trail verify` in a process of its own, on the SQLite database at `path`."""
    return subprocess.run(
        [sys.executable, "-m", "taskforce.cli", "trail", "verify"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "TASKFORCE_DATABASE_URL": f"sqlite:///{path}"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_command_on_an_old_schema_names_the_migration_to_run(tmp_path):
    engine = _database_at(tmp_path / "old.db", "0001")
    assert schema_behind(engine)[0] == "0001"
    done = _verify_trail_at(tmp_path / "old.db")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "schema revision 0001" in done.stderr and "taskforce migrate" in done.stderr
    assert "Traceback" not in done.stderr

    upgrade(engine)
    assert schema_behind(engine) is None


def test_a_mistyped_database_path_is_named_as_such(tmp_path):
    """A path that names no database (a typo) was answered "run `taskforce migrate`", which
    would have made a second, empty database there."""
    typo = tmp_path / "taskforse" / "db" / "taskforse.db"
    done = _verify_trail_at(typo)
    assert done.returncode == 2, done.stderr[-2000:]
    said = " ".join(done.stderr.split())
    assert f"there is no taskforce database at sqlite:///{typo} (nothing was left there)" in said
    assert "taskforce init" in said and "taskforce migrate" not in said
    assert "Traceback" not in done.stderr
    # The command made neither the file nor the folders the typo named (it did, before).
    assert list(tmp_path.iterdir()) == []


def test_an_empty_file_that_was_there_before_is_kept(tmp_path):
    """Only what the command itself created goes: a file that existed is the operator's."""
    existing = tmp_path / "empty.db"
    existing.touch()
    done = _verify_trail_at(existing)
    assert done.returncode == 2
    assert "it has no tables" in " ".join(done.stderr.split())
    assert existing.exists()


def test_a_locked_database_is_named_as_such_even_when_its_schema_is_behind(tmp_path):
    """`taskforce migrate` on a database whose write lock a gateway holds: the operator is
    told what holds them up, not to run `taskforce migrate` (what they just did)."""
    import sqlite3

    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    from taskforce.cli import database_error_message

    path = tmp_path / "old.db"
    _database_at(path, "0004_sweep").dispose()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what a writing gateway holds
    impatient = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with impatient.connect() as conn:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except OperationalError as exc:
                message = database_error_message(exc)
            else:
                raise AssertionError("the second writer got the lock")
    finally:
        impatient.dispose()
        holder.execute("ROLLBACK")
        holder.close()
    assert message.startswith("the database is locked")
    assert "30 s" in message and "taskforce migrate" not in message
