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


def test_a_command_on_an_old_schema_names_the_migration_to_run(tmp_path):
    engine = _database_at(tmp_path / "old.db", "0001")
    assert schema_behind(engine)[0] == "0001"
    done = subprocess.run(
        [sys.executable, "-m", "taskforce.cli", "trail", "verify"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "TASKFORCE_DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "schema revision 0001" in done.stderr and "taskforce migrate" in done.stderr
    assert "Traceback" not in done.stderr

    upgrade(engine)
    assert schema_behind(engine) is None
