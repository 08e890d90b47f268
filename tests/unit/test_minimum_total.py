"""The least annual total that leaves the approved lines room after the emergency reserve."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from taskforce.budget.service import minimum_total_fen, required_reserve_fen
from taskforce.policy import load_policy

POLICY = load_policy()


def _with_share(share: Decimal):
    budget = POLICY.budget.model_copy(update={"emergency_reserve_share": share})
    return POLICY.model_copy(update={"budget": budget})


@given(
    allocated=st.integers(min_value=0, max_value=10**15),
    share=st.decimals(min_value=0, max_value=Decimal("0.99"), places=4),
)
def test_it_is_enough_and_one_fen_less_is_not(allocated, share):
    policy = _with_share(share)
    least = minimum_total_fen(allocated, policy)
    assert least - required_reserve_fen(least, policy) >= allocated
    if least > 0:
        smaller = least - 1
        assert smaller - required_reserve_fen(smaller, policy) < allocated


def test_a_reserve_of_the_whole_total_leaves_no_total():
    assert minimum_total_fen(1, _with_share(Decimal(1))) is None
