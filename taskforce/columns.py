"""Column helpers shared by every domain's models."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Enum as SAEnum
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from taskforce.policy.schema import Classification


def enum_column(enum: type[StrEnum], **kwargs):
    """A portable enum: VARCHAR with a CHECK constraint, values stored as text."""
    return mapped_column(
        SAEnum(
            enum,
            native_enum=False,
            create_constraint=True,
            length=32,
            values_callable=lambda e: [m.value for m in e],
            name=enum.__name__.lower(),
        ),
        **kwargs,
    )


def classification_column():
    return enum_column(Classification, default=Classification.internal, nullable=False)


class Timestamped:
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False)


def code_column(length: int = 64, **kwargs):
    return mapped_column(String(length), **kwargs)
