"""The stage funnel: every open count labelled, an overdue count only where there is one."""

from __future__ import annotations

import re

import pytest

from taskforce.reports.i18n import LOCALES, translator
from taskforce.reviews.charts import funnel_chart

WHITE_LABEL = re.compile(r"<text[^>]*fill: ?#ffffff[^>]*>([^<]*)</text>")


def _white_labels(svg: str) -> list[str]:
    return WHITE_LABEL.findall(svg)


@pytest.mark.parametrize("locale", LOCALES)
def test_overdue_labels_only_on_stages_with_overdue_issues(locale):
    stages = [
        {"stage": "reported", "open": 4, "overdue": 0},
        {"stage": "coordinating", "open": 3, "overdue": 2},
        {"stage": "planning", "open": 2, "overdue": 0},
        {"stage": "executing", "open": 7, "overdue": 5},
    ]
    svg = funnel_chart(stages, translator(locale))
    assert sorted(_white_labels(svg)) == ["2", "5"]


def test_no_overdue_at_all_draws_no_white_label():
    stages = [{"stage": "executing", "open": 1, "overdue": 0}]
    svg = funnel_chart(stages, translator(LOCALES[0]))
    assert _white_labels(svg) == []
    assert ">1</text>" in svg  # the open count is still written
