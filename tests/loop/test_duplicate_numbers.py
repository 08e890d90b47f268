"""SPEC §2.1 (a duplicate report of an open issue is linked to it, not opened twice): titles
that name different numbers are different matters, however alike the rest
(taskforce/loop/duplicates.py: title_numbers, name_different_numbers)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop.duplicates import (
    best_match,
    candidate,
    most_similar,
    name_different_numbers,
    title_numbers,
)
from taskforce.loop.models import Issue
from tests.loop.helpers import Loop

THRESHOLD = 0.88  # config/taskforce.yaml's default; the unit tests below do not read it


@pytest.mark.parametrize(
    ("title", "numbers"),
    [
        ("1号泵站出水管破裂", {"1"}),
        ("１２号泵站出水管破裂", {"12"}),  # full-width digits
        ("012号泵站出水管破裂", {"12"}),  # leading zeros
        ("2025年度预算执行偏差", {"2025"}),
        ("预算追加1,000万元", {"1000"}),
        ("地铁二期工程延误", {"2"}),
        ("第一批名单未公布", {"1"}),
        ("三号线站台积水", {"3"}),
        ("城东一号泵站出水管破裂", {"1"}),  # as 1号: one number however written
        ("第十二批名单", {"12"}),
        ("二〇二六年度预算", {"2026"}),  # a year, digit by digit
        ("二百零五号楼", {"205"}),
        ("统一审批流程", set()),  # a word, not a number
        ("进一步压减材料", set()),
        ("十四五规划中期评估", set()),
        ("泵站出水管破裂", set()),
    ],
)
def test_the_numbers_a_title_names(title, numbers):
    assert title_numbers(title) == frozenset(numbers)


@pytest.mark.parametrize(
    ("a", "b", "different"),
    [
        ({"1"}, {"2"}, True),
        ({"2026", "1"}, {"2"}, True),
        ({"1"}, {"1"}, False),
        ({"1"}, {"2026", "1"}, False),  # one names some of the other's: similarity decides
        (set(), {"2"}, False),  # a title without numbers may be the same matter
        (set(), set(), False),
    ],
)
def test_different_numbers_means_each_title_names_one_the_other_lacks(a, b, different):
    assert name_different_numbers(frozenset(a), frozenset(b)) is different
    assert name_different_numbers(frozenset(b), frozenset(a)) is different


_WORDS = st.text(
    alphabet="泵站出水管破裂故障供电中断排查整改督办材料审批窗口", min_size=6, max_size=20
)


@given(words=_WORDS, first=st.integers(0, 10_000), second=st.integers(0, 10_000))
def test_titles_differing_only_in_their_number_are_linked_only_when_it_is_the_same(
    words, first, second
):
    """For every title and every two numbers: the same title with another number is never a
    duplicate; with the same number (written with a leading zero too) it always is."""
    open_title = f"{first}号{words}"
    for report in (f"{second}号{words}", f"0{second}号{words}"):
        linked = best_match(report, [candidate(7, open_title)], THRESHOLD)
        assert linked == (7 if first == second else None)


def test_a_number_written_in_chinese_or_in_digits_is_the_same_matter():
    """A re-trial: 城东一号泵站 and 城东1号泵站, 地铁二期 and 地铁2期 became two issues."""
    rows = [(1, "城东1号泵站出水管破裂需紧急抢修"), (2, "地铁二期工程征地拆迁进度滞后")]
    assert most_similar("城东一号泵站出水管破裂需紧急抢修", rows, THRESHOLD) == 1
    assert most_similar("地铁2期工程征地拆迁进度滞后", rows, THRESHOLD) == 2
    assert most_similar("地铁三期工程征地拆迁进度滞后", rows, THRESHOLD) is None


def test_the_most_similar_title_with_the_same_number_wins_over_a_closer_one_without():
    rows = [(1, "1号泵站出水管破裂抢修"), (2, "2号泵站出水管破裂抢修")]
    assert most_similar("2号泵站出水管破裂抢修", rows, THRESHOLD) == 2
    assert most_similar("3号泵站出水管破裂抢修", rows, THRESHOLD) is None
    assert most_similar("泵站出水管破裂抢修", rows, THRESHOLD) == 1  # no number: the oldest


@pytest.fixture
def loop(engine, policy, clock):
    return Loop(engine, Context(policy=policy, clock=clock))


def _issues(engine) -> int:
    with unit_of_work(engine) as s:
        return s.scalar(select(func.count()).select_from(Issue))


def test_reports_of_pumping_stations_1_and_2_open_two_issues_and_a_second_report_of_2_links(
    loop, engine
):
    one = loop.report(title="城东1号泵站出水管破裂，需紧急抢修")
    two = loop.report(title="城东2号泵站出水管破裂，需紧急抢修")
    assert not two.duplicate and two.issue_number != one.issue_number
    again = loop.report(title="城东2号泵站出水管破裂，需紧急抢修。")
    assert again.duplicate and again.issue_number == two.issue_number
    phase = loop.report(title="地铁二期工程征地拆迁进度滞后")
    other_phase = loop.report(title="地铁三期工程征地拆迁进度滞后")
    assert not other_phase.duplicate and other_phase.issue_number != phase.issue_number
    assert _issues(engine) == 4
