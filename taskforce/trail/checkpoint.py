"""Routine verification from the last verified checkpoint.

A full verification reads every entry (a million in seconds). A routine one
starts from the newest checkpoint — the id and hash of the last entry a
previous verification found intact — checks that this entry still carries
that hash, and walks only the entries appended since. Each intact
verification records a new checkpoint in the caller's transaction.

What a routine run cannot see: a change to an entry *before* the checkpoint
that leaves the checkpoint entry itself untouched (an attacker would have to
recompute every later hash and keep the checkpoint entry's hash, which the
chain makes impossible without also changing it — unless they rewrite the
checkpoint table too). Hence `full=True` (`taskforce trail verify --full`)
regularly, which walks everything from the first entry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce.trail.models import TrailCheckpoint, TrailEntry, TrailHead
from taskforce.trail.service import TrailBreak, Verification, verify


@dataclass(frozen=True)
class Checkpoint:
    last_id: int
    last_hash: str
    verified_at: dt.datetime
    full: bool


def latest(session: Session) -> Checkpoint | None:
    row = session.scalars(
        select(TrailCheckpoint).order_by(TrailCheckpoint.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return Checkpoint(row.last_id, row.last_hash, row.verified_at, row.full)


def verify_routine(
    session: Session, *, at: dt.datetime, full: bool = False, workers: int | None = None
) -> tuple[Verification, Checkpoint | None]:
    """Verify from the newest checkpoint (or everything when `full` or there is none) and,
    when the chain is intact, record a checkpoint at its end. Returns the verification and
    the checkpoint it started from (None: it walked from the first entry)."""
    since = None if full else latest(session)
    if since is not None:
        stored = session.scalar(select(TrailEntry.hash).where(TrailEntry.id == since.last_id))
        if stored != since.last_hash:
            return (
                Verification(
                    since.last_id - 1,
                    TrailBreak(
                        since.last_id,
                        f"entry {since.last_id} no longer matches the checkpoint of "
                        f"{since.verified_at:%Y-%m-%d %H:%M} UTC",
                    ),
                ),
                since,
            )
    start = (since.last_id, since.last_hash) if since is not None else None
    result = verify(session, workers=workers, start=start)
    head = session.get(TrailHead, 1)
    if result.ok and result.entries > 0 and head is not None:
        # An intact chain ends where the head says (verify checked it): its last link.
        session.add(
            TrailCheckpoint(
                last_id=head.last_id,
                last_hash=head.last_hash,
                verified_at=at.astimezone(dt.UTC),
                full=since is None,
            )
        )
        session.flush()
    return result, since
