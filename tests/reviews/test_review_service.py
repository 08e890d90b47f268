"""The PDCA review end to end without Prefect: Act opens each improvement issue once,
lessons reach the next review, re-running a period replaces and never duplicates."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taskforce.context import Context
from taskforce.loop.models import Issue
from taskforce.notify.models import OutboxMessage
from taskforce.registers.models import CaseLesson, Review
from taskforce.reviews.service import run_review
from tests.reviews import factories as f

NOW = f.utc(2026, 12, 1, 1)
# Missed in November (see tests/kpi/test_kpis.py): resolution 50 % < 80 %, on time 33 % < 90 %,
# satisfaction 87.5 < 90, full-time share 9/22 < 60 %, training 52.3 h < 60 h.
MISSED = [
    "resolution_rate",
    "on_time_rate",
    "satisfaction",
    "full_time_share",
    "training_hours_per_member",
]


@pytest.fixture
def ctx(engine, policy, clock):
    with Session(engine) as s, s.begin():
        f.november_dataset(s)
    clock.set(NOW)
    return Context(policy=policy, clock=clock)


def _count(engine, model, *where) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_monthly_review_acts_once_and_rerun_replaces(engine, ctx, tmp_path):
    first = run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path)
    assert first.created
    assert [a.code for a in first.actions] == MISSED
    assert len({a.issue_number for a in first.actions}) == len(MISSED)  # one issue per action
    with Session(engine) as s:
        opened = s.scalars(select(Issue).where(Issue.origin == "review")).all()
        assert sorted(i.origin_ref for i in opened) == sorted(
            f"monthly:2026-11:{c}" for c in MISSED
        )
        assert all(i.category == ctx.policy.review.improvement_category for i in opened)
        lessons = s.scalars(
            select(CaseLesson).where(CaseLesson.source == "review:monthly:2026-11")
        ).all()
        assert len(lessons) == len(MISSED)
    with Session(engine) as s:
        audiences = s.scalars(
            select(OutboxMessage.audience).where(OutboxMessage.event_kind == "review_published")
        ).all()
    # A monthly review is the executive group's own (review.conducted_by): no second notice.
    assert sorted(audiences) == ["executive", "leadership"]
    with Session(engine) as s:
        notice = s.scalars(
            select(OutboxMessage.context).where(OutboxMessage.event_kind == "review_published")
        ).first()
        assert notice["title"] == "月度复盘 2026-11"  # the notification template's keys
        assert notice["path"].endswith("monthly-2026-11.zh-CN.internal.html")
        assert "问题解决率" in notice["summary"]

    ctx.clock.advance(hours=2)
    again = run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path)
    assert not again.created
    assert [a.issue_number for a in again.actions] == [a.issue_number for a in first.actions]
    assert _count(engine, Issue, Issue.origin == "review") == len(MISSED)
    assert _count(engine, CaseLesson, CaseLesson.source == "review:monthly:2026-11") == len(MISSED)
    assert _count(engine, Review) == 1
    assert _count(engine, OutboxMessage, OutboxMessage.event_kind == "review_published") == len(
        audiences
    )
    assert again.files == first.files  # same paths, overwritten in place
    with Session(engine) as s:
        review = s.scalar(select(Review))
        assert review.generated_at == NOW + dt.timedelta(hours=2)
        assert review.kpis["values"]["resolution_rate"] == pytest.approx(0.5)


def test_files_in_both_locales_and_the_ledgers(engine, ctx, tmp_path):
    out = run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path)
    folder = tmp_path / "monthly" / "2026-11"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"monthly-2026-11.{loc}.internal.{ext}"
        for loc in ("zh-CN", "en")
        for ext in ("html", "md", "xlsx")
    )
    zh = (folder / "monthly-2026-11.zh-CN.internal.md").read_text(encoding="utf-8")
    en = (folder / "monthly-2026-11.en.internal.md").read_text(encoding="utf-8")
    assert "月度复盘" in zh and "问题解决率" in zh and "里程碑" in zh
    # Warnings by their full level names (SPEC §5), not a bare colour.
    assert "| 黄色预警（关注级） |" in zh and "| 橙色预警（警示级） |" in zh
    assert "| orange warning (alert) |" in en
    assert "Monthly review" in en and "Problem-resolution rate" in en
    assert "| Problem-resolution rate | 50.0% | ≥ 80.0% | missed | 50.0% | → flat | 4 |" in en
    html = (folder / "monthly-2026-11.en.internal.html").read_text(encoding="utf-8")
    for chart in ("chart-colours", "chart-trend", "chart-burndown", "chart-funnel"):
        assert f'data-chart="{chart}"' in html
    # Self-contained: no scripts, no external stylesheets, fonts or images.
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)|url\(\s*["']?(https?:|//)""", html)
    assert "@media print" in html

    wb = load_workbook(folder / "monthly-2026-11.zh-CN.internal.xlsx")
    assert wb.sheetnames == ["指标", "任务台账", "资金台账"]
    kpi_rows = list(wb["指标"].iter_rows(values_only=True))
    # The sheet says what it is (period, audience), as the ledgers do: a sheet is read alone.
    assert kpi_rows[0][0].startswith("2026-11（2026-11-01 至 2026-11-30）各项指标对照目标与上期")
    assert "阅读范围：内部" in kpi_rows[0][0]
    kpis = {row[0]: row for row in kpi_rows[1:]}
    # As the report shows it: a rate in percent, named so (50.0%, target ≥ 80.0%).
    assert kpis["指标"][1:5] == ("本期值", "达标条件", "目标", "状态")
    assert kpis["问题解决率 %"][1:5] == (50.0, "≥", 80.0, "未达标")
    assert kpis["实际工期与计划工期之比"][2] == "≤"
    # A count whole, as the report shows it (an operator trial read "2.0" warnings and 33.0
    # red items: the value column was all floats).
    counts = [kpis[name] for name in ("预警数", "红灯行动项")]
    assert counts and all(type(row[1]) is int for row in counts), counts
    assert all(type(row[7]) is int for row in list(kpis.values())[1:] if row[7] is not None)
    assert all(
        v is None or v == round(v, 2)
        for row in list(kpis.values())[1:]
        for v in (row[1], row[3])
        if not isinstance(v, str)
    )
    tasks = list(wb["任务台账"].iter_rows(values_only=True))
    # The first row says which items the sheet lists (the period's), the header follows.
    assert tasks[0][0].startswith("本表列出 2026-11（2026-11-01 至 2026-11-30，北京时间）")
    assert "taskforce" not in tasks[0][0]  # no command line in a meeting document
    assert "阅读范围：内部；超出此范围的记录未列入本表" in tasks[0][0]
    assert tasks[1][:4] == ("问题编号", "问题名称", "层级", "任务")
    # Four of the six action items: due 10, 10, 20 November, and the one due 31 October but
    # completed 3 November; not the two due in December.
    assert sorted(row[6].date().isoformat() for row in tasks[2:]) == [
        "2026-10-31",
        "2026-11-10",
        "2026-11-10",
        "2026-11-20",
    ]
    ledger = list(wb["资金台账"].iter_rows(values_only=True))
    assert "2026-11" in ledger[0][0] and ledger[1][0] == "日期"
    # Entries dated in November: 10 Nov (reserve draw), 30 Nov; not 3 March, not 1 Dec.
    assert [row[0].date().isoformat() for row in ledger[2:]] == ["2026-11-10", "2026-11-30"]
    amounts = [row[-1] for row in ledger[2:]]
    assert amounts == [50000, 150000]
    en_wb = load_workbook(folder / "monthly-2026-11.en.internal.xlsx")
    assert en_wb["Task ledger"]["A1"].value.startswith("Task nodes of 2026-11 (2026-11-01 to")
    assert out.kpis[0]["code"] == "resolution_rate"


def test_a_public_build_says_targets_were_missed_though_it_may_not_list_their_issues(
    engine, ctx, tmp_path
):
    """The improvement issues are internal: a public report lists none of them, and its Act
    section used to read "本期各项指标均已达标" under a table of five missed targets."""
    run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path, audience="public")
    folder = tmp_path / "monthly" / "2026-11"
    zh = (folder / "monthly-2026-11.zh-CN.public.md").read_text(encoding="utf-8")
    en = (folder / "monthly-2026-11.en.public.html").read_text(encoding="utf-8")
    assert "本期各项指标均已达标" not in zh
    assert f"{len(MISSED)} 项指标未达标；其整改问题的密级高于本报告的读者范围" in zh
    assert f"{len(MISSED)} KPI(s) missed their target; their follow-up issues are classified" in en
    # Its lagging items are all internal: the empty list says so, not "none" (the KPI table
    # counts them); a table of counts that is empty says plain "none".
    lagging_section = zh.split("## 滞后行动项（红灯、黄灯）", 1)[1].split("\n## ", 1)[0]
    # Worded for a database with nothing to list as well (an operator trial: "none within
    # this audience" when nothing existed at all).
    assert "无（仅列出本报告阅读范围内的记录）。" in lagging_section, lagging_section
    assert "None (only records within this report&#39;s audience are listed)." in en
    internal = run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path, locales=["zh-CN"])
    listed = (folder / "monthly-2026-11.zh-CN.internal.md").read_text(encoding="utf-8")
    assert all(a.issue_number in listed for a in internal.actions)
    assert "未达标；其整改问题" not in listed
    # The lagging items' column is their due date (到期日), not a count (到期数); their
    # progress is in percent.
    assert "| 到期日 |" in listed
    lagging = [line for line in listed.splitlines() if line.startswith("| 黄 | TF-")]
    assert lagging and all(line.rstrip(" |").endswith("%") for line in lagging), lagging


def test_a_notice_links_the_report_where_the_office_serves_it(engine, ctx, tmp_path, monkeypatch):
    """A notice read in mail or chat gave a path on the worker's disk. With the intranet
    address of the reports folder set, it gives the report's address there."""
    monkeypatch.setenv("TASKFORCE_REPORTS_URL", "https://oa.example.gov.cn/tf-reports/")
    run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path, locales=["zh-CN"])
    with Session(engine) as s:
        notice = s.scalars(
            select(OutboxMessage.context).where(OutboxMessage.event_kind == "review_published")
        ).first()
    assert notice["path"] == (
        "https://oa.example.gov.cn/tf-reports/monthly/2026-11/monthly-2026-11.zh-CN.internal.html"
    )


def test_the_semiannual_audits_report_reaches_the_evaluator_who_conducts_it(engine, ctx, tmp_path):
    """SPEC §3: the semi-annual performance and risk audit is the third-party evaluator's;
    its report went to the executive and leadership groups only."""
    ctx.clock.set(f.utc(2027, 1, 5, 1))
    run_review(engine, ctx, "semiannual", "2026-H2", out_root=tmp_path, locales=["zh-CN"])
    with Session(engine) as s:
        audiences = s.scalars(
            select(OutboxMessage.audience).where(OutboxMessage.event_kind == "review_published")
        ).all()
    assert sorted(audiences) == ["evaluator", "executive", "leadership"]


def test_lessons_of_a_review_show_in_the_next(engine, ctx, tmp_path):
    run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path)
    ctx.clock.set(f.utc(2027, 1, 1, 1))
    out = run_review(engine, ctx, "monthly", "2026-12", out_root=tmp_path, locales=["en"])
    md = (tmp_path / "monthly" / "2026-12" / "monthly-2026-12.en.internal.md").read_text()
    # November's lesson in December's library (lessons are written in the policy's locale).
    assert "问题解决率 · 2026-11" in md
    # Its source in words (the policy's locale names the lesson; the reader's the source).
    assert "Monthly review 2026-11" in md and "review:monthly:2026-11" not in md
    # December's own missed targets link to November's still-open issues (duplicate rule),
    # so the loop holds one issue per problem.
    assert all(a.duplicate for a in out.actions if a.code in MISSED)


def test_a_past_periods_review_shows_no_later_lessons_and_links_without_a_notice(
    engine, ctx, tmp_path
):
    """November's review run again after December's: December's lessons were in November's
    case library, and each missed target linked to its open issue sent a 重复上报已关联
    notice beside the review's own publication."""
    run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path, locales=["en"])
    ctx.clock.set(f.utc(2027, 1, 1, 1))
    december = run_review(engine, ctx, "monthly", "2026-12", out_root=tmp_path, locales=["en"])
    assert december.actions and all(a.duplicate for a in december.actions if a.code in MISSED)
    assert _count(engine, OutboxMessage, OutboxMessage.event_kind == "duplicate_linked") == 0
    ctx.clock.set(f.utc(2027, 1, 2, 1))
    run_review(engine, ctx, "monthly", "2026-10", out_root=tmp_path, locales=["en"])
    md = (tmp_path / "monthly" / "2026-10" / "monthly-2026-10.en.internal.md").read_text()
    assert "· 2026-11" not in md and "· 2026-12" not in md  # lessons of later months
    ctx.clock.set(f.utc(2027, 1, 3, 1))
    run_review(engine, ctx, "monthly", "2026-12", out_root=tmp_path, locales=["en"])
    md = (tmp_path / "monthly" / "2026-12" / "monthly-2026-12.en.internal.md").read_text()
    assert "· 2026-11" in md  # an earlier month's lessons still show


def test_weekly_dispatch_does_not_act(engine, ctx, tmp_path):
    out = run_review(engine, ctx, "weekly", "2026-W47", out_root=tmp_path, locales=["zh-CN"])
    assert out.actions == []
    md = (tmp_path / "weekly" / "2026-W47" / "weekly-2026-W47.zh-CN.internal.md").read_text()
    assert "周调度报告" in md and "超出阶段时限的问题" in md and "台账与资金使用合规检查" in md
    # The open findings in the reader's words, as the budget audit's own report shows them.
    assert "| 超预算行支出 | 中 | 合规专员 | 预算行 " in md, md
    assert "overspend" not in md and "budget_line:" not in md


def test_the_weekly_dispatch_is_announced_to_the_working_groups_too(engine, ctx, tmp_path):
    """SPEC §3: the weekly dispatch is the executive group's and the working groups' (an
    operator trial: its notice reached the executive and leadership groups only)."""
    from taskforce.org.models import Group
    from taskforce.policy.schema import GroupKind

    run_review(engine, ctx, "weekly", "2026-W47", out_root=tmp_path, locales=["zh-CN"])
    with Session(engine) as s:
        audiences = s.scalars(
            select(OutboxMessage.audience).where(OutboxMessage.event_kind == "review_published")
        ).all()
        working = s.scalars(select(Group.code).where(Group.kind == GroupKind.working_group)).all()
    assert working and sorted(audiences) == sorted(["executive", "leadership", *working])


def test_rerun_after_the_data_changed_drops_stale_lessons_not_issues(engine, ctx, tmp_path):
    first = run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path, locales=["en"])
    # Satisfaction is corrected to meet its target: 80 → 100 makes the mean (100 + 95) / 2 = 97.5.
    with Session(engine) as s, s.begin():
        from taskforce.loop.models import Evaluation

        s.execute(
            Evaluation.__table__.update()
            .where(Evaluation.satisfaction == 80)
            .values(satisfaction=100)
        )
    again = run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path, locales=["en"])
    assert [a.code for a in again.actions] == [c for c in MISSED if c != "satisfaction"]
    with Session(engine) as s:
        titles = s.scalars(
            select(CaseLesson.title).where(CaseLesson.source == "review:monthly:2026-11")
        ).all()
    assert not any("满意度" in t for t in titles) and len(titles) == len(MISSED) - 1
    # The issue opened by the first run stays in the loop: issues are never deleted.
    assert _count(engine, Issue, Issue.origin == "review") == len(first.actions)


def test_lesson_sources_read_as_words_in_both_locales():
    from taskforce.reports.i18n import translator
    from taskforce.reviews.service import lesson_source_words

    zh, en = translator("zh-CN"), translator("en")
    assert lesson_source_words("review:quarterly:2026-Q3", zh) == "季度优化复盘暨运行白皮书 2026-Q3"
    assert (
        lesson_source_words("evaluation:TF-2026-00024:1", zh) == "TF-2026-00024 效果评估（第 1 轮）"
    )
    assert lesson_source_words("evaluation:TF-2026-00024:2", en) == (
        "Evaluation of TF-2026-00024 (round 2)"
    )
    assert lesson_source_words("manual", en) == "manual"  # unknown shapes stay as stored


def test_a_quarter_links_every_target_missed_again_to_its_kpis_open_issue(engine, ctx, tmp_path):
    """Linking is by KPI, not by the loop's title rule: "满意度未达目标（2026-Q4）" against
    "满意度未达目标（2026-11）" scored 0.875, under the rule's 0.88, and was opened anew
    while the four longer titles were linked."""
    first = run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path, locales=["en"])
    opened = {a.code: a.issue_number for a in first.actions}
    ctx.clock.set(f.utc(2027, 1, 1, 1))
    quarter = run_review(engine, ctx, "quarterly", "2026-Q4", out_root=tmp_path, locales=["en"])
    again = {a.code: a for a in quarter.actions}
    assert set(again) >= set(MISSED)
    for code in MISSED:
        assert again[code].duplicate and again[code].issue_number == opened[code], code
    assert _count(engine, Issue, Issue.origin == "review") == len(opened) + sum(
        not a.duplicate for a in quarter.actions
    )


def test_a_review_says_which_improvement_issues_it_opened_and_which_were_already_open(
    engine, ctx, tmp_path
):
    """An operator trial: the Act section of reviews run after a later one listed the later
    review's issues under "作为新问题纳入闭环", as if each review had opened them."""
    first = run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path)
    ctx.clock.set(f.utc(2027, 1, 1, 1))
    second = run_review(engine, ctx, "monthly", "2026-12", out_root=tmp_path)
    opened = [a for a in first.actions if not a.duplicate]
    linked = [a for a in second.actions if a.duplicate]
    assert opened and linked
    folder = tmp_path / "monthly"
    zh_first = (folder / "2026-11" / "monthly-2026-11.zh-CN.internal.html").read_text("utf-8")
    zh_second = (folder / "2026-12" / "monthly-2026-12.zh-CN.internal.html").read_text("utf-8")
    en_second = (folder / "2026-12" / "monthly-2026-12.en.internal.md").read_text("utf-8")
    assert "作为新问题" not in zh_first + zh_second
    act_first = zh_first[zh_first.index("改进措施") :]
    act_second = zh_second[zh_second.index("改进措施") :]
    assert act_first.count("本次新建") == len(opened) and "沿用" not in act_first
    assert act_second.count("沿用其他复盘提出、仍未关闭的整改问题") == len(linked)
    # "another": a review of an older period links a later one's issues too (a re-trial)
    assert en_second.count("already open, from another review") == len(linked)
    summary = second.summary_markdown("en")
    assert all(f"{a.issue_number} (already open" in summary for a in linked), summary


@pytest.mark.parametrize("audience", ["public", "internal", "secret"])
def test_a_reviews_notice_is_classified_at_its_audience(engine, ctx, tmp_path, audience):
    """A classification audit: a secret review was announced at internal, to members cleared
    for internal only, with its report's link. Now at the report's audience (internal at the
    least), so they get a reference only."""
    run_review(engine, ctx, "monthly", "2026-11", audience=audience, out_root=tmp_path)
    with Session(engine) as s:
        levels = s.scalars(
            select(OutboxMessage.classification).where(
                OutboxMessage.event_kind == "review_published"
            )
        ).all()
    expected = "secret" if audience == "secret" else "internal"
    assert levels and {level.value for level in levels} == {expected}
