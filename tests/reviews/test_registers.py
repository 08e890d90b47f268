import datetime as dt
import json

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taskforce.context import Context
from taskforce.emergency.models import EarlyWarning
from taskforce.errors import DomainError, NotFound
from taskforce.policy.schema import MAX_MATRIX_SIZE
from taskforce.registers.forms import MilestoneForm, RiskForm
from taskforce.registers.models import Risk
from taskforce.registers.service import (
    milestone_colour,
    risk_colour,
    upsert_milestone,
    upsert_risk,
)
from taskforce.trail.models import TrailEntry
from tests.locks import until_waiting_for_a_lock


def _risk(**over) -> RiskForm:
    base = dict(
        code="R-POL-01",
        title="Policy change",
        category="policy",
        probability=2,
        impact=4,
        strategy="mitigate",
        owner_unit="dev-reform",
        plan="watch",
    )
    return RiskForm(**{**base, **over})


@pytest.mark.parametrize(
    ("score", "colour"),
    [(9, None), (10, "yellow"), (14, "yellow"), (15, "orange"), (20, "red"), (25, "red")],
)
def test_risk_colour_thresholds_include_the_threshold(policy, score, colour):
    # config: yellow 10, orange 15, red 20; a score reaching a threshold raises it (>=).
    assert risk_colour(score, policy) == colour


def test_risk_warning_is_raised_once_per_crossing(engine, policy, clock):
    ctx = Context(policy=policy, clock=clock)
    with Session(engine) as s, s.begin():
        first = upsert_risk(s, ctx, _risk(), actor="op")  # 2×4 = 8: no warning
        assert (first.created, first.colour, first.warning_raised) == (True, None, None)
        up = upsert_risk(s, ctx, _risk(probability=3), actor="op")  # 12: yellow
        assert up.warning_raised == "yellow"
        again = upsert_risk(s, ctx, _risk(probability=3, plan="act"), actor="op")
        assert again.changed and again.warning_raised is None  # the same crossing: not twice
        down_up = upsert_risk(s, ctx, _risk(probability=2), actor="op")  # 8: yellow settled
        assert down_up.warning_raised is None
        back = upsert_risk(s, ctx, _risk(probability=3), actor="op")  # a new crossing: warns
        assert back.warning_raised == "yellow"
        red = upsert_risk(s, ctx, _risk(probability=5, impact=4), actor="op")  # 20: red
        assert red.warning_raised == "red"
    with Session(engine) as s:
        rows = s.execute(
            select(EarlyWarning.dedup_key, EarlyWarning.status).order_by(EarlyWarning.id)
        ).all()
        assert [(k, st.value) for k, st in rows] == [
            ("risk:R-POL-01:yellow", "handled"),  # settled when the score fell to 8
            ("risk:R-POL-01:yellow:2", "open"),
            ("risk:R-POL-01:red", "open"),
        ]
        assert s.scalar(select(Risk.warned_colour)) == "red"


def _on_the_matrix_at(score: int, size: int) -> tuple[int, int]:
    """A probability × impact of the matrix whose product is `score`."""
    return next(
        (p, score // p) for p in range(1, size + 1) if score % p == 0 and score // p <= size
    )


def _highest_below(threshold: int, size: int) -> int:
    """The highest score the matrix can rate below `threshold` (on 5×5: 9, 12, 16)."""
    return max(p * i for p in range(1, size + 1) for i in range(1, size + 1) if p * i < threshold)


def _rated(code: str, score: int, policy) -> RiskForm:
    probability, impact = _on_the_matrix_at(score, policy.risk.matrix_size)
    return _risk(code=code, probability=probability, impact=impact)


def _risk_warnings(engine, code: str) -> list[tuple[str, str, str]]:
    with Session(engine) as s:
        return [
            (w.dedup_key, w.colour.value, w.status.value)
            for w in s.scalars(
                select(EarlyWarning)
                .where(EarlyWarning.subject_type == "risk", EarlyWarning.subject_id == code)
                .order_by(EarlyWarning.id)
            )
        ]


def test_a_lowered_risk_settles_its_warnings_and_warns_again_when_raised_again(
    engine, policy, clock
):
    """An operator trial: a risk at 4×4 (orange), 5×4 (red), lowered to 1×1, then 5×5 raised
    no warning, and the orange warning stayed open (and escalated) after the lowering."""
    from taskforce.emergency.warnings import escalate_overdue_warnings

    ctx = Context(policy=policy, clock=clock)
    with Session(engine) as s, s.begin():
        assert upsert_risk(s, ctx, _risk(probability=4, impact=4), actor="op").warning_raised == (
            "orange"
        )
        assert upsert_risk(s, ctx, _risk(probability=5, impact=4), actor="op").warning_raised == (
            "red"
        )
    clock.advance(hours=policy.warnings.red.deadline_hours + 1)  # red overdue, orange not
    with Session(engine) as s, s.begin():
        assert len(escalate_overdue_warnings(s, ctx)) == 1
    with Session(engine) as s, s.begin():
        lowered = upsert_risk(s, ctx, _risk(probability=1, impact=1), actor="op")
        assert (lowered.colour, lowered.warning_raised) == (None, None)
        assert s.scalar(select(Risk.warned_colour)) is None
    assert _risk_warnings(engine, "R-POL-01") == [
        ("risk:R-POL-01:orange", "orange", "handled"),
        ("risk:R-POL-01:red", "red", "handled"),
    ]
    with Session(engine) as s:
        settled = s.execute(
            select(TrailEntry.actor, TrailEntry.payload)
            .where(TrailEntry.action == "warning.settled")
            .order_by(TrailEntry.id)
        ).all()
    assert [(actor, json.loads(payload)["was"]) for actor, payload in settled] == [
        ("op", "open"),  # orange
        ("op", "escalated"),  # red
    ]
    assert all("1×1=1" in json.loads(payload)["reason"] for _a, payload in settled)
    # The orange warning's deadline passes: settled, it escalates no more.
    clock.advance(hours=policy.warnings.orange.deadline_hours)
    with Session(engine) as s, s.begin():
        assert escalate_overdue_warnings(s, ctx) == []
        again = upsert_risk(s, ctx, _risk(probability=5, impact=5), actor="op")
        assert again.warning_raised == "red"  # the highest threshold reached, as at first
    assert _risk_warnings(engine, "R-POL-01")[2:] == [("risk:R-POL-01:red:2", "red", "open")]


@pytest.mark.parametrize("colour", ["yellow", "orange", "red"])
def test_a_threshold_reached_left_and_reached_again_warns_twice(engine, policy, clock, colour):
    """At a threshold exactly: warned; the highest score below it: settled (and the colour
    below stays); at the threshold again: a new warning of that colour only."""
    ctx = Context(policy=policy, clock=clock)
    size = policy.risk.matrix_size
    at = policy.risk.warning_thresholds[colour]
    below = _highest_below(at, size)
    under = risk_colour(below, policy)  # the colour below it, or None below yellow
    code = f"R-{colour.upper()}"
    with Session(engine) as s, s.begin():
        if under is not None:  # the colour below first: it stays when the risk comes down
            assert upsert_risk(s, ctx, _rated(code, below, policy), actor="op").warning_raised == (
                under
            )
        assert upsert_risk(s, ctx, _rated(code, at, policy), actor="op").warning_raised == colour
        down = upsert_risk(s, ctx, _rated(code, below, policy), actor="op")
        assert (down.colour, down.warning_raised) == (under, None)
        assert s.scalar(select(Risk.warned_colour).where(Risk.code == code)) == under
        back = upsert_risk(s, ctx, _rated(code, at, policy), actor="op")
        assert back.warning_raised == colour
    kept = [(f"risk:{code}:{under}", under, "open")] if under else []
    assert _risk_warnings(engine, code) == [
        *kept,
        (f"risk:{code}:{colour}", colour, "handled"),
        (f"risk:{code}:{colour}:2", colour, "open"),
    ]


def test_lowering_a_risk_leaves_an_operators_warning_about_it_open(engine, policy, clock):
    """Only the register's own warnings are settled: one raised by hand about the risk has
    its own cause, which the register's score does not tell."""
    from taskforce.emergency.warnings import raise_warning

    ctx = Context(policy=policy, clock=clock)
    with Session(engine) as s, s.begin():
        upsert_risk(s, ctx, _risk(probability=4, impact=4), actor="op")
        raise_warning(
            s, ctx, colour="orange", source="manual", subject_type="risk",
            subject_id="R-POL-01", title="border crossing closed", dedup_key="by-hand-1",
        )  # fmt: skip
        upsert_risk(s, ctx, _risk(probability=1, impact=1), actor="op")
    assert _risk_warnings(engine, "R-POL-01") == [
        ("risk:R-POL-01:orange", "orange", "handled"),
        ("by-hand-1", "orange", "open"),
    ]


def test_semiannual_sweep_settles_the_warnings_of_risks_lowered_without_the_form(
    engine, policy, clock
):
    from taskforce.registers.service import sweep_risks
    from tests.reviews import factories as f

    ctx = Context(policy=policy, clock=clock)
    with Session(engine) as s, s.begin():
        row = f.risk(s, code="R-L", probability=5, impact=5)
        assert sweep_risks(s, ctx) == ["R-L:red"]
        row.probability = row.impact = 1  # lowered in the register, not through the form
        s.flush()
        assert sweep_risks(s, ctx) == []
        assert row.warned_colour is None
    assert _risk_warnings(engine, "R-L") == [("risk:R-L:red", "red", "handled")]


def test_same_risk_form_twice_writes_one_trail_entry(engine, policy, clock):
    ctx = Context(policy=policy, clock=clock)
    with Session(engine) as s, s.begin():
        upsert_risk(s, ctx, _risk(), actor="op")
        result = upsert_risk(s, ctx, _risk(), actor="op")
        assert not result.changed
    with Session(engine) as s:
        n = s.scalar(
            select(func.count()).select_from(TrailEntry).where(TrailEntry.subject_type == "risk")
        )
        assert n == 1


def test_unknown_owner_unit_writes_nothing(engine, policy, clock):
    ctx = Context(policy=policy, clock=clock)
    with pytest.raises(NotFound) as err, Session(engine) as s, s.begin():
        upsert_risk(s, ctx, _risk(owner_unit="nowhere"), actor="op")
    assert err.value.field == "owner_unit"
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Risk)) == 0


@pytest.mark.parametrize("field", [{"probability": 0}, {"impact": 11}, {"category": "weather"}])
def test_risk_form_bounds(field):
    with pytest.raises(ValidationError):
        _risk(**field)


def _on_matrix(policy, size: int, thresholds: dict[str, int]):
    from taskforce.policy.schema import RiskPolicy

    risk = RiskPolicy(matrix_size=size, warning_thresholds=thresholds)
    return policy.model_copy(update={"risk": risk})


@pytest.mark.parametrize(("size", "top"), [(5, 5), (4, 4), (10, 10)])
def test_ratings_are_on_the_configured_matrix(engine, policy, clock, size, top):
    """SPEC §6: a 5×5 matrix by default; config risk.matrix_size sets it. The top of the
    scale is taken, one above it is refused by field, naming the scale, and writes nothing."""
    ctx = Context(policy=_on_matrix(policy, size, {"yellow": 2, "orange": 3, "red": size * size}))
    if top < MAX_MATRIX_SIZE:
        with pytest.raises(DomainError) as err, Session(engine) as s, s.begin():
            upsert_risk(s, ctx, _risk(code="R-OFF", probability=1, impact=top + 1), actor="op")
        assert err.value.field == "impact" and f"(allowed: 1 to {top})" in str(err.value)
        assert f"off the {top}×{top} risk matrix" in str(err.value)
        with pytest.raises(DomainError) as err, Session(engine) as s, s.begin():
            upsert_risk(s, ctx, _risk(code="R-OFF", probability=top + 1, impact=1), actor="op")
        assert err.value.field == "probability"
    else:  # the largest matrix config allows: the form itself stops at its top
        with pytest.raises(ValidationError):
            _risk(code="R-OFF", probability=1, impact=top + 1)
    with Session(engine) as s, s.begin():
        rated = upsert_risk(s, ctx, _risk(probability=top, impact=top), actor="op")
    assert rated.score == top * top and rated.colour == "red"
    with Session(engine) as s:
        assert s.scalars(select(Risk.code)).all() == ["R-POL-01"]


def test_risks_rated_on_a_larger_matrix_are_named_on_the_chart(policy):
    """Config shrank the matrix after risks were rated on the old one: the chart names them
    to be re-rated instead of dropping them silently."""
    from taskforce.reports.i18n import translator
    from taskforce.reviews.charts import risk_matrix

    small = _on_matrix(policy, 4, {"yellow": 6, "orange": 9, "red": 12})
    risks = [
        {"code": "R-IN", "probability": 4, "impact": 4},
        {"code": "R-OUT", "probability": 5, "impact": 2},
    ]
    svg = risk_matrix(risks, small, translator("zh-CN"))
    assert "超出4×4矩阵、须重新评级：R-OUT" in svg and "R-IN" in svg
    assert "须重新评级" not in risk_matrix(risks, policy, translator("zh-CN"))


def test_milestone_colour_boundaries(policy):
    today = dt.date(2026, 3, 9)
    window = policy.progress.yellow_due_within_days  # 3
    due = lambda days: today + dt.timedelta(days=days)  # noqa: E731
    assert milestone_colour(achieved=False, due_date=due(-1), today=today, policy=policy) == "red"
    assert milestone_colour(achieved=False, due_date=due(0), today=today, policy=policy) == "yellow"
    assert (
        milestone_colour(achieved=False, due_date=due(window), today=today, policy=policy)
        == "yellow"
    )
    assert (
        milestone_colour(achieved=False, due_date=due(window + 1), today=today, policy=policy)
        == "green"
    )
    assert milestone_colour(achieved=True, due_date=due(-30), today=today, policy=policy) == "green"


def test_upsert_milestone(engine, policy, clock):
    ctx = Context(policy=policy, clock=clock)  # today: 2026-03-09
    form = MilestoneForm(
        code="M-ORG-01", title="Office set up", kind="organisational",
        due_date=dt.date(2026, 3, 1), target="office staffed",
    )  # fmt: skip
    with Session(engine) as s, s.begin():
        made = upsert_milestone(s, ctx, form, actor="op")
        assert (made.created, made.colour) == (True, "red")
        done = upsert_milestone(s, ctx, form.model_copy(update={"achieved": True}), actor="op")
        assert (done.created, done.changed, done.colour) == (False, True, "green")
        same = upsert_milestone(s, ctx, form.model_copy(update={"achieved": True}), actor="op")
        assert not same.changed  # achieved_on kept from the first time
    # Achieved on a day to come: refused (it would count in this period's attainment).
    ahead = form.model_copy(
        update={"code": "M-ORG-02", "achieved": True, "achieved_on": dt.date(2026, 3, 10)}
    )
    with Session(engine) as s, s.begin(), pytest.raises(DomainError, match="after today") as e:
        upsert_milestone(s, ctx, ahead, actor="op")
    assert e.value.field == "achieved_on"
    with Session(engine) as s, s.begin():  # today itself is fine
        on_time = ahead.model_copy(update={"achieved_on": dt.date(2026, 3, 9)})
        assert upsert_milestone(s, ctx, on_time, actor="op").colour == "green"


def test_milestone_form_rejects_achieved_on_without_achieved():
    with pytest.raises(ValidationError, match="achieved_on"):
        MilestoneForm(
            code="M-1X", title="x y", kind="risk", due_date=dt.date(2026, 1, 1),
            target="t t", achieved_on=dt.date(2026, 1, 1),
        )  # fmt: skip


def test_semiannual_sweep_warns_for_risks_entered_without_the_form(engine, policy, clock):
    from taskforce.registers.service import sweep_risks
    from tests.reviews import factories as f

    ctx = Context(policy=policy, clock=clock)
    with Session(engine) as s, s.begin():
        f.risk(s, code="R-A", probability=3, impact=3)  # 9: below yellow
        f.risk(s, code="R-B", probability=2, impact=5)  # 10: yellow, exactly the threshold
        f.risk(s, code="R-C", probability=4, impact=5)  # 20: red
        assert sweep_risks(s, ctx) == ["R-B:yellow", "R-C:red"]
        assert sweep_risks(s, ctx) == []  # once


def test_a_lowered_classification_records_the_old_text_at_the_old_level(engine, policy, clock):
    """A classification audit: a secret risk updated to public recorded its secret title and
    plan (the entry's "from") at public; likewise a milestone. The update's entry is at the
    higher of the two levels; the next one, with nothing secret in it, at the new level."""
    ctx = Context(policy=policy, clock=clock)
    secret_risk = _risk(title="边境口岸走私渠道", plan="布控方案", classification="secret")
    milestone = MilestoneForm(
        code="M-OPS-01", title="专项行动收网", kind="organisational",
        due_date=dt.date(2026, 6, 1), target="收网", classification="secret",
    )  # fmt: skip
    with Session(engine) as s, s.begin():
        upsert_risk(s, ctx, secret_risk, actor="op")
        lowered = secret_risk.model_copy(update={"title": "口岸风险", "plan": "常规"})
        upsert_risk(s, ctx, RiskForm(**{**lowered.model_dump(), "classification": "public"}),
                    actor="op")  # fmt: skip
        upsert_risk(s, ctx, RiskForm(**{**lowered.model_dump(), "classification": "public",
                                        "plan": "常规巡查"}), actor="op")  # fmt: skip
        upsert_milestone(s, ctx, milestone, actor="op")
        upsert_milestone(s, ctx, MilestoneForm(**{**milestone.model_dump(),
                                                  "classification": "internal"}), actor="op")  # fmt: skip
    with Session(engine) as s:
        entries = s.execute(
            select(TrailEntry.action, TrailEntry.classification, TrailEntry.payload).order_by(
                TrailEntry.id
            )
        ).all()
    assert [(a, c.value) for a, c, _p in entries] == [
        ("risk.created", "secret"),
        ("risk.updated", "secret"),  # from 边境口岸走私渠道 to 口岸风险
        ("risk.updated", "public"),
        ("milestone.created", "secret"),
        ("milestone.updated", "secret"),
    ]
    assert "边境口岸走私渠道" in str(entries[1].payload)  # (the canonical JSON text)


@pytest.mark.parametrize("second", ["form", "sweep"])
def test_two_transactions_raising_one_risk_again_at_once_raise_one_warning(
    engine, policy, clock, second
):
    """A risk lowered, then raised again by two transactions at once (the form submitted
    twice, or the form while the semi-annual sweep runs): the second computed the same
    dedup key `risk:<code>:orange:2` and failed on it with an IntegrityError (a review), or,
    having waited for the risk's row, counted the first's warning and raised a second one
    (…:3) for the one crossing. It waits for the first and finds the crossing warned."""
    import threading

    from taskforce.registers.service import sweep_risks

    ctx = Context(policy=policy, clock=clock)
    with Session(engine) as s, s.begin():
        assert upsert_risk(s, ctx, _risk(probability=4, impact=4), actor="op").warning_raised
        upsert_risk(s, ctx, _risk(probability=1, impact=1), actor="op")
        if second == "sweep":  # raised in the register, not through the form
            s.scalar(select(Risk)).probability = s.scalar(select(Risk)).impact = 4
    raised = _risk(probability=4, impact=4)
    started, outcome = threading.Event(), []

    def race():
        started.set()
        try:
            with Session(engine) as s, s.begin():
                if second == "sweep":
                    outcome.append(sweep_risks(s, ctx))
                else:
                    outcome.append(upsert_risk(s, ctx, raised, actor="op2").warning_raised)
        except Exception as exc:  # the test's assertion shows it
            outcome.append(exc)

    with Session(engine) as s, s.begin():
        assert upsert_risk(s, ctx, raised, actor="op").warning_raised == "orange"
        racing = threading.Thread(target=race)
        racing.start()
        started.wait(30)
        until_waiting_for_a_lock(engine, racing)
    racing.join(30)
    assert outcome == [[] if second == "sweep" else None]
    assert _risk_warnings(engine, "R-POL-01") == [
        ("risk:R-POL-01:orange", "orange", "handled"),
        ("risk:R-POL-01:orange:2", "orange", "open"),
    ]
    with Session(engine) as s:
        assert s.scalar(select(Risk.warned_colour)) == "orange"
        updates = s.scalars(
            select(TrailEntry.actor).where(TrailEntry.action == "risk.updated")
        ).all()
    assert "op2" not in updates  # the second form changed nothing: the first had
