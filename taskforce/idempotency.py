"""Every input has an idempotency key (ARCHITECTURE.md rule 2): a replay returns the first result."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from taskforce.db import Base


class CommandRecord(Base):
    __tablename__ = "command_record"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    command: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict] = mapped_column(default=dict)
    at: Mapped[dt.datetime]


def previous_result(session: Session, key: str | None) -> dict | None:
    if not key:
        return None
    row = session.execute(
        select(CommandRecord.result).where(CommandRecord.key == key)
    ).scalar_one_or_none()
    return row


def remember(
    session: Session, key: str | None, command: str, result: dict, at: dt.datetime
) -> None:
    if key:
        session.add(CommandRecord(key=key, command=command, result=result, at=at))
