"""SPEC §2.2: a matter within the executive's authority and one region is major when the
executive director flags it. Before, any operator's tick did (and the trail said "flagged
by the executive director"); now the flag names the director, and nothing else is taken."""

import pytest
from sqlalchemy import func, select

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.errors import DomainError, NotFound
from taskforce.loop.models import Decision, Issue, Meeting, Stage
from taskforce.trail.models import TrailEntry
from tests.loop.helpers import Loop


@pytest.fixture
def loop(engine, policy, clock):
    return Loop(engine, Context(policy=policy, clock=clock))


def _written(engine) -> tuple[int, int, int]:
    with unit_of_work(engine) as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m)) for m in (Meeting, Decision, TrailEntry)
        )


def test_the_directors_flag_makes_a_major_matter_and_is_on_the_trail(loop, engine):
    r = loop.report()
    done = loop.coordinate(r.issue_number, major=True, flagged_by="E1")
    assert done.detail["major"] and done.stage == "coordinating"
    with unit_of_work(engine) as s:
        reasons = s.scalar(select(Decision.major_reasons))
        payload = s.scalar(
            select(TrailEntry.payload).where(TrailEntry.action == "meeting.recorded")
        )
    assert reasons == ["flagged as major by the executive director"]
    assert '"flagged_major_by":"E1"' in payload.replace(" ", "")


@pytest.mark.parametrize(
    ("flagged_by", "error", "says"),
    [
        (
            None,
            DomainError,
            r"flagged_by: .*whose flag.* \(allowed: the executive director's member code: E1 周晓东\)",
        ),
        (
            "E2",
            DomainError,
            r"flagged_by: E2 吴静 is not the executive director \(allowed: .*E1 周晓东\)",
        ),
        ("L1", DomainError, r"flagged_by: L1 王建国 is not the executive director"),
        ("nobody", NotFound, r"flagged_by: no active member 'nobody'"),
    ],
)
def test_a_flag_not_the_directors_is_refused_and_nothing_is_written(
    loop, engine, flagged_by, error, says
):
    r = loop.report()
    before = _written(engine)
    with pytest.raises(error, match=says):
        loop.coordinate(r.issue_number, major=True, flagged_by=flagged_by)
    assert _written(engine) == before
    with unit_of_work(engine) as s:
        assert s.scalar(select(Issue.stage)) == Stage.reported


def test_a_flagger_without_the_flag_is_refused(loop, engine):
    r = loop.report()
    before = _written(engine)
    with pytest.raises(DomainError, match=r"flagged_by: given, but the matter is not flagged"):
        loop.coordinate(r.issue_number, major=False, flagged_by="E1")
    assert _written(engine) == before
    assert loop.coordinate(r.issue_number).stage == "planning"  # not major: decided at once
