"""Index issue.lead_unit_id: duplicate detection reads the lead unit's open issues per report.

Revision ID: 0002_bench
Revises: 0001
"""

from alembic import op

revision = "0002_bench"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issue_lead_unit_id"), ["lead_unit_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issue_lead_unit_id"))
