from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taskforce.columns import classification_column
from taskforce.db import Base
from taskforce.policy.schema import Classification


class TrailEntry(Base):
    """One link of the hash chain. Never updated or deleted (a PostgreSQL trigger refuses both)."""

    __tablename__ = "trail_entry"
    # 1, 2, 3 … On SQLite declared INTEGER, which makes it the table's rowid (BIGINT was an
    # index of its own beside the table: migration 0005_trail_rowid).
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON
    classification: Mapped[Classification] = classification_column()
    calendar_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    # Not UNIQUE: the chain makes hashes distinct, and no query looks one up (0005_trail_rowid).
    hash: Mapped[str] = mapped_column(String(64))


class TrailHead(Base):
    """A single row: the last link, locked by every append so the chain never forks."""

    __tablename__ = "trail_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class TrailCheckpoint(Base):
    """A verified prefix of the chain: entries 1..last_id checked at `verified_at`.

    Routine verification starts from the newest one (checking that its entry still carries
    `last_hash`) and walks only the entries appended since; `taskforce trail verify --full`
    walks everything. A checkpoint is only as trustworthy as the database it is stored in,
    which is why a full verification still runs regularly.
    """

    __tablename__ = "trail_checkpoint"
    id: Mapped[int] = mapped_column(primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[dt.datetime]
    full: Mapped[bool] = mapped_column(Boolean)  # verified from the first entry
