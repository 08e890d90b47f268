"""Shared fixtures.

* `PREFECT_HOME` is isolated before anything imports Prefect, so tests never
  touch a user's Prefect database.
* `engine` runs a test on SQLite *and* on a real PostgreSQL server (started by
  scripts/postgres.sh when TASKFORCE_TEST_POSTGRES_URL is not set). Each test
  gets a fresh, migrated database with the sample organisation loaded.
* `prefect_server` is one Prefect test server per session, only started when a
  test asks for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="taskforce-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_TMP / "prefect-home")
os.environ.pop("PREFECT_API_URL", None)  # never talk to a user's server
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # no telemetry: loopback only
os.environ["DO_NOT_TRACK"] = "1"
os.environ["TASKFORCE_OUTBOX_FILE"] = str(_SESSION_TMP / "outbox.jsonl")

BACKENDS = ["sqlite", "postgresql"]


def _postgres_admin_url() -> str:
    url = os.environ.get("TASKFORCE_TEST_POSTGRES_URL")
    if url:
        return url
    try:
        out = subprocess.run(
            [str(ROOT / "scripts" / "postgres.sh")], check=True, capture_output=True, text=True
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        pytest.fail(
            "PostgreSQL tests need a server: set TASKFORCE_TEST_POSTGRES_URL or let scripts/postgres.sh "
            f"start one (it failed: {detail.strip()[-500:]}). Deselect with -m 'not postgres' only locally.",
            pytrace=False,
        )
    url = out.stdout.strip().splitlines()[-1]
    os.environ["TASKFORCE_TEST_POSTGRES_URL"] = url
    return url


@pytest.fixture(scope="session")
def _templates():
    """Migrated template databases, one per backend, built once per session."""
    from sqlalchemy.orm import Session

    from taskforce.db import make_engine
    from taskforce.migrate import upgrade
    from taskforce.org.service import sync_organisation
    from taskforce.policy import load_org

    made: dict[str, object] = {}

    def build(backend: str):
        if backend in made:
            return made[backend]
        if backend == "sqlite":
            path = _SESSION_TMP / "template.db"
            engine = make_engine(f"sqlite:///{path}")
        else:
            admin = _postgres_admin_url()
            name = f"tf_tmpl_{uuid.uuid4().hex[:8]}"
            _pg_exec(admin, f'CREATE DATABASE "{name}"')
            engine = make_engine(_pg_db_url(admin, name))
            path = name
        upgrade(engine)
        with Session(engine) as s, s.begin():
            sync_organisation(s, load_org())
        engine.dispose()
        made[backend] = path
        return path

    yield build
    if "postgresql" in made:
        admin = os.environ["TASKFORCE_TEST_POSTGRES_URL"]
        _pg_exec(admin, f'DROP DATABASE IF EXISTS "{made["postgresql"]}" WITH (FORCE)')


def _pg_db_url(admin: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def _pg_exec(admin: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(params=BACKENDS)
def db_url(request, _templates, tmp_path):
    """A fresh migrated database with the sample organisation, on each backend."""
    backend = request.param
    template = _templates(backend)
    if backend == "sqlite":
        path = tmp_path / "taskforce.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    admin = os.environ["TASKFORCE_TEST_POSTGRES_URL"]
    name = f"tf_{uuid.uuid4().hex[:12]}"
    _pg_exec(admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _pg_db_url(admin, name)
    finally:
        from taskforce import db as dbmod

        for url, eng in list(dbmod._engines.items()):
            if name in url:
                eng.dispose()
                del dbmod._engines[url]
        _pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(db_url, monkeypatch):
    """The engine of `db_url`, also made the process default (TASKFORCE_DATABASE_URL)."""
    from taskforce.db import get_engine

    monkeypatch.setenv("TASKFORCE_DATABASE_URL", db_url)
    eng = get_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def policy():
    from taskforce.policy import load_policy

    return load_policy()


@pytest.fixture
def clock():
    import datetime as dt

    from taskforce.clock import ManualClock

    # A Monday morning in Shanghai, far from holidays; with microseconds, as a real clock
    # reads (whole hours hid a sweep that failed at every real time under pandas 3).
    return ManualClock(dt.datetime(2026, 3, 9, 1, 0, 0, 304465, tzinfo=dt.UTC))


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server per session (local, isolated PREFECT_HOME)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # A synchronous flow joins its heartbeat thread on exit (about 1 s each); tests need no heartbeats.
    no_heartbeat = temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    with prefect_test_harness(server_startup_timeout=120), no_heartbeat:
        yield


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)
