"""Two whole stacks, one alive at a time, each started once and shared by the e2e tests:

* `sqlite_stack`: the small-office default — Prefect server and domain database
  on SQLite files.
* `postgres_stack`: production — the Prefect server on PostgreSQL (asyncpg,
  the shared test cluster), the domain database on a PostgreSQL cluster of its
  own (scripts/postgres.sh on another port, so the fault test can restart it
  without touching other tests), and the Prefect API behind its auth string.

The tests are ordered so every SQLite one runs first; the SQLite stack is
stopped before the PostgreSQL one starts (the machine has two cores).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, _pg_db_url, _pg_exec, _postgres_admin_url
from tests.e2e.stack import Stack, free_port

AUTH_STRING = "operator:e2e-api-password"


def pytest_collection_modifyitems(items):
    def needs_postgres(item) -> bool:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec else ()
        return "postgres_stack" in item.fixturenames or "postgres_stack" in params

    items.sort(key=needs_postgres)  # stable: SQLite (and every other test) first


def _folder(prefix: str) -> Path:
    # Not pytest's tmp_path: the domain cluster runs as the postgres user and needs to reach it.
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


class DomainCluster:
    """A PostgreSQL cluster of the domain database's own, started by scripts/postgres.sh."""

    def __init__(self) -> None:
        self.port = free_port()
        self.env = {**os.environ, "TASKFORCE_PG_PORT": str(self.port)}
        self.data_dir = Path(f"/tmp/taskforce-pg-{self.port}")  # the script's default for the port
        self.admin_url = ""

    def ctl(self, action: str) -> str:
        done = subprocess.run(
            [str(ROOT / "scripts" / "postgres.sh"), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


class Stacks:
    """At most one stack alive: asking for the other kind stops the current one first."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.stack: Stack | None = None
        self.cluster: DomainCluster | None = None
        self._cleanup = contextlib.ExitStack()

    def get(self, kind: str) -> Stack:
        if kind != self.kind:
            self.close()
            self.kind, self.stack = kind, getattr(self, f"_start_{kind}")()
        return self.stack

    def close(self) -> None:
        self._cleanup.close()
        self._cleanup = contextlib.ExitStack()
        self.kind = self.stack = self.cluster = None

    def _start(self, stack: Stack) -> Stack:
        self._cleanup.callback(shutil.rmtree, stack.folder, ignore_errors=True)
        self._cleanup.callback(stack.stop)
        return stack.start()

    def _start_sqlite(self) -> Stack:
        folder = _folder("tf-e2e-sqlite-")
        return self._start(Stack(folder, database_url=f"sqlite:///{folder}/taskforce.db"))

    def _start_postgres(self) -> Stack:
        cluster = self.cluster = DomainCluster()
        cluster.admin_url = cluster.ctl("start")
        self._cleanup.callback(shutil.rmtree, cluster.data_dir, ignore_errors=True)
        self._cleanup.callback(cluster.ctl, "stop")
        _pg_exec(cluster.admin_url, 'CREATE DATABASE "taskforce"')
        shared = _postgres_admin_url()
        prefect_db = f"prefect_e2e_{uuid.uuid4().hex[:8]}"
        _pg_exec(shared, f'CREATE DATABASE "{prefect_db}"')
        self._cleanup.callback(
            _pg_exec, shared, f'DROP DATABASE IF EXISTS "{prefect_db}" WITH (FORCE)'
        )
        prefect_url = _pg_db_url(shared, prefect_db).replace(
            "postgresql://", "postgresql+asyncpg://", 1
        )
        return self._start(
            Stack(
                _folder("tf-e2e-postgres-"),
                database_url=_pg_db_url(cluster.admin_url, "taskforce"),
                prefect_database_url=prefect_url,
                auth_string=AUTH_STRING,
                gateway_workers=2,  # the gateway as production runs it
            )
        )


@pytest.fixture(scope="session")
def _stacks():
    stacks = Stacks()
    yield stacks
    stacks.close()


@pytest.fixture
def sqlite_stack(_stacks) -> Stack:
    return _stacks.get("sqlite")


@pytest.fixture
def postgres_stack(_stacks) -> Stack:
    return _stacks.get("postgres")


@pytest.fixture
def domain_cluster(postgres_stack, _stacks) -> DomainCluster:
    return _stacks.cluster
