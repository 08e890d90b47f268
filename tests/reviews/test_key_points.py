"""要点 at the top of a review: the rule without a database (key_points), and the counts
behind it, read into the review's frames on both backends (attention_counts), at their
boundaries."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from taskforce.emergency.models import Level
from taskforce.kpi.compute import Kpi, KpiSet
from taskforce.kpi.frames import load_frames
from taskforce.reports.i18n import translator
from taskforce.reviews.key_points import attention_counts, key_points, open_matters
from taskforce.reviews.periods import parse_period
from tests.reviews import factories as f

NOW = f.utc(2026, 12, 1, 1)
TODAY = dt.date(2026, 12, 1)  # NOW in Shanghai
Q3 = parse_period("quarterly", "2026-Q3")
NOTHING = {"red": 0, "interviewed": 0, "escalated": 0, "warnings_late": {}, "emergencies_open": 0}


def _kpis(**kpis: Kpi) -> KpiSet:
    return KpiSet(period=Q3.label, kpis=kpis, details={"stages": [], "budget": None})


def test_a_quiet_period_says_that_nothing_needs_a_decision():
    met = Kpi("resolution_rate", "ratio", "up", 0.9, 0.8, "min", status="met")
    zh = translator("zh-CN")
    assert key_points(_kpis(resolution_rate=met), NOTHING, Q3, zh) == [zh("points.none")]


def test_each_matter_is_one_line_with_its_numbers():
    missed = Kpi("satisfaction", "score", "up", 72.5, 85.0, "min", status="missed")
    late_rate = Kpi("on_time_rate", "ratio", "up", 0.61, 0.9, "min", status="missed")
    rate = Kpi("budget_execution_rate", "ratio", "up", 0.39)
    kpis = _kpis(satisfaction=missed, on_time_rate=late_rate, budget_execution_rate=rate)
    kpis.details = {
        "stages": [{"stage": "planning", "open": 5, "overdue": 2}, {"overdue": 1}],
        "budget": {
            "year": 2026,
            "approved_fen": 100,
            "spent_fen": 39,
            "recorded_to": dt.date(2026, 9, 12),
        },
    }
    counts = {
        "red": 12,
        "interviewed": 9,
        "escalated": 3,
        "warnings_late": {"orange": 26, "red": 1},
        "warnings_late_settled": 19,
        "emergencies_open": 2,
    }
    points = key_points(kpis, counts, Q3, translator("zh-CN"))
    assert points == [
        "2 项指标未达标：满意度 72.5（目标 ≥ 85）；按期完成率 61.0%（目标 ≥ 90.0%）。",
        "12 个行动项亮红灯，其中已发起约谈 9 个、已提请领导小组 3 个。",
        "27 条预警已过处置时限仍未处置：红色预警（危急级） 1 条；橙色预警（警示级） 26 条。",
        "其中 19 条所涉行动项已完成或问题已销号，预警尚未关闭：请予关闭。",
        "2 起应急事件尚未处置完毕。",
        "3 个问题超出所处阶段的时限。",
        # 30 September is day 273 of 365.
        "2026 年已批项目预算执行率 39.0%（截至 2026-09-30：已支出 0.39元，已批 1.00元），时间进度 74.8%。",
    ]
    en = key_points(kpis, counts, Q3, translator("en"))
    assert en[0].startswith("Targets missed (2): Satisfaction score 72.5 (target ≥ 85); ")
    assert en[-1] == (
        "Execution of the 2026 budget approved so far: 39.0% (CNY 0.39 spent of CNY 1.00 "
        "approved, to 2026-09-30), with 74.8% of the year elapsed."
    )
    assert not any("{" in line for line in points + en)  # every placeholder filled


def test_a_quiet_period_still_shows_its_budget_after_saying_so():
    kpis = _kpis(budget_execution_rate=Kpi("budget_execution_rate", "ratio", "up", 0.5))
    kpis.details["budget"] = {
        "year": 2026,
        "approved_fen": 86_000_000_00,
        "spent_fen": 43_000_000_00,
        "recorded_to": dt.date(2026, 9, 30),  # recorded to the period's end: no ledger line
    }
    zh = translator("zh-CN")
    assert key_points(kpis, NOTHING, Q3, zh) == [
        zh("points.none"),
        "2026 年已批项目预算执行率 50.0%（截至 2026-09-30：已支出 4,300万元，已批 8,600万元），"
        "时间进度 74.8%。",
    ]
    kpis.details["budget"]["recorded_to"] = None
    assert key_points(kpis, NOTHING, Q3, zh)[-1] == "2026 年资金台账尚无记录：支出尚未导入。"


def test_no_budget_line_no_budget_point():
    kpis = _kpis(budget_execution_rate=Kpi("budget_execution_rate", "ratio", "up", None))
    kpis.details["budget"] = {"year": 2026, "approved_fen": 0, "spent_fen": 0}
    zh = translator("zh-CN")
    assert key_points(kpis, NOTHING, Q3, zh) == [zh("points.none")]


def test_the_counts_at_their_boundaries(engine):
    with Session(engine) as s, s.begin():
        issue = f.issue(s, reported_at=f.utc(2026, 8, 1))
        # Red: due before today (1 December in Shanghai), 30 November the last such day.
        start, due = dt.date(2026, 8, 1), dt.date(2026, 9, 1)
        f.action_item(s, issue, start=start, due=dt.date(2026, 11, 30))
        interviewed = f.action_item(s, issue, start=start, due=due)
        interviewed.interview_requested_at = f.utc(2026, 9, 3)
        escalated = f.action_item(s, issue, start=start, due=due)
        escalated.interview_requested_at = f.utc(2026, 9, 3)
        escalated.escalated_at = f.utc(2026, 9, 10)
        # Past due but done (its colour is history), and due today (yellow): not counted.
        done = f.action_item(s, issue, start=start, due=due, completed_at=f.utc(2026, 9, 20))
        closed = f.issue(s, reported_at=f.utc(2026, 8, 1), closed_at=f.utc(2026, 10, 1))
        f.action_item(s, issue, start=start, due=dt.date(2026, 12, 1))
        # Warnings: due a microsecond before now (late), due exactly now (not yet), handled.
        tick = dt.timedelta(microseconds=1)
        f.warning(s, colour="orange", raised_at=NOW - dt.timedelta(hours=72) - tick,
                  deadline_hours=72)  # fmt: skip
        f.warning(s, colour="orange", raised_at=NOW - dt.timedelta(hours=72), deadline_hours=72)
        # Late, open, on an item done and on an issue closed: counted, and counted as settled.
        long_ago = f.utc(2026, 10, 1)
        f.warning(s, colour="orange", raised_at=long_ago, deadline_hours=72,
                  subject=("task", str(done.id)))  # fmt: skip
        f.warning(s, colour="yellow", raised_at=long_ago, deadline_hours=72,
                  subject=("issue", closed.number))  # fmt: skip
        # Late on an open item of an open issue: not settled.
        f.warning(s, colour="red", raised_at=long_ago, deadline_hours=24,
                  subject=("task", str(interviewed.id)))  # fmt: skip
        f.warning(s, colour="red", raised_at=f.utc(2026, 11, 1), deadline_hours=24,
                  handled_at=f.utc(2026, 11, 3))  # fmt: skip
        f.emergency(s, level=Level.II, opened_at=f.utc(2026, 11, 30))
        f.emergency(s, level=Level.II, opened_at=f.utc(2026, 11, 30), is_drill=True)
        f.emergency(s, level=Level.III, opened_at=f.utc(2026, 11, 2),
                    resolved_at=f.utc(2026, 11, 2, 5))  # fmt: skip
    with engine.connect() as conn:
        counts = attention_counts(load_frames(conn), open_matters(conn, NOW, TODAY))
    assert counts == {
        "red": 3,
        "interviewed": 2,
        "escalated": 1,
        "warnings_late": {"orange": 2, "yellow": 1, "red": 1},
        "warnings_late_settled": 2,
        "emergencies_open": 1,
    }


def test_the_ledger_line_appears_when_the_period_s_last_month_has_no_entry():
    """Q3's last month is September: an entry on 1 September is enough, 31 August is not."""
    kpis = _kpis(budget_execution_rate=Kpi("budget_execution_rate", "ratio", "up", 0.5))
    zh = translator("zh-CN")

    def ledger_line(recorded_to):
        kpis.details["budget"] = {
            "year": 2026,
            "approved_fen": 100,
            "spent_fen": 50,
            "recorded_to": recorded_to,
        }
        points = key_points(kpis, NOTHING, Q3, zh)
        return points[2] if len(points) == 3 else None

    assert ledger_line(dt.date(2026, 9, 1)) is None
    assert ledger_line(dt.date(2026, 8, 31)) == (
        "资金台账最后一笔记录在 2026-08-31，其后至 2026-09-30 没有记录："
        "如有支出尚未导入，执行率会偏低。"
    )


def test_money_spent_with_no_approved_line_is_a_matter_for_the_meeting():
    """An operator trial: FY2026 set, 50,000 yuan paid, no line approved: the key points said
    nothing needed a decision, and the execution rate read "—"."""
    kpis = _kpis(budget_execution_rate=Kpi("budget_execution_rate", "ratio", "up", None))
    kpis.details["budget"] = {"year": 2026, "approved_fen": 0, "spent_fen": 50_000_00}
    zh, en = translator("zh-CN"), translator("en")
    assert key_points(kpis, NOTHING, Q3, zh) == [
        "2026 年尚无已批准的项目预算，资金台账却已记录支出 5万元：请补办预算审批（见预算合规检查）。"
    ]
    assert "no project budget line approved yet" in key_points(kpis, NOTHING, Q3, en)[0]
    kpis.details["budget"]["spent_fen"] = 0  # nothing spent: nothing to say (as before)
    assert key_points(kpis, NOTHING, Q3, zh) == [zh("points.none")]
