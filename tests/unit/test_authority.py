from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskforce.authority import Approver, is_major_matter, may_approve, route_amount, tally_vote
from taskforce.money import to_fen
from taskforce.policy.schema import GroupKind, Vote


@pytest.fixture
def authority(policy):
    return policy.authority


@pytest.mark.parametrize(
    ("amount", "approver"),
    [
        ("0", Approver.executive),
        ("4999999.99", Approver.executive),
        ("5000000.00", Approver.executive),
        ("5000000.01", Approver.leadership),
        ("9999999.99", Approver.leadership),
        ("10000000", Approver.leadership),
    ],
)
def test_route_amount_boundaries(authority, amount, approver):
    assert route_amount(to_fen(amount), authority).group == approver


@pytest.mark.parametrize(
    ("amount", "cross", "approver"),
    [
        ("9999999.99", True, Approver.leadership),  # above the executive maximum anyway
        ("10000000.00", True, Approver.leadership),  # 以上 includes 10,000,000
        (
            "4000000.00",
            True,
            Approver.executive,
        ),  # small cross-department amounts stay with executive
    ],
)
def test_cross_department_allocation(authority, amount, cross, approver):
    assert route_amount(to_fen(amount), authority, cross_department=cross).group == approver


def test_executive_may_approve_exactly_the_maximum_but_not_a_fen_more(authority):
    assert may_approve(GroupKind.executive, to_fen("5000000"), authority).allowed
    refused = may_approve(GroupKind.executive, to_fen("5000000.01"), authority)
    assert not refused.allowed
    assert refused.required == Approver.leadership
    assert "5000000" in refused.rule


def test_working_groups_and_reviewers_never_approve(authority):
    for kind in (
        GroupKind.working_group,
        GroupKind.compliance,
        GroupKind.evaluator,
        GroupKind.expert,
    ):
        assert not may_approve(kind, 1, authority).allowed


def test_leadership_may_approve_anything(authority):
    assert may_approve(GroupKind.leadership, to_fen("123456789.01"), authority).allowed


def test_negative_amount_refused(authority):
    with pytest.raises(ValueError):
        route_amount(-1, authority)


def test_major_matter_reasons(authority):
    assert is_major_matter(to_fen("5000000"), {"east"}, authority) == (False, [])
    major, reasons = is_major_matter(to_fen("5000000.01"), {"east"}, authority)
    assert major and len(reasons) == 1
    major, reasons = is_major_matter(0, {"east", "west"}, authority)
    assert major and "region" in reasons[0]
    assert is_major_matter(0, {"east"}, authority, flagged=True)[0]


TWO_THIRDS = Vote(pass_numerator=2, pass_denominator=3)


@pytest.mark.parametrize(
    ("members", "yes", "passed"),
    [
        (7, 4, False),
        (7, 5, True),  # 4/7 = 57 % fails, 5/7 passes
        (6, 3, False),
        (6, 4, True),  # exactly 2/3 (4 of 6) passes: 以上 includes
        (9, 5, False),
        (9, 6, True),  # exactly 6 of 9
        (3, 1, False),
        (3, 2, True),
        (5, 3, False),
        (5, 4, True),
        (1, 0, False),
        (1, 1, True),
    ],
)
def test_vote_boundaries(members, yes, passed):
    tally = tally_vote(yes, members - yes, 0, members, TWO_THIRDS)
    assert tally.passed is passed


def test_abstentions_and_absences_are_not_yes():
    tally = tally_vote(4, 0, 3, 7, TWO_THIRDS)
    assert not tally.passed and tally.required == 5
    tally = tally_vote(4, 0, 0, 7, TWO_THIRDS)
    assert tally.absent == 3 and not tally.passed


def test_more_ballots_than_members_refused():
    with pytest.raises(ValueError):
        tally_vote(5, 3, 0, 7, TWO_THIRDS)


@given(members=st.integers(1, 60), data=st.data())
def test_vote_matches_exact_fraction(members, data):
    yes = data.draw(st.integers(0, members))
    tally = tally_vote(yes, 0, 0, members, TWO_THIRDS)
    assert tally.passed == (Decimal(yes) / members >= Decimal(2) / 3 - Decimal("1e-30"))
    assert tally.passed == (yes >= tally.required)
