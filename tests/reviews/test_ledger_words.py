"""The workbooks' ledgers show codes in the locale's words, and leave the shared frame alone."""

import pandas as pd

from taskforce.reviews.ledgers import budget_sheet, task_sheet


def _tasks() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "issue": ["TF-2026-00001"] * 3,
            "title": ["问题"] * 3,
            "level": ["goal", "sub_project", "action_item"],
            "task": ["目标", "子项目", "行动项"],
            "owner_zh": ["财政局"] * 3,
            "owner_en": ["Finance Bureau"] * 3,
            "done": [True, False, False],
            "colour": ["green", "yellow", None],
        }
    )


def _column(view, header: str) -> list:
    index = dict((h, i) for i, h in view.columns)[header]
    return view.frame.iloc[:, index].tolist()


def test_task_codes_in_chinese_words_and_the_shared_frame_unchanged():
    frame = _tasks()
    before = frame.copy()
    view = task_sheet(frame, "zh-CN")
    assert _column(view, "层级") == ["总目标", "子项目", "行动项"]
    assert _column(view, "状态灯")[:2] == ["绿", "黄"]
    assert pd.isna(_column(view, "状态灯")[2])  # no colour stays empty, not "colour.None"
    assert _column(view, "已完成") == ["是", "否", "否"]
    assert _column(view, "责任单位") == ["财政局"] * 3
    pd.testing.assert_frame_equal(frame, before)  # the English sheet reads the same frame


def test_task_codes_in_english_words():
    view = task_sheet(_tasks(), "en")
    assert _column(view, "Level") == ["goal", "sub-project", "action item"]
    assert _column(view, "Done") == ["yes", "no", "no"]


def test_budget_ledger_kinds_in_words():
    frame = pd.DataFrame({"kind": ["disbursement", "reserve_draw"], "amount": [1.0, 2.0]})
    assert _column(budget_sheet(frame, "zh-CN"), "类型") == ["支出", "应急预留动用"]
    assert _column(budget_sheet(frame, "en"), "Kind") == ["disbursement", "reserve draw"]
