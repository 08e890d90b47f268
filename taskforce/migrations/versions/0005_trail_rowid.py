"""The trail: its id as SQLite's rowid, and no unique index on its hashes.

Why: every appended entry was written into three B-trees besides the table's own. On SQLite
the BIGINT primary key was an index of its own (only a column declared INTEGER is the rowid),
and UNIQUE(hash) put each entry on a random page of an index as large as the trail, since
hashes are spread uniformly: the dispatch sweep appends tens of thousands of entries in one
transaction, the gateway a dozen per batch, and those pages were a large share of what they
wrote (benchmarks/RESULTS.md, session 6). The index guarded nothing: each hash covers its
predecessor's, so the chain makes them distinct, verification walks the entries by id, and no
query looks an entry up by its hash.

SQLite cannot change a column's type or drop a table constraint in place: the table is
rebuilt (a copy of every entry, in the migration's transaction) with its index and its
append-only triggers. PostgreSQL keeps BIGINT and only drops the constraint.

Revision ID: 0005_trail_rowid
Revises: 0004_sweep
"""

from alembic import op

revision = "0005_trail_rowid"
down_revision = "0004_sweep"
branch_labels = None
depends_on = None

_COLUMNS = (
    "id, at, actor, action, subject_type, subject_id, payload, classification, "
    "calendar_fallback, prev_hash, hash"
)


def _create_sqlite_table(name: str, id_type: str, hash_unique: bool) -> None:
    unique = ",\n\tCONSTRAINT uq_trail_entry_hash UNIQUE (hash)" if hash_unique else ""
    op.execute(
        f"""CREATE TABLE {name} (
\tid {id_type} NOT NULL,
\tat DATETIME NOT NULL,
\tactor VARCHAR(100) NOT NULL,
\taction VARCHAR(64) NOT NULL,
\tsubject_type VARCHAR(32) NOT NULL,
\tsubject_id VARCHAR(64) NOT NULL,
\tpayload TEXT NOT NULL,
\tclassification VARCHAR(32) NOT NULL,
\tcalendar_fallback BOOLEAN NOT NULL,
\tprev_hash VARCHAR(64) NOT NULL,
\thash VARCHAR(64) NOT NULL,
\tCONSTRAINT pk_trail_entry PRIMARY KEY (id){unique},
\tCONSTRAINT ck_trail_entry_classification
\t\tCHECK (classification IN ('public', 'internal', 'secret'))
)"""
    )


def _rebuild_sqlite(id_type: str, hash_unique: bool) -> None:
    _create_sqlite_table("trail_entry_rebuilt", id_type, hash_unique)
    op.execute(
        f"INSERT INTO trail_entry_rebuilt ({_COLUMNS}) SELECT {_COLUMNS} FROM trail_entry "
        "ORDER BY id"
    )
    # Dropping the table drops its index and triggers (no trigger fires on a DROP).
    op.execute("DROP TABLE trail_entry")
    op.execute("ALTER TABLE trail_entry_rebuilt RENAME TO trail_entry")
    op.execute("CREATE INDEX ix_trail_entry_action ON trail_entry (action)")
    for verb in ("UPDATE", "DELETE"):  # as 0001_initial_schema creates them
        op.execute(
            f"CREATE TRIGGER trail_entry_no_{verb.lower()} BEFORE {verb} ON trail_entry "
            f"BEGIN SELECT RAISE(ABORT, 'trail_entry is append-only: {verb} refused'); END"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite("INTEGER", hash_unique=False)
    else:
        op.drop_constraint("uq_trail_entry_hash", "trail_entry", type_="unique")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite("BIGINT", hash_unique=True)
    else:
        op.create_unique_constraint("uq_trail_entry_hash", "trail_entry", ["hash"])
