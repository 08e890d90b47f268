"""Migration 0009_risk_scale: a risk may be rated above 5 (the configured matrix decides),
never below 1; the downgrade restores 1 to 5 and refuses while a rating is above it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from tests.db.test_migration_0005 import _alembic


def _rate(engine, code: str, probability: int) -> None:
    with engine.begin() as c:
        unit = c.execute(text("SELECT id FROM unit ORDER BY id LIMIT 1")).scalar()
        c.execute(
            text(
                "INSERT INTO risk (code, title, category, probability, impact, strategy, "
                "owner_unit_id, plan, classification, reviewed_at) VALUES (:code, 't', "
                "'policy', :p, 1, 'accept', :unit, '', 'internal', CURRENT_TIMESTAMP)"
            ),
            {"code": code, "p": probability, "unit": unit},
        )


def test_risk_scale_migration_up_and_down(engine):
    _rate(engine, "R-SEVEN", 7)  # head: no fixed top
    with pytest.raises(IntegrityError):
        _rate(engine, "R-ZERO", 0)
    with pytest.raises((IntegrityError, DBAPIError)):  # 7 is off the old 5×5 scale
        _alembic(engine, "downgrade", "0008_derived_colour")
    with engine.begin() as c:
        c.execute(text("UPDATE risk SET probability = 5"))
    _alembic(engine, "downgrade", "0008_derived_colour")
    with pytest.raises(IntegrityError):
        _rate(engine, "R-SIX", 6)
    _alembic(engine, "upgrade", "head")
    _rate(engine, "R-SIX", 6)
    with engine.connect() as c:
        ratings = c.execute(text("SELECT code, probability FROM risk ORDER BY code")).all()
    assert [tuple(r) for r in ratings] == [("R-SEVEN", 5), ("R-SIX", 6)]
