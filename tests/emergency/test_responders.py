"""Who may answer an emergency from a form: the groups it pages, cleared for it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.forms import EmergencyIntake
from taskforce.emergency.models import Level
from taskforce.emergency.responders import require_responder
from taskforce.errors import DomainError
from taskforce.policy.schema import Classification


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


def _open(engine, ctx, level: str, classification: str, key: str, wg="wg:data") -> str:
    intake = EmergencyIntake(
        level=Level(level),
        title="数据平台中断",
        working_group=wg,
        classification=Classification(classification),
    )
    with unit_of_work(engine) as s:
        return service.open_emergency(
            s, ctx, intake, source="monitoring", dedup_key=key, actor="test"
        ).emergency_id


def _may(engine, ctx, public_id: str, actor: str) -> bool | str:
    with unit_of_work(engine) as s:
        try:
            require_responder(s, ctx, public_id, actor)
        except DomainError as refused:
            assert refused.field == "actor"
            return str(refused)
    return True


def test_a_level_iii_emergency_is_answered_up_its_chain_by_members_cleared_for_it(engine, ctx):
    public_id = _open(engine, ctx, "III", "internal", "k3")
    assert _may(engine, ctx, public_id, "W3") is True  # its working group
    assert _may(engine, ctx, public_id, "E3") is True and _may(engine, ctx, public_id, "L1") is True
    other_group = _may(engine, ctx, public_id, "W1")
    assert "W1 of wg:approval is not among the groups it pages (level III" in other_group
    uncleared = _may(engine, ctx, public_id, "W4")  # wg:data, cleared for public material
    assert "W4 is cleared for public material and the emergency is internal" in uncleared
    assert "W3 褚涛" in uncleared and "W4 卫宁" not in uncleared  # who may, by name


def test_a_level_i_emergency_is_answered_by_the_leadership_group(engine, ctx):
    public_id = _open(engine, ctx, "I", "secret", "k1")
    assert _may(engine, ctx, public_id, "L1") is True
    refused = _may(engine, ctx, public_id, "E1")  # the executive director: not paged for it
    assert (
        "(level I: leadership)" in refused
        and "a member of leadership cleared for secret" in refused
    )


def test_a_secret_level_ii_emergency_is_not_answered_by_an_internal_member(engine, ctx):
    public_id = _open(engine, ctx, "II", "secret", "k2")
    assert _may(engine, ctx, public_id, "E1") is True
    assert "E3 is cleared for internal material" in _may(engine, ctx, public_id, "E3")


def test_a_raised_emergency_is_answered_by_its_new_chain(engine, ctx):
    public_id = _open(engine, ctx, "III", "internal", "raise")
    assert _may(engine, ctx, public_id, "W3") is True
    assert _open(engine, ctx, "I", "internal", "raise") == public_id  # the repeat raises it
    assert "not among the groups it pages (level I" in _may(engine, ctx, public_id, "W3")
    assert _may(engine, ctx, public_id, "L2") is True


@pytest.mark.parametrize(
    ("level", "classification", "actor", "refusal"),
    [
        ("I", "secret", "E1", None),  # the executive office records every level's deadlines
        ("I", "secret", "L1", None),  # the leading group
        ("I", "secret", "E3", "E3 is cleared for internal material"),
        ("II", "internal", "X1", "X1 of expert is not among the groups that record"),
        ("II", "internal", "V1", "V1 of evaluator is not among the groups that record"),
        ("I", "secret", "W4", "W4 of wg:data is not among the groups that record"),
    ],
)
def test_a_deadline_is_recorded_as_met_by_a_responder_or_the_executive_office_if_cleared(
    engine, ctx, level, classification, actor, refusal
):
    """Recording a deadline as met stops its escalation. The executive office records it
    for any level (a level-I emergency does not page it), the groups it pages for theirs;
    an expert or the evaluator may not (both could: an operator trial), nor a member not
    cleared for it."""
    from taskforce.emergency.responders import require_recorder

    public_id = _open(engine, ctx, level, classification, "k-deadline")
    with unit_of_work(engine) as s:
        if refusal is None:
            assert require_recorder(s, ctx, public_id, actor).code == actor
            return
        with pytest.raises(DomainError, match=refusal) as refused:
            require_recorder(s, ctx, public_id, actor)
    assert refused.value.field == "actor"
    assert "E1" in refused.value.allowed and "X1" not in refused.value.allowed


def test_a_page_goes_to_the_members_who_may_acknowledge_it(engine, ctx):
    """wg:data's on-call member W3 is cleared (here) for public material only, W4 for
    internal: an internal level-III emergency of wg:data pages W4, who may answer it,
    not W3, whose acknowledgement would be refused. With nobody of wg:data cleared (a
    secret one), paging starts at the executive group, whose on-call members are: W3 would
    have been paged three times, a reference each, before anyone who may answer heard of it
    (45 minutes; an operator trial)."""
    from sqlalchemy import update

    from taskforce.emergency.models import Emergency
    from taskforce.org.models import Member

    with unit_of_work(engine) as s:
        s.execute(update(Member).where(Member.code == "W3").values(clearance="public"))
        s.execute(update(Member).where(Member.code == "W4").values(clearance="internal"))

    def paged(level: str, classification: str, key: str) -> list[str]:
        public_id = _open(engine, ctx, level, classification, key)
        with unit_of_work(engine) as s:
            return service.page_if_unpaged(s, ctx, public_id, actor="test", reason="test")

    assert paged("III", "internal", "k-cleared") == ["W4"]
    assert paged("III", "secret", "k-nobody") == ["E1", "E2"]  # the first step with someone
    assert paged("III", "public", "k-public") == ["W3"]  # everyone cleared: the on-call one
    with unit_of_work(engine) as s:
        assert s.query(Emergency).count() == 3
        secret = s.scalar(select(Emergency).where(Emergency.dedup_key == "k-nobody"))
        assert secret.leading_group == "working_group"  # still wg:data's to lead
        assert ctx.policy.emergency.escalation_chain[secret.escalation_step] == "executive"
