"""Where benchmark databases live, and how a run gets a fresh copy of a generated dataset.

A dataset is generated once per (seed, scale, backend) into a *pristine* database and
reused by later runs; each run works on a copy (a file copy on SQLite, `CREATE DATABASE …
TEMPLATE` on PostgreSQL), because the figures write (the sweep takes its red-item steps, imports add rows).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from taskforce.db import make_engine

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(os.environ.get("TASKFORCE_BENCH_DIR", ROOT / "var" / "bench"))
POSTGRES_ADMIN_ENV = "TASKFORCE_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:55432/postgres"


def _admin() -> str:
    return os.environ.get(POSTGRES_ADMIN_ENV) or os.environ.get(
        "TASKFORCE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN
    )


def _pg_name(name: str) -> str:
    return "tf_bench_" + re.sub(r"[^a-z0-9_]", "_", name.lower())


def _pg_exec(sql: str, params=None):
    import psycopg

    with psycopg.connect(_admin(), autocommit=True) as conn:
        return (
            conn.execute(sql, params).fetchall()
            if sql.lstrip().upper().startswith("SELECT")
            else conn.execute(sql, params)
        )


def _pg_url(db: str) -> str:
    return make_url(_admin()).set(database=db).render_as_string(hide_password=False)


def _sqlite_path(name: str) -> Path:
    return BENCH_DIR / f"{name}.db"


def drop(backend: str, name: str) -> None:
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm", ".complete.json"):
            Path(str(_sqlite_path(name)) + suffix).unlink(missing_ok=True)
    else:
        _pg_exec(f'DROP DATABASE IF EXISTS "{_pg_name(name)}" WITH (FORCE)')


def fresh_database(backend: str, name: str) -> tuple[str, Engine]:
    """An empty database (dropped first if it exists) and its engine."""
    drop(backend, name)
    if backend == "sqlite":
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{_sqlite_path(name)}"
    else:
        _pg_exec(f'CREATE DATABASE "{_pg_name(name)}"')
        url = _pg_url(_pg_name(name))
    engine = make_engine(url)
    from taskforce.migrate import upgrade

    upgrade(engine)  # a dataset made before the newest migration gets it on the copy
    return url, engine


def mark_complete(backend: str, name: str, engine: Engine, counts: dict) -> None:
    """Record that generation finished, so an interrupted dataset is never reused."""
    if backend == "sqlite":
        import sqlite3

        engine.dispose()
        # Fold the WAL into the file so a plain file copy is the whole dataset.
        with contextlib.closing(sqlite3.connect(_sqlite_path(name))) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        Path(str(_sqlite_path(name)) + ".complete.json").write_text(json.dumps(counts))
    else:
        engine.dispose()
        comment = json.dumps(counts).replace("'", "")
        _pg_exec(f"COMMENT ON DATABASE \"{_pg_name(name)}\" IS 'complete {comment}'")


def completed(backend: str, name: str) -> dict | None:
    """The row counts of a completely generated dataset, or None."""
    if backend == "sqlite":
        marker = Path(str(_sqlite_path(name)) + ".complete.json")
        if marker.exists() and _sqlite_path(name).exists():
            return json.loads(marker.read_text())
        return None
    rows = _pg_exec(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (_pg_name(name),),
    )
    if rows and rows[0][0] and rows[0][0].startswith("complete "):
        return json.loads(rows[0][0].removeprefix("complete "))
    return None


def working_copy(backend: str, pristine: str, name: str) -> tuple[str, Engine]:
    """A copy of the pristine dataset for one run to change."""
    drop(backend, name)
    if backend == "sqlite":
        shutil.copyfile(_sqlite_path(pristine), _sqlite_path(name))
        url = f"sqlite:///{_sqlite_path(name)}"
    else:
        _pg_exec(f'CREATE DATABASE "{_pg_name(name)}" TEMPLATE "{_pg_name(pristine)}"')
        url = _pg_url(_pg_name(name))
    engine = make_engine(url)
    from taskforce.migrate import upgrade

    upgrade(engine)  # a dataset made before the newest migration gets it on the copy
    return url, engine
