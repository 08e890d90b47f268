"""The dispatch sweep's red-item digests: one trail entry and one notice per owner unit,
classification and step, listing every item (taskforce/loop/red_digest.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from taskforce.clock import ManualClock
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency.models import EarlyWarning, WarningColour
from taskforce.loop.red_digest import RedItem, Unit, escalated_digests, turned_red_digests
from taskforce.loop.sweep import dispatch_sweep
from taskforce.notify.delivery import MessageSnapshot
from taskforce.notify.models import OutboxMessage
from taskforce.notify.render import render_message
from taskforce.policy.schema import Classification
from taskforce.trail import verify
from taskforce.trail.models import TrailEntry
from tests.loop.helpers import Loop

UNITS = {1: Unit("market-reg", "市场监管局", "Market Regulation Bureau"), 2: Unit("tax", "税务局", "Tax Bureau")}  # fmt: skip


def _ctx(policy, digest_items=None):
    if digest_items is not None:
        notifications = policy.notifications.model_copy(update={"digest_items": digest_items})
        policy = policy.model_copy(update={"notifications": notifications})
    return Context(policy=policy, clock=ManualClock(dt.datetime(2026, 6, 1, 1, 0, tzinfo=dt.UTC)))


def _item(item_id, owner=1, classification=Classification.internal, since="2026-05-01"):
    return RedItem(
        item_id, f"TF-2026-{item_id:05d}", classification, f"行动项{item_id}", owner, since
    )


# --- the grouping, without a database -------------------------------------------------


@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 2, None]),
            st.sampled_from(list(Classification)),
            st.sampled_from(["", "2026-05-01", "2026-05-20"]),
        ),
        max_size=40,
    ),
    st.integers(0, 6),
)
def test_every_red_item_is_in_exactly_one_digest_of_its_unit_and_classification(rows, shown):
    from taskforce.policy import load_policy

    ctx = _ctx(load_policy(), digest_items=shown)
    items = [_item(n + 1, owner, cls, since) for n, (owner, cls, since) in enumerate(rows)]
    digests = turned_red_digests(ctx, items, UNITS, actor="sweep")
    listed = [int(i) for d in digests for i in d["payload"]["items"]]
    assert sorted(listed) == [i.item_id for i in items]  # each once, none lost
    by_id = {i.item_id: i for i in items}
    groups = {(i.owner_unit_id, i.classification) for i in items}
    assert len(digests) == len(groups)
    for d in digests:
        members = [by_id[int(i)] for i in d["payload"]["items"]]
        assert {(m.owner_unit_id, m.classification) for m in members} == {
            (members[0].owner_unit_id, d["classification"])
        }
        context = d["context"]
        assert context["count"] == len(members)
        assert len(context["items"]) == min(shown, len(members))
        assert context["more"] == len(members) - len(context["items"])
        # Named: the most overdue first (unknown last), then by id.
        named = [by_id[i["item_id"]] for i in context["items"]]
        expected = sorted(
            members, key=lambda m: (m.overdue_since == "", m.overdue_since, m.item_id)
        )
        assert named == expected[: len(named)]
        unit = UNITS.get(members[0].owner_unit_id)
        assert (d["subject_type"], d["subject_id"]) == ("sweep", "2026-06-01")  # the sweep's day
        assert d["payload"]["owner"] == (unit.code if unit else None)


def test_an_escalation_digest_lists_each_item_s_warning_and_leaves_out_none(policy):
    ctx = _ctx(policy)
    items = [_item(1)._replace(warning_id=71), _item(2)._replace(warning_id=None), _item(3)._replace(warning_id=73)]  # fmt: skip
    (digest,) = escalated_digests(ctx, items, UNITS, actor="sweep")
    assert digest["payload"]["warnings"] == {"1": 71, "3": 73}  # item 2 was warned before
    assert digest["payload"]["red_days"] == policy.progress.red_escalation_days
    assert digest["context"]["warnings"] == 2
    # Deadline in the office's local time (Asia/Shanghai: UTC+8), 72 h for orange.
    assert digest["context"]["deadline"] == "2026-06-04 09:00"


# --- what a reader receives -----------------------------------------------------------


def _snapshot(digest, audience="director"):
    return MessageSnapshot(
        id=1,
        key="k",
        event_kind=digest["notify"],
        audience=audience,
        subject_type=digest["subject_type"],
        subject_id=digest["subject_id"],
        classification=digest["classification"],
        context=digest["context"],
        is_drill=False,
        priority=0,
        attempts=1,
    )


def _render(digest, locale, policy, clearance=Classification.secret, audience="director"):
    return render_message(
        _snapshot(digest, audience), clearance=clearance, locale=locale, limits=policy.notifications
    )


def test_a_digest_names_the_first_items_and_counts_the_rest(policy):
    ctx = _ctx(policy)  # digest_items: 5
    items = [_item(n, since=f"2026-05-{n:02d}") for n in range(1, 13)]
    (digest,) = turned_red_digests(ctx, items, UNITS, actor="sweep")
    zh = _render(digest, "zh-CN", policy)
    assert zh.title == "行动项亮红灯汇总：市场监管局 12 项"
    assert zh.body.startswith(
        "本次周调度，市场监管局有 12 项行动项超期亮红灯，已请求约谈责任单位"
        "（下列前 5 项，其余 7 项见任务驾驶舱）。"
    )
    assert "TF-2026-00001 行动项 1：行动项1" in zh.body and "行动项5" in zh.body
    assert "行动项6" not in zh.body and not zh.redacted
    en = _render(digest, "en", policy)
    assert en.title == "Red items (digest): Market Regulation Bureau, 12 items"
    assert "is requested. First 5 below, 7 more in the task cockpit.\n" in en.body
    assert "TF-2026-00001 #1: 行动项1" in en.body
    (one,) = turned_red_digests(ctx, items[:1], UNITS, actor="sweep")
    en_one = _render(one, "en", policy)
    assert "1 action item is overdue (red) at Market Regulation Bureau" in en_one.body
    assert "more" not in en_one.body
    orphan = items[0]._replace(owner_unit_id=None)
    (nobody,) = turned_red_digests(ctx, [orphan], UNITS, actor="sweep")
    assert "overdue (red) with no owner unit;" in _render(nobody, "en", policy).body
    assert "未指定责任单位有 1 项" in _render(nobody, "zh-CN", policy).body


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("kind", ["turned_red", "escalated"])
def test_longest_titles_still_leave_the_counts_and_every_listed_item_whole(policy, locale, kind):
    """Titles may be 300 characters: the message is cut at body_max_chars, but the counts come
    first and each listed title is shortened, so no item is cut in the middle."""
    ctx = _ctx(policy, digest_items=5)
    title = ("审批材料清单统一和一网通办系统改造" * 20)[:300]
    items = [_item(n, since=f"2026-05-{n:02d}")._replace(title=title, warning_id=n) for n in range(1, 13)]  # fmt: skip
    make = turned_red_digests if kind == "turned_red" else escalated_digests
    (digest,) = make(ctx, items, UNITS, actor="sweep")
    body = _render(digest, locale, policy).body
    assert len(body) < policy.notifications.body_max_chars  # not cut at all
    assert ("其余 7 项" if locale == "zh-CN" else "7 more in the task cockpit") in body
    # Each listed item whole: its number, then its title shortened to the same length.
    listed = body.splitlines()[1:]
    shortened = {len(line.split("：" if locale == "zh-CN" else ": ", 1)[1]) for line in listed}
    assert len(listed) == 5 and len(shortened) == 1
    assert all(
        line.startswith(f"TF-2026-{n:05d} ") and line.endswith("…")
        for n, line in enumerate(listed, 1)
    )


def test_a_secret_digest_reaches_an_uncleared_channel_as_a_reference_only(policy):
    ctx = _ctx(policy)
    items = [_item(1, classification=Classification.secret), _item(2)]
    secret, internal = sorted(
        escalated_digests(ctx, items, UNITS, actor="sweep"),
        key=lambda d: d["classification"] != Classification.secret,
    )
    for digest in (secret, internal):
        seen = render_message(
            _snapshot(digest, "leadership"),
            clearance=Classification.internal,
            locale="zh-CN",
            limits=policy.notifications,
        )
        text = seen.title + seen.body
        if digest is secret:
            assert seen.redacted and "行动项1" not in text and "TF-2026-00001" not in text
            assert "周调度 2026-06-01" in text and "market-reg" not in text and "市场" not in text
        else:
            assert not seen.redacted and "行动项2" in text and "行动项1" not in text


# --- the sweep, on both backends ------------------------------------------------------


@pytest.fixture
def loop(engine, policy, clock):
    return Loop(engine, Context(policy=policy, clock=clock))


def _rows(engine, query):
    with unit_of_work(engine) as s:
        return s.execute(query).all()


def _sweep(loop):
    with unit_of_work(loop.engine) as s:
        return dispatch_sweep(s, loop.ctx, board=False)


def test_the_sweep_sends_one_digest_per_unit_and_classification_and_each_once(loop, engine, clock):
    internal = loop.report(title="企业开办材料重复提交")
    secret = loop.report(title="涉密项目审批滞后", classification="secret")
    for r in (internal, secret):
        loop.coordinate(r.issue_number, units=("market-reg", "tax"))
        loop.plan(r.issue_number, items=4, due_in=10, owners=("market-reg", "tax"))
    clock.advance(days=11)  # every item one day past due: red
    first = _sweep(loop)
    assert len(first.newly_red) == 8
    entries = _rows(
        engine,
        select(TrailEntry.id, TrailEntry.subject_id, TrailEntry.classification, TrailEntry.payload)
        .where(TrailEntry.action == "sweep.items_turned_red")
        .order_by(TrailEntry.id),
    )
    # Two units × two classifications, each listing its two items.
    assert {e.subject_id for e in entries} == {loop.ctx.today().isoformat()}
    assert sorted((json.loads(e.payload)["owner"], e.classification.value) for e in entries) == [
        ("market-reg", "internal"), ("market-reg", "secret"), ("tax", "internal"), ("tax", "secret"),
    ]  # fmt: skip
    assert sorted(int(i) for e in entries for i in json.loads(e.payload)["items"]) == sorted(
        first.newly_red
    )
    assert all(len(json.loads(e.payload)["items"]) == 2 for e in entries)
    # One notice per digest and audience (the director), linked to its trail entry; no
    # per-item notice from the sweep.
    notices = _rows(
        engine,
        select(OutboxMessage.event_kind, OutboxMessage.audience, OutboxMessage.trail_entry_id),
    )
    from_sweep = [n for n in notices if n.trail_entry_id in {e.id for e in entries}]
    assert (
        sorted((n.event_kind, n.audience) for n in from_sweep)
        == [("items_turned_red", "director")] * 4
    )
    assert not [n for n in notices if n.event_kind in ("item_turned_red", "interview_requested")]

    before = len(notices), len(_rows(engine, select(TrailEntry.id)))
    assert _sweep(loop).newly_red == []  # nothing new: nothing written
    assert (len(_rows(engine, select(OutboxMessage.id))), len(_rows(engine, select(TrailEntry.id)))) == before  # fmt: skip

    clock.advance(days=5)  # red for the whole window: escalated
    fourth = _sweep(loop)
    assert len(fourth.escalated) == 8
    escalations = _rows(
        engine,
        select(TrailEntry.id, TrailEntry.subject_id, TrailEntry.payload).where(
            TrailEntry.action == "sweep.items_escalated"
        ),
    )
    assert len(escalations) == 4
    warnings = dict(
        _rows(engine, select(EarlyWarning.subject_id, EarlyWarning.id).where(EarlyWarning.source == "sweep"))
    )  # fmt: skip
    assert len(warnings) == 8
    listed = {int(i): w for e in escalations for i, w in json.loads(e.payload)["warnings"].items()}
    assert listed == {int(i): w for i, w in warnings.items()}
    with unit_of_work(engine) as s:
        colours = set(s.scalars(select(EarlyWarning.colour).where(EarlyWarning.source == "sweep")))
        assert colours == {WarningColour.orange}
        audiences = sorted(
            s.scalars(
                select(OutboxMessage.audience).where(
                    OutboxMessage.trail_entry_id.in_([e.id for e in escalations])
                )
            )
        )
        assert audiences == ["director"] * 4 + ["leadership"] * 4
        # The warnings are announced by the digest, not once each.
        assert not s.scalar(
            select(TrailEntry.id).where(TrailEntry.action == "warning.raised").limit(1)
        )
        assert verify(s).ok
    assert _sweep(loop).escalated == []
