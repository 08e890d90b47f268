from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from taskforce.db import Base
from taskforce.org.models import Member
from taskforce.org.service import director, leadership_size, sync_organisation


def test_migrations_match_the_models(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_sqlite_runs_with_wal_and_foreign_keys(engine):
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_sample_organisation_loaded(engine):
    with Session(engine) as s:
        assert leadership_size(s) == 7
        d = director(s)
        assert d.code == "E1" and d.backup.code == "E2"


def test_org_sync_is_idempotent_and_deactivates_removed_members(engine):
    from taskforce.policy import load_org

    org = load_org()
    smaller = org.model_copy(update={"members": [m for m in org.members if m.code != "L7"]})
    with Session(engine) as s, s.begin():
        sync_organisation(s, org)
        sync_organisation(s, smaller)
    with Session(engine) as s:
        assert leadership_size(s) == 6
        assert s.scalar(select(Member.active).where(Member.code == "L7")) is False
