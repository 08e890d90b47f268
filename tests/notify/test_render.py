"""Templates (en, zh-CN), drill markers, size limits, and redaction as a property."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskforce.notify.channels import Channel, ChannelSet
from taskforce.notify.delivery import MessageSnapshot, plan_sends
from taskforce.notify.render import LOCALES, TEMPLATES_DIR, labels, render_message
from taskforce.policy import load_policy
from taskforce.policy.schema import Classification

CLASSIFICATIONS = list(Classification)


def _message(**changes) -> MessageSnapshot:
    base = MessageSnapshot(
        id=1,
        key="k",
        event_kind="issue_reported",
        audience="executive",
        subject_type="issue",
        subject_id="42",
        classification=Classification.internal,
        context={"title": "Permits take 40 days", "unit": "market-reg", "number": "2026-042"},
        is_drill=False,
        priority=0,
        attempts=1,
    )
    return replace(base, **changes)


def test_every_routed_event_kind_has_a_template_and_a_label_in_both_locales(policy):
    for locale in LOCALES:
        names = labels(locale)
        for kind in policy.notifications.routing:
            assert (TEMPLATES_DIR / locale / f"{kind}.j2").is_file(), (locale, kind)
            assert kind in names, (locale, kind)
            rendered = render_message(
                _message(event_kind=kind),
                clearance=Classification.secret,
                locale=locale,
                limits=policy.notifications,
            )
            assert rendered.title and rendered.body, (locale, kind)


def test_drills_are_marked_in_the_title(policy):
    for locale, mark in (("en", "[DRILL]"), ("zh-CN", "[演练]")):
        drill = render_message(
            _message(is_drill=True, event_kind="emergency_page"),
            clearance=Classification.secret,
            locale=locale,
            limits=policy.notifications,
        )
        assert drill.title.startswith(mark)
        real = render_message(
            _message(event_kind="emergency_page"),
            clearance=Classification.secret,
            locale=locale,
            limits=policy.notifications,
        )
        assert mark not in real.title


def test_bodies_and_titles_are_cut_to_the_configured_size(policy):
    limits = policy.notifications
    long = _message(context={"title": "T" * 500, "summary": "x" * 5000})
    rendered = render_message(long, clearance=Classification.secret, locale="en", limits=limits)
    assert len(rendered.body) == limits.body_max_chars and rendered.body.endswith("…")
    assert len(rendered.title) == limits.title_max_chars and rendered.title.endswith("…")
    short = render_message(_message(), clearance=Classification.secret, locale="en", limits=limits)
    assert "…" not in short.body


def test_chinese_messages_read_in_chinese(policy):
    rendered = render_message(
        _message(classification=Classification.secret),
        clearance=Classification.internal,
        locale="zh-CN",
        limits=policy.notifications,
    )
    assert rendered.redacted
    # 秘密: the work plan's word for the level (公开 / 内部 / 秘密), as the reports write it.
    assert "有一条秘密记录" in rendered.body and "请登录系统查阅" in rendered.body


def test_the_clearance_boundary_is_inclusive(policy):
    for level in CLASSIFICATIONS:
        for clearance in CLASSIFICATIONS:
            rendered = render_message(
                _message(classification=level),
                clearance=clearance,
                locale="en",
                limits=policy.notifications,
            )
            assert rendered.redacted == (clearance.rank < level.rank), (level, clearance)


# A secret value: a marker no template contains, then free text (any script).
secret_text = st.text(min_size=1, max_size=40).map(lambda s: f"§{s}§")
context_values = st.dictionaries(
    st.sampled_from(
        ["title", "summary", "number", "unit", "owner", "decision", "reason", "item", "level"]
    ),
    secret_text,
    min_size=1,
)


@st.composite
def channel_sets(draw):
    count = draw(st.integers(min_value=1, max_value=5))
    clearances = draw(st.lists(st.sampled_from(CLASSIFICATIONS), min_size=count, max_size=count))
    return ChannelSet(
        tuple(
            Channel(f"c{i}", clearance, frozenset({"leadership"}), service=None)
            for i, clearance in enumerate(clearances)
        )
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    kind=st.sampled_from(
        ["issue_reported", "vote_requested", "emergency_page", "escalation", "review_published"]
    ),
    classification=st.sampled_from(CLASSIFICATIONS),
    context=context_values,
    channels=channel_sets(),
    locale=st.sampled_from(LOCALES),
    drill=st.booleans(),
)
def test_no_record_text_ever_reaches_a_channel_not_cleared_for_it(
    kind, classification, context, channels, locale, drill
):
    policy = load_policy()  # the policy is read-only: one per example is fine
    message = _message(
        event_kind=kind,
        classification=classification,
        context=context,
        audience="leadership",
        is_drill=drill,
    )
    jobs = plan_sends(message, channels, locale=locale, limits=policy.notifications)

    assert {j.channel.name for j in jobs} == {c.name for c in channels.channels}
    for job in jobs:
        payload = f"{job.title}\n{job.body}"
        cleared = classification.readable_by(job.channel.clearance)
        assert job.redacted == (not cleared)
        if not cleared:
            assert "§" not in payload, (job.channel.clearance, payload)
            assert not any(value in payload for value in context.values())


# Contexts as the steps write them (taskforce/loop/coordinate.py, sweep.py, feedback.py,
# budget/service.py, budget/audit.py): a message names each coded value in its reader's
# words, and a template never asks for a value its step does not give.
STEP_CONTEXTS = {
    "vote_closed": {
        "title": "跨部门数据接口未开放",
        "passed": False,
        "yes": 4,
        "no": 3,
        "abstain": 0,
        "absent": 0,
        "required": 5,
        "members": 7,
    },
    "stage_overdue": {"title": "审批环节过多", "stage": "planning", "due": "2026-05-22 00:00"},
    "issue_returned": {"title": "审批环节过多", "outcome": "partly"},
    "budget_decided": {"line": "FY2026-00001", "status": "approved", "amount": "900000.00"},
    "budget_review_due": {
        "line": "FY2026-00001",
        "reviewer": "compliance",
        "amount": "900000.00",
    },
    "audit_finding": {"week": "2026-W28", "new": 2, "open": 3},
    "budget_year_set": {"year": 2027, "total": "86000000.00", "reserve": "8600000.00"},
    "decision_recorded": {
        "title": "审批环节过多",
        "decision": "统一材料清单",
        "deadline": "2026-06-30",
        "plan_due": "2026-05-29",
    },
    "audit_finding_severe": {"week": "2026-W28", "severe": 1},
    "warning_raised": {"title": "资金拨付滞后", "colour": "orange", "summary": ""},
    "interview_requested": {
        "title": "审批环节过多",
        "item": "梳理现状清单",
        "owner": "dev-reform",
        "owner_name": "发展改革委",
        "owner_name_en": "Development and Reform Commission",
    },
    "item_turned_red": {
        "title": "审批环节过多",
        "item": "梳理现状清单",
        "owner": "dev-reform",
        "owner_name": "发展改革委",
        "owner_name_en": "Development and Reform Commission",
    },
    "emergency_escalated": {
        "emergency": "0190-…",
        "level": "I",
        "title": "数据平台中断",
        "raised_from": "III",
        "to": "leadership",
        "reason": "数据中心全部断电",
        "is_drill": False,
    },
}
EXPECTED = {
    ("emergency_escalated", "zh-CN"): [
        "由III级升为I级，改由领导小组牵头处置（最新报告：数据中心全部断电）。"
    ],
    ("emergency_escalated", "en"): [
        "Raised from level III to I, now led by the leadership group (latest report: 数据中心全部断电)."
    ],
    ("vote_closed", "zh-CN"): ["未通过", "同意 4 票", "通过需 5 票"],
    ("vote_closed", "en"): ["not passed", "4 yes", "5 yes needed"],
    ("stage_overdue", "zh-CN"): ["「方案制定」环节已超期", "2026-05-22 00:00"],
    ("stage_overdue", "en"): ["The planning stage is overdue"],
    ("issue_returned", "zh-CN"): ["评估结论：部分解决"],
    ("issue_returned", "en"): ["partly solved"],
    ("budget_decided", "zh-CN"): ["金额 90万元的审批结果", "已批准"],  # not "900000.00 元"
    ("budget_decided", "en"): ["CNY 900,000.00", "approved"],
    ("budget_year_set", "zh-CN"): ["年度预算 8,600万元，其中应急预留 860万元"],
    ("budget_year_set", "en"): ["CNY 86,000,000.00", "reserve CNY 8,600,000.00"],
    ("decision_recorded", "zh-CN"): ["协调决定：统一材料清单", "方案报备截止：2026-05-29"],
    ("decision_recorded", "en"): ["Decided: 统一材料清单", "Plan due: 2026-05-29"],
    ("budget_review_due", "zh-CN"): ["请合规专员审核", "金额 90万元"],
    ("budget_review_due", "en"): ["the compliance officer"],
    ("audit_finding", "zh-CN"): ["2026-W28 周审计新发现 2 项", "尚未整改 3 项"],  # not 本周
    ("audit_finding", "en"): ["2 new finding(s)", "3 open"],
    ("audit_finding_severe", "zh-CN"): ["1 项严重问题"],
    ("audit_finding_severe", "en"): ["1 new severe finding(s)"],
    ("warning_raised", "zh-CN"): ["橙色预警（警示级）"],
    ("warning_raised", "en"): ["orange warning (alert)"],
    ("interview_requested", "zh-CN"): [
        "约谈通知：发展改革委",
        "行动项「梳理现状清单」已逾期（红灯）",
    ],
    ("interview_requested", "en"): ['The action item "梳理现状清单" is overdue (red)'],
    ("item_turned_red", "zh-CN"): ["责任单位 发展改革委"],
    ("item_turned_red", "en"): ["owner Development and Reform Commission"],
}
RAW_CODES = (
    "leadership",
    "planning",
    "partly",
    "approved",
    "compliance",
    "orange",
    "dev-reform",
    "None",
)


def test_messages_name_coded_values_in_the_readers_words(policy):
    for kind, context in STEP_CONTEXTS.items():
        for locale in LOCALES:
            rendered = render_message(
                _message(event_kind=kind, subject_type="task", context=context),
                clearance=Classification.secret,
                locale=locale,
                limits=policy.notifications,
            )
            text = f"{rendered.title}\n{rendered.body}"
            for words in EXPECTED[(kind, locale)]:
                assert words in text, (kind, locale, text)
            if locale == "zh-CN":
                assert not [c for c in RAW_CODES if c in text], (kind, text)
            assert "  " not in text and "：。" not in text, (kind, locale, text)


def test_a_failed_pre_review_says_so_rather_than_a_blank_result(policy):
    context = {"title": "T", "passed": False, "reasons": "材料不全"}
    zh = render_message(
        _message(event_kind="vote_closed", context=context),
        clearance=Classification.secret,
        locale="zh-CN",
        limits=policy.notifications,
    )
    assert "议题预审未通过" in zh.body and "材料不全" in zh.body


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    level=st.sampled_from(CLASSIFICATIONS),
    channel=st.sampled_from(CLASSIFICATIONS),
    readers=st.one_of(st.none(), st.sampled_from(CLASSIFICATIONS)),
)
def test_a_message_carries_content_only_where_channel_and_readers_are_cleared(
    policy, level, channel, readers
):
    """Redacted unless both the channel and every member the audience reaches are cleared
    for the record (readers None: no member known behind the tag, the channel decides)."""
    channels = ChannelSet((Channel("c", channel, frozenset({"wg:data"}), service=None),))
    message = _message(audience="wg:data", classification=level, readers_cleared=readers)
    [job] = plan_sends(message, channels, locale="en", limits=policy.notifications)
    cleared = min(channel.rank, readers.rank if readers is not None else channel.rank)
    assert job.redacted == (level.rank > cleared)
    assert ("Permits take 40 days" in job.title + job.body) == (not job.redacted)


def test_a_page_an_uncleared_channel_carries_still_says_how_urgent_it_is(policy):
    """A secret level-I page to an internal channel read 「应急呼叫 应急事件 …」 and nothing
    else: not that it is level I, nor the 15 minutes to acknowledge. Those come from closed
    sets; the title and summary still never do."""
    context = {
        "level": "I",
        "ack_within_minutes": 15,
        "page_number": 2,
        "title": "§机房火灾§",
        "summary": "§三号楼§",
    }
    page = _message(
        event_kind="emergency_page",
        subject_type="emergency",
        classification=Classification.secret,
        context=context,
    )
    zh = render_message(
        page, clearance=Classification.internal, locale="zh-CN", limits=policy.notifications
    )
    assert zh.redacted and "I级" in zh.title
    assert "请在15分钟内确认" in zh.body and "第 2 次呼叫，仍未确认" in zh.body
    assert "§" not in zh.title + zh.body
    en = render_message(
        page, clearance=Classification.internal, locale="en", limits=policy.notifications
    )
    assert "Level I" in en.title and "acknowledge within 15 min" in en.body
    full = render_message(
        page, clearance=Classification.secret, locale="zh-CN", limits=policy.notifications
    )
    assert "（15分钟内）" in full.body and "机房火灾" in full.title  # 分钟, not "15 min内"
    # Not a closed value: shown neither.
    odd = replace(page, context={**context, "level": "§I级§", "ack_within_minutes": "15 分"})
    shown = render_message(
        odd, clearance=Classification.internal, locale="zh-CN", limits=policy.notifications
    )
    assert "§" not in shown.title + shown.body and "分钟内确认" not in shown.body


def test_a_year_set_notice_writes_total_and_reserve_in_one_unit(policy):
    """8,600.01万元 beside 8,600,010.00元 made the reader convert (money.format_yuan_alike)."""
    message = _message(
        event_kind="budget_year_set",
        context={"year": 2027, "total": "86000100.00", "reserve": "8600010.00"},
    )
    body = render_message(
        message, clearance=Classification.secret, locale="zh-CN", limits=policy.notifications
    ).body
    assert "年度预算 86,000,100.00元，其中应急预留 8,600,010.00元" in body
