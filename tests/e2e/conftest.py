"""Two whole stacks per session, each started once and shared by the e2e tests:

* `sqlite_stack`: the small-office default — Prefect server and domain database
  on SQLite files.
* `postgres_stack`: production — the Prefect server on PostgreSQL (asyncpg,
  the shared test cluster), the domain database on a PostgreSQL cluster of its
  own (scripts/postgres.sh on another port, so the fault test can restart it
  without touching other tests), and the Prefect API behind its auth string.
"""

from __future__ import annotations

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


def _folder(prefix: str) -> Path:
    # Not pytest's tmp_path: the domain cluster runs as the postgres user and needs to reach it.
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def sqlite_stack():
    folder = _folder("tf-e2e-sqlite-")
    stack = Stack(folder, database_url=f"sqlite:///{folder}/taskforce.db")
    try:
        yield stack.start()
    finally:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)


class DomainCluster:
    """A PostgreSQL cluster of the domain database's own, started by scripts/postgres.sh."""

    def __init__(self) -> None:
        self.port = free_port()
        self.env = {**os.environ, "TASKFORCE_PG_PORT": str(self.port)}
        self.data_dir = Path(f"/tmp/taskforce-pg-{self.port}")  # the script's default for the port

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


@pytest.fixture(scope="session")
def domain_cluster():
    cluster = DomainCluster()
    cluster.admin_url = cluster.ctl("start")
    try:
        yield cluster
    finally:
        cluster.ctl("stop")
        shutil.rmtree(cluster.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_stack(domain_cluster):
    shared = _postgres_admin_url()
    prefect_db = f"prefect_e2e_{uuid.uuid4().hex[:8]}"
    _pg_exec(shared, f'CREATE DATABASE "{prefect_db}"')
    _pg_exec(domain_cluster.admin_url, 'CREATE DATABASE "taskforce"')
    prefect_url = _pg_db_url(shared, prefect_db).replace(
        "postgresql://", "postgresql+asyncpg://", 1
    )
    folder = _folder("tf-e2e-postgres-")
    stack = Stack(
        folder,
        database_url=_pg_db_url(domain_cluster.admin_url, "taskforce"),
        prefect_database_url=prefect_url,
        auth_string=AUTH_STRING,
    )
    try:
        yield stack.start()
    finally:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)
        _pg_exec(shared, f'DROP DATABASE IF EXISTS "{prefect_db}" WITH (FORCE)')
