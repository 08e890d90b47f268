"""A duplicate report's trail entry holds the report's own title: it is classified at the
higher of the report's and the issue's level (SPEC §7), so a secret report linked to an
internal issue is not readable, nor announced, at the issue's level."""

import pytest
from sqlalchemy import func, select

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.notify.models import OutboxMessage
from taskforce.policy.schema import Classification
from taskforce.trail.models import TrailEntry
from tests.loop.helpers import Loop


@pytest.fixture
def loop(engine, policy, clock):
    return Loop(engine, Context(policy=policy, clock=clock))


def _linked(engine) -> tuple[TrailEntry, list[Classification]]:
    with unit_of_work(engine) as s:
        entry = s.scalars(
            select(TrailEntry).where(TrailEntry.action == "issue.duplicate_linked")
        ).one()
        notices = s.scalars(
            select(OutboxMessage.classification).where(OutboxMessage.trail_entry_id == entry.id)
        ).all()
        s.expunge(entry)
        return entry, list(notices)


@pytest.mark.parametrize(
    ("issue_level", "report_level", "entry_level"),
    [
        ("internal", "secret", "secret"),  # the report's title is secret
        ("secret", "secret", "secret"),
        ("public", "internal", "internal"),
        ("internal", "internal", "internal"),
    ],
)
def test_a_duplicate_reports_entry_is_at_the_higher_level(
    loop, engine, issue_level, report_level, entry_level
):
    first = loop.report(title="企业开办材料重复提交", classification=issue_level)
    again = loop.report(title="企业开办材料重复提交。", classification=report_level)
    assert again.duplicate and again.issue_number == first.issue_number
    entry, notices = _linked(engine)
    assert entry.classification == Classification(entry_level)
    assert notices and set(notices) == {Classification(entry_level)}


def test_an_internal_report_is_never_linked_to_a_secret_issue(loop, engine):
    """A classification audit: an internal report of a guessed title was linked to the
    secret issue of that title, and its log ("linked to TF-… as a duplicate report; … at
    stage …") confirmed the guess to an internal reader. It opens an issue of its own; a
    secret report of the same title still joins the secret issue."""
    from taskforce.errors import NotFound
    from taskforce.loop.models import Issue

    hidden = loop.report(title="北区化工园区爆炸隐患排查", classification="secret")
    guessed = loop.report(title="北区化工园区爆炸隐患排查", classification="internal")
    assert not guessed.duplicate and guessed.issue_number != hidden.issue_number
    cleared = loop.report(title="北区化工园区爆炸隐患排查。", classification="secret")
    assert cleared.duplicate and cleared.issue_number == hidden.issue_number
    # Named outright, refused as an issue that does not exist: nothing more is said.
    with pytest.raises(NotFound, match=r"duplicate_of: no issue TF-\S+ at this report's"):
        loop.report(title="另一份报告", classification="internal", duplicate_of=hidden.issue_number)
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count(Issue.id))) == 2
