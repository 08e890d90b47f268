"""Charts drawn once for every locale are the charts drawn per locale, byte for byte."""

from __future__ import annotations

import random

import pytest

from taskforce.kpi.compute import BY_CODE, CATALOGUE, Kpi, KpiSet
from taskforce.reports.charts import small_multiples
from taskforce.reports.i18n import LOCALES, translator
from taskforce.reviews import charts


def _history(seed: int, periods: int) -> list[KpiSet]:
    rng = random.Random(seed)
    return [
        KpiSet(
            period=f"2026-{i + 1:02d}",
            kpis={
                d.code: Kpi(
                    d.code,
                    d.unit,
                    d.better.value,
                    None if rng.random() < 0.2 else rng.random() * 100,
                    target=rng.choice([None, 0.8, 60.0]),
                )
                for d in CATALOGUE
            },
        )
        for i in range(periods)
    ]


def _drawn_per_locale(history: list[KpiSet], t) -> str:
    """The trend chart as it was drawn before: once per locale, with the locale's titles."""
    panels = []
    for code, kpi in history[-1].kpis.items():
        unit = BY_CODE[code].unit
        name = t(f"kpi.{code}") + (" %" if unit == "ratio" else "")
        values = [charts._display(h.kpis[code].value, unit) for h in history]
        panels.append((name, values, charts._display(kpi.target, unit)))
    return small_multiples(
        [h.period for h in history],
        panels,
        chart_id="chart-trend",
        title=t("section.trend"),
        columns=4,
    )


@pytest.mark.parametrize(("seed", "periods"), [(1, 6), (2, 1), (3, 4)])
def test_the_trend_chart_drawn_once_is_the_chart_of_each_locale(seed, periods):
    history = _history(seed, periods)
    once = charts.trend_charts(history, {loc: translator(loc) for loc in LOCALES})
    for locale in LOCALES:
        assert once[locale] == _drawn_per_locale(history, translator(locale))
    assert "TFLABEL" not in once["zh-CN"] + once["en"]
    assert "问题解决率" in once["zh-CN"] and "Problem-resolution rate" in once["en"]


def test_relabelling_escapes_the_text():
    from taskforce.reports.charts import relabelled

    assert relabelled("<text>TFLABEL000X</text>", {"TFLABEL000X": "a < b & c"}) == (
        "<text>a &lt; b &amp; c</text>"
    )


def _tick_texts(svg: str) -> list[str]:
    import re

    return re.findall(r">([^<>]{1,12})</text>", svg)


def test_a_value_that_does_not_move_is_drawn_from_zero():
    """An operator's trial: a constant KPI had ticks 0.00075 / 0.00078 / 0.00081 (and 5.0
    had 4.8 / 5.0 / 5.2), which read as a change. A flat line is drawn from zero; a line
    that moves, or sits away from its target, keeps matplotlib's own range."""
    flat = small_multiples(
        ["Q1", "Q2", "Q3"],
        [("A", [5.0, 5.0, 5.0], None), ("B", [0.00078, 0.00078, None], None)],
        chart_id="c",
        title="t",
        columns=2,
    )
    ticks = _tick_texts(flat)
    assert "0" in ticks and "4.8" not in ticks and "5.2" not in ticks, ticks
    assert "0.00075" not in ticks and "0.00081" not in ticks, ticks
    moving = small_multiples(
        ["Q1", "Q2", "Q3"], [("C", [60.0, 60.2, 60.1], 50.0)], chart_id="c", title="t"
    )
    assert "0" not in _tick_texts(moving), _tick_texts(moving)


def test_an_empty_list_says_whether_it_may_hide_records():
    """A list filtered by the reader's clearance says "none within this report's audience";
    a table of counts says plain "none" (the operator trial read 无 under a KPI that counted
    a hidden item as zero)."""
    from taskforce.reports.i18n import TEMPLATES_DIR
    from taskforce.reports.render import _environment

    macros = _environment(TEMPLATES_DIR, True).get_template("_macros.html.j2").module
    t = translator("zh-CN")
    columns = [("title", "title", "")]
    assert "无（仅列出本报告阅读范围内的记录）。" in str(
        macros.rows_table(columns, [], t, empty="none_readable")
    )
    plain = str(macros.rows_table(columns, [], t))
    assert "无。" in plain and "阅读范围" not in plain
