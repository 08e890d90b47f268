"""Risk ratings on the configured matrix: probability and impact at least 1, no fixed top.

SPEC §6 rates a risk on a 5×5 matrix, and every number of the SPEC is a default of config/
(`risk.matrix_size`). The database fixed the top at 5, so an office on a 4×4 or 10×10
matrix could not rate on it. The upper bound is now the service's check against the
policy in force (taskforce/registers/service.py); the database keeps the floor.

Revision ID: 0009_risk_scale
Revises: 0008_derived_colour
"""

from alembic import op

revision = "0009_risk_scale"
down_revision = "0008_derived_colour"
branch_labels = None
depends_on = None

_NAMES = ("ck_risk_probability_range", "ck_risk_impact_range")


def upgrade() -> None:
    with op.batch_alter_table("risk", schema=None) as batch_op:
        for name in _NAMES:
            batch_op.drop_constraint(op.f(name), type_="check")
        batch_op.create_check_constraint(op.f(_NAMES[0]), "probability >= 1")
        batch_op.create_check_constraint(op.f(_NAMES[1]), "impact >= 1")


def downgrade() -> None:
    # Refused while a risk is rated above 5: re-rate it on the 5×5 matrix first.
    with op.batch_alter_table("risk", schema=None) as batch_op:
        for name in _NAMES:
            batch_op.drop_constraint(op.f(name), type_="check")
        batch_op.create_check_constraint(op.f(_NAMES[0]), "probability BETWEEN 1 AND 5")
        batch_op.create_check_constraint(op.f(_NAMES[1]), "impact BETWEEN 1 AND 5")
