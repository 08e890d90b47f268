"""An index on task_node.parent_id: a goal's or sub-project's children without a scan.

The task ledger's goal and sub-project rows show their action items' progress, done state
and colour (taskforce/reviews/content.py, _roll_up). Without this index each lookup of a
node's children read every action item: 1.2 s more for a quarterly review at 1,000,000
items (benchmarks/RESULTS.md, session 8).

Revision ID: 0006_task_parent
Revises: 0005_trail_rowid
"""

from alembic import op

revision = "0006_task_parent"
down_revision = "0005_trail_rowid"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_node", schema=None) as batch_op:
        batch_op.create_index("ix_task_node_parent_id", ["parent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_node", schema=None) as batch_op:
        batch_op.drop_index("ix_task_node_parent_id")
