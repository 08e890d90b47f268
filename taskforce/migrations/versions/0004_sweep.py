"""Incremental dispatch sweep: next colour-change and next red-step dates, and the sweep's state.

`task_node.next_colour_change_on` / `next_action_on` stay NULL for existing rows: NULL means
"unknown, recompute", and with no `sweep_state` row the first sweep after this migration is a
full recompute that sets both for every open action item (set-based, in one pass).

Revision ID: 0004_sweep
Revises: 0003_trail_checkpoint
"""

import sqlalchemy as sa
from alembic import op

import taskforce.db

revision = "0004_sweep"
down_revision = "0003_trail_checkpoint"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweep_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("last_run_at", taskforce.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweep_state")),
    )
    with op.batch_alter_table("task_node", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_colour_change_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("next_action_on", sa.Date(), nullable=True))
        batch_op.create_index(
            "ix_task_node_sweep_due", ["level", "done", "next_colour_change_on"], unique=False
        )
        batch_op.create_index(
            "ix_task_node_action_due", ["level", "done", "next_action_on"], unique=False
        )
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.create_index("ix_issue_stage_due", ["stage", "stage_due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.drop_index("ix_issue_stage_due")
    with op.batch_alter_table("task_node", schema=None) as batch_op:
        batch_op.drop_index("ix_task_node_action_due")
        batch_op.drop_index("ix_task_node_sweep_due")
        batch_op.drop_column("next_action_on")
        batch_op.drop_column("next_colour_change_on")
    op.drop_table("sweep_state")
