"""Who reads an audience: the lowest clearance among the members an audience tag reaches.

A channel's clearance (config/apprise.yml) says what the service may carry; the people
behind an audience say what its readers may read. A message to `wg:data` reaches every
member of that group through the group's channel, so its content goes out only when each
of them is cleared for it: one member cleared for public material (config/org.yaml
`clearance`) turns the group's internal messages into references ("an internal record,
issue 42: read it in the system"). SPEC §7: classified content never reaches an audience
that is not cleared for it.

A member is reached by their group's code, `member-<code>`, their contact tags, and
`director` and `oncall` when they are one. A tag that reaches no active member is read as
public: nobody is known to be cleared behind it (a mistyped contact tag, a member who left,
an `oncall` nobody holds), so its classified records go out as references only. The
channel's clearance alone would have let a typo in a channel's tags carry secret content.
`taskforce notify check` lists such tags.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from taskforce.org.models import Group, Member
from taskforce.policy.schema import Classification, Organisation


@dataclass(frozen=True)
class Reader:
    code: str
    group: str
    clearance: Classification
    contacts: tuple[str, ...] = ()
    director: bool = False
    on_call: bool = False

    def tags(self) -> set[str]:
        """The audience tags that reach this member (lower case, as Apprise matches them)."""
        tags = {self.group, f"member-{self.code}", *self.contacts}
        if self.director:
            tags.add("director")
        if self.on_call:
            tags.add("oncall")
        return {t.lower() for t in tags}


# What a tag that reaches no member may read (fail closed, see above).
NOBODY_KNOWN = Classification.public


class AudienceClearances(dict[str, Classification]):
    """Audience tag (lower case) -> the lowest clearance among the members it reaches."""

    def of(self, audience: str) -> Classification:
        """What the readers behind `audience` may read: NOBODY_KNOWN when no member is."""
        return self.get(audience.lower(), NOBODY_KNOWN)


def audience_clearances(readers: Iterable[Reader]) -> AudienceClearances:
    """Audience tag -> the lowest clearance among the members it reaches."""
    out = AudienceClearances()
    for reader in readers:
        for tag in reader.tags():
            if tag not in out or reader.clearance.rank < out[tag].rank:
                out[tag] = reader.clearance
    return out


def readers_in_database(session: Session) -> list[Reader]:
    """The active members as loaded from config/org.yaml (`taskforce init`)."""
    rows = session.execute(
        select(
            Member.code,
            Group.code,
            Member.clearance,
            Member.contacts,
            Member.director,
            Member.on_call,
        )
        .join(Group, Group.id == Member.group_id)
        .where(Member.active.is_(True))
    )
    return [
        Reader(code, group, Classification(clearance), tuple(contacts or ()), director, on_call)
        for code, group, clearance, contacts, director, on_call in rows
    ]


def readers_in_org(org: Organisation) -> list[Reader]:
    """The members of config/org.yaml (for `taskforce notify check`, before `init`)."""
    return [
        Reader(m.code, m.group, m.clearance, tuple(m.contacts), m.director, m.on_call)
        for m in org.members
    ]
