"""Action-item colours derived, not stored: task_node loses colour, colour_since and
next_colour_change_on (and the sweep index on it).

A colour is a function of an item's dates, its progress and today (taskforce/loop/colours.py);
storing it meant rewriting tens of thousands of rows each week for a value any reader can
compute, and a stored colour was as stale as the last sweep. What stays is what happened:
interview_requested_at, escalated_at and next_action_on, whose meaning widens: the day the next
red-item step falls due, the first red day included. The sweep's state row is deleted, so the
first sweep after this migration is a full recompute that sets next_action_on for every open
item.

Revision ID: 0008_derived_colour
Revises: 0007_warning_subject
"""

import sqlalchemy as sa
from alembic import op

import taskforce.db

revision = "0008_derived_colour"
down_revision = "0007_warning_subject"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM sweep_state")
    with op.batch_alter_table("task_node", schema=None) as batch_op:
        batch_op.drop_index("ix_task_node_sweep_due")
        batch_op.drop_constraint("colour", type_="check")
        batch_op.drop_column("next_colour_change_on")
        batch_op.drop_column("colour_since")
        batch_op.drop_column("colour")


def downgrade() -> None:
    op.execute("DELETE FROM sweep_state")  # the stored colours are recomputed by a full sweep
    with op.batch_alter_table("task_node", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "colour",
                sa.Enum("green", "yellow", "red", name="colour", native_enum=False, length=32),
                nullable=False,
                server_default="green",
            )
        )
        batch_op.add_column(
            sa.Column("colour_since", taskforce.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("next_colour_change_on", sa.Date(), nullable=True))
        batch_op.create_check_constraint("colour", "colour IN ('green', 'yellow', 'red')")
        batch_op.create_index(
            "ix_task_node_sweep_due", ["level", "done", "next_colour_change_on"], unique=False
        )
