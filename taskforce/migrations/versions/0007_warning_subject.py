"""An index on warning (subject_type, subject_id): a subject's warnings without a scan.

Completing an action item or closing an issue settles the warnings about it
(taskforce/emergency/warnings.py, settle_warnings). A weekly sweep can raise thousands of
orange warnings, and they accumulate over the years. Without this index, each completion
would read every open warning.

Revision ID: 0007_warning_subject
Revises: 0006_task_parent
"""

from alembic import op

revision = "0007_warning_subject"
down_revision = "0006_task_parent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("warning", schema=None) as batch_op:
        batch_op.create_index("ix_warning_subject", ["subject_type", "subject_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("warning", schema=None) as batch_op:
        batch_op.drop_index("ix_warning_subject")
