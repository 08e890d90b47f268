"""Every input has an idempotency key (ARCHITECTURE.md rule 2): a replay returns the first result."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from taskforce.db import Base
from taskforce.errors import DomainError


class CommandRecord(Base):
    __tablename__ = "command_record"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    command: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict] = mapped_column(default=dict)
    at: Mapped[dt.datetime]


# Where a command's result keeps the fingerprint of the input it answered.
INPUT_FINGERPRINT = "_input_sha256"


def fingerprint(*parts: Any) -> str:
    """A stable digest of a command's input (forms as their JSON, other values as text)."""

    def plain(value: Any) -> Any:
        return value.model_dump(mode="json") if isinstance(value, BaseModel) else value

    text = json.dumps([plain(p) for p in parts], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def previous_result(session: Session, key: str | None, *, seen: str | None = None) -> dict | None:
    """The first result of the command with this key, or None if there was none.

    `seen`: the fingerprint of this call's input. A key already used for a *different*
    input is refused (like a payment API's idempotency keys): returning the first result
    would silently drop the new input — a second, different report answered as the first.
    """
    if not key:
        return None
    row = session.execute(
        select(CommandRecord.result).where(CommandRecord.key == key)
    ).scalar_one_or_none()
    if row is None:
        return None
    first = row.get(INPUT_FINGERPRINT) if isinstance(row, dict) else None
    if seen is not None and first is not None and first != seen:
        raise DomainError(
            f"{key!r} was already used for a different input",
            field="idempotency_key",
            allowed="a new key for a new input; the same input again returns its first result",
        )
    return {k: v for k, v in row.items() if k != INPUT_FINGERPRINT}


def remember(
    session: Session,
    key: str | None,
    command: str,
    result: dict,
    at: dt.datetime,
    *,
    seen: str | None = None,
) -> None:
    if key:
        if seen is not None:
            result = {**result, INPUT_FINGERPRINT: seen}
        session.add(CommandRecord(key=key, command=command, result=result, at=at))
