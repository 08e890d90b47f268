"""An emergency named by the first characters of its id (an operator trial: people typed
the first eight characters of the id a page showed them, as they would a commit's)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.models import EmergencyStatus
from taskforce.emergency.queries import SHORT_ID_MIN, get_emergency
from taskforce.errors import DomainError, NotFound
from taskforce.trail.models import TrailEntry
from tests.emergency.test_service import _open


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


def _in_minutes_apart(engine, ctx, clock):
    """Two emergencies a few minutes apart (different first 8 characters), and a third
    opened in the same instant as the second (the same first 12 and more)."""
    first = _open(engine, ctx, key="a").emergency_id
    clock.advance(minutes=3)
    second = _open(engine, ctx, key="b").emergency_id
    third = _open(engine, ctx, key="c").emergency_id
    return first, second, third


def test_the_first_eight_characters_name_an_emergency_when_no_other_shares_them(engine, ctx, clock):
    first, second, third = _in_minutes_apart(engine, ctx, clock)
    assert first[:SHORT_ID_MIN] != second[:SHORT_ID_MIN] == third[:SHORT_ID_MIN]
    with unit_of_work(engine) as s:
        assert get_emergency(s, first[:8]).public_id == first
        assert get_emergency(s, first[:13]).public_id == first  # with its dash
        assert get_emergency(s, second).public_id == second  # the whole id, as always
        state = service.acknowledge(s, ctx, first[:8], actor="E1")
    assert state.public_id == first and state.status == EmergencyStatus.acknowledged
    with unit_of_work(engine) as s:
        subjects = s.scalars(
            select(TrailEntry.subject_id).where(TrailEntry.action == "emergency.acknowledged")
        ).all()
    assert subjects == [first]  # the trail names the whole id


def test_an_id_in_upper_case_names_its_emergency(engine, ctx, clock):
    first, _, _ = _in_minutes_apart(engine, ctx, clock)
    with unit_of_work(engine) as s:
        assert get_emergency(s, first.upper()).public_id == first
        assert get_emergency(s, first[:8].upper()).public_id == first


def test_characters_two_emergencies_share_are_refused_listing_both(engine, ctx, clock):
    _, second, third = _in_minutes_apart(engine, ctx, clock)
    shared = next(i for i in range(36) if second[i] != third[i])
    with unit_of_work(engine) as s:
        with pytest.raises(DomainError) as refused:
            service.acknowledge(s, ctx, second[:SHORT_ID_MIN], actor="E1")
        assert get_emergency(s, second[: shared + 1]).public_id == second  # one more: unique
    assert not isinstance(refused.value, NotFound)
    assert refused.value.field == "emergency_id"
    assert "begins the ids of 2 emergencies" in str(refused.value)
    assert second in refused.value.allowed and third in refused.value.allowed
    assert "数据平台中断" not in str(refused.value)  # no titles: one may be classified
    with unit_of_work(engine) as s:
        statuses = s.scalars(
            select(TrailEntry.id).where(TrailEntry.action == "emergency.acknowledged")
        ).all()
    assert statuses == []  # nothing acknowledged


@pytest.mark.parametrize(
    "typed, says",
    [
        ("0190a1b", "its first 8 characters or more"),  # 7: too few
        ("0190a1b%", "its first 8 characters or more"),  # a LIKE wildcard is not an id
        ("ffffffff", None),  # well formed; no emergency's id begins with it
    ],
)
def test_too_little_or_not_an_id_is_refused_as_not_found(engine, ctx, typed, says):
    _open(engine, ctx, key="only")
    with unit_of_work(engine) as s, pytest.raises(NotFound) as refused:
        get_emergency(s, typed)
    assert refused.value.field == "emergency_id"
    assert repr(typed) in str(refused.value)
    if says:
        assert says in refused.value.allowed


@pytest.mark.parametrize(
    ("typed", "wrong"),
    [
        ("019ac3f", "7 characters, fewer than 8"),
        ("019ac3f2-5b1e-7c40-9a8d-2f6e1b7c9d030", "37 characters, more than 36"),
        ("019ac3f2 5b1e", "' ' is neither a hexadecimal digit nor a dash"),
        ("019ac3g2", "'g' is neither a hexadecimal digit nor a dash"),
        ("019ac3f25b1e", "its dashes are not where an id has them"),
    ],
)
def test_a_malformed_id_is_refused_in_words_with_an_id_as_the_system_makes_them(typed, wrong):
    """acknowledge-emergency refused a short id with the pattern alone (^[0-9a-fA-F]{8}(-…):
    the refusal says what was wrong and what an id looks like, its example one the system
    would make (new_public_id: a UUID version 7)."""
    import datetime as dt
    import re

    from flows.emergency import AnswerForm
    from taskforce.emergency.service import new_public_id
    from taskforce.errors import problem_text

    with pytest.raises(ValidationError) as refused:
        AnswerForm(emergency_id=typed, actor="E1")
    (error,) = refused.value.errors()
    said = problem_text(error)
    assert error["loc"] == ("emergency_id",)
    assert said.startswith(f"not an emergency id ({wrong}); allowed: an emergency's id as")
    assert "36 characters, 32 hexadecimal digits (0-9 and a-f) in groups of 8, 4, 4, 4 and 12" in (
        said
    )
    assert "first 8 characters or more (e.g. 019ac3f2)" in said
    assert "[0-9" not in said and "^" not in said  # no pattern
    example = re.search(r"e\.g\. ([0-9a-f-]{36});", said).group(1)
    made = new_public_id(dt.datetime(2026, 11, 29, 13, 0, tzinfo=dt.UTC))
    assert [i for i, c in enumerate(example) if c == "-"] == [8, 13, 18, 23]
    assert [i for i, c in enumerate(made) if c == "-"] == [8, 13, 18, 23]
    assert example[14] == made[14] == "7" and example[19] in "89ab" and made[19] in "89ab"
    assert AnswerForm(emergency_id=example, actor="E1").emergency_id == example


def test_the_answer_form_takes_a_whole_id_or_its_first_eight_characters():
    from flows.emergency import AnswerForm

    whole = "019ac3f2-5b1e-7c40-9a8d-2f6e1b7c9d03"
    for typed in (whole, whole[:8], whole[:13], whole[:20]):
        assert AnswerForm(emergency_id=typed, actor="E1").emergency_id == typed
        # Pasted in upper case (an operator trial): taken, as the ids are stored.
        assert AnswerForm(emergency_id=typed.upper(), actor="E1").emergency_id == typed
    # Spaces around a pasted id are the form's to strip (Form: str_strip_whitespace).
    assert AnswerForm(emergency_id=f" {whole[:8]} ", actor="E1").emergency_id == whole[:8]
    for typed in (whole[:7], whole + "0", "019ac3f2 5b1e", "019ac3f2%", "019ac3g2"):
        with pytest.raises(ValidationError, match="emergency_id"):
            AnswerForm(emergency_id=typed, actor="E1")
