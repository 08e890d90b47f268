"""What the incremental dispatch sweep relies on: the colour policy the stored red-step days
(`task_node.next_action_on`) were computed with.

The sweep keeps a fingerprint of `progress.*` and `timezone` in `sweep_state` and recomputes
every open item when the current policy's differs. A progress report or a plan filed under a
policy other than the recorded one stores dates of that other policy; it clears the recorded
fingerprint so that the next sweep recomputes whichever policy is then in force (without
this, a change A → B → A would let B's dates pass as A's).
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import update
from sqlalchemy.orm import Session

from taskforce.loop.models import SweepState
from taskforce.policy import Policy

STATE_ID = 1
UNKNOWN = ""  # a fingerprint no policy has: the next sweep recomputes everything


def policy_fingerprint(policy: Policy) -> str:
    """What the stored step days depend on: the colour rule's thresholds (the escalation
    window among them) and the timezone that decides "today". Another fingerprint means a
    full recompute."""
    basis = {"progress": policy.progress.model_dump(mode="json"), "timezone": policy.timezone}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def dates_written(session: Session, policy: Policy) -> None:
    """Call where step days are stored outside the sweep (progress, plans), as the step's
    first write: before it locks its issue, its items or the trail head.

    The sweep locks this row first and the items and the trail head after it. A step that
    took them in the other order (its item, then this row) deadlocked with the first sweep
    after a policy change, the one time a step writes here. One conditional UPDATE: it
    locks the row only when it changes it, and after waiting for a sweep it reads the row
    again, so a sweep that has just recorded this policy's fingerprint is left alone."""
    current = policy_fingerprint(policy)
    session.execute(
        update(SweepState)
        .where(
            SweepState.id == STATE_ID,
            SweepState.policy_fingerprint.not_in((current, UNKNOWN)),
        )
        .values(policy_fingerprint=UNKNOWN)
        .execution_options(synchronize_session=False)
    )
