"""Verified trail checkpoints: routine verification walks only the entries appended since.

Revision ID: 0003_trail_checkpoint
Revises: 0002_bench
"""

import sqlalchemy as sa
from alembic import op

import taskforce.db

revision = "0003_trail_checkpoint"
down_revision = "0002_bench"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trail_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("verified_at", taskforce.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trail_checkpoint")),
    )


def downgrade() -> None:
    op.drop_table("trail_checkpoint")
