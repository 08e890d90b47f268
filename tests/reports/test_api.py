"""The reports API the reviews and the budget audit share."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from taskforce.policy.schema import Classification
from taskforce.reports import (
    LOCALES,
    TEMPLATES_DIR,
    NotCleared,
    assert_cleared,
    bar_chart,
    cleared_for,
    render_report,
    translator,
    visible,
    write_workbook,
)
from taskforce.reports.i18n import catalogue


def test_catalogues_have_the_same_keys():
    zh, en = catalogue("zh-CN"), catalogue("en")
    assert set(zh) == set(en)


def test_every_literal_key_used_by_a_template_exists():
    used = set()
    for template in TEMPLATES_DIR.glob("*.j2"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']""", template.read_text()))
    used = {k for k in used if not k.endswith(".")}  # prefixes: see the next test
    for locale in LOCALES:
        missing = used - set(catalogue(locale))
        assert not missing, f"{locale}: {sorted(missing)}"


def test_every_value_a_template_translates_by_prefix_exists():
    from taskforce.emergency.models import Level
    from taskforce.kpi.compute import CATALOGUE, STAGES
    from taskforce.registers.models import MilestoneKind, RiskCategory, RiskStrategy
    from taskforce.reviews.periods import ReviewKind

    families = {
        "kpi": [k.code for k in CATALOGUE],
        "review": [k.value for k in ReviewKind],
        "stage": list(STAGES),
        "milestone": [k.value for k in MilestoneKind],
        "phase": ["startup", "push", "consolidation", "later"],
        "risk": [c.value for c in RiskCategory],
        "strategy": [s.value for s in RiskStrategy],
        "level": [lv.value for lv in Level],
        "colour": ["green", "yellow", "orange", "red"],
        "change": ["up", "down", "flat"],
        "status": ["met", "missed"],
        "target_rule": ["min", "max"],
        "audience": [c.value for c in Classification],
        "do": ["issues_reported", "issues_closed", "items_completed", "evaluations",
               "milestones_attained", "warnings_handled"],
    }  # fmt: skip
    for locale in LOCALES:
        texts = catalogue(locale)
        missing = [
            f"{p}.{v}" for p, values in families.items() for v in values if f"{p}.{v}" not in texts
        ]
        assert not missing, f"{locale}: {missing}"


def test_unknown_locale_is_a_clear_error():
    with pytest.raises(ValueError, match="locale"):
        translator("fr")


def test_cleared_for_is_ordered():
    assert cleared_for("public") == [Classification.public]
    assert cleared_for("internal") == [Classification.public, Classification.internal]
    assert cleared_for("secret") == list(Classification)


levels = st.sampled_from([c.value for c in Classification])


@given(
    rows=st.lists(st.fixed_dictionaries({"classification": levels, "title": st.text()})),
    audience=levels,
)
def test_visible_rows_always_pass_the_renderer_check(rows, audience):
    shown = visible(rows, audience)
    assert_cleared({"rows": shown}, audience)  # never raises for what `visible` keeps
    hidden = [r for r in rows if r not in shown]
    for row in hidden:
        with pytest.raises(NotCleared):
            assert_cleared({"rows": [row]}, audience)


def test_svg_chart_is_inline_deterministic_and_text_stays_text():
    a = bar_chart(["绿", "红"], [3, 1], chart_id="c1", title="分布 <test>")
    b = bar_chart(["绿", "红"], [3, 1], chart_id="c1", title="分布 <test>")
    assert a == b
    assert a.startswith("<svg ") and 'id="c1"' in a and "<title>分布 &lt;test&gt;</title>" in a
    assert "<metadata" not in a and "<?xml" not in a
    assert "绿" in a  # svg.fonttype none: labels are <text>, searchable and drawn by the browser


def test_render_report_with_another_template_folder(tmp_path):
    """How the budget audit renders its own report through the same machinery."""
    templates = tmp_path / "templates"
    (templates / "i18n").mkdir(parents=True)
    for locale in LOCALES:
        (templates / "i18n" / f"{locale}.yaml").write_text(
            f"hello: hi-{locale}\n", encoding="utf-8"
        )
    (templates / "audit.html.j2").write_text(
        "<p>{{ t('hello') }} {{ rows | length }} {{ 123456 | yuan(locale) }}</p>"
    )
    (templates / "audit.md.j2").write_text("{{ t('hello') }} | {{ 'a|b' | md }}")
    files = render_report(
        "audit", {"rows": [{"classification": "public"}]}, "en", "public", tmp_path / "out",
        templates_dir=templates,
    )  # fmt: skip
    assert files["html"].name == "audit.en.public.html"
    assert files["html"].read_text() == "<p>hi-en 1 CNY 1,234.56</p>"
    assert files["md"].read_text() == "hi-en | a\\|b"


def test_write_workbook(tmp_path):
    frame = pd.DataFrame(
        {
            "单位": ["市场监管局", "财政局"],
            "金额（元）": [Decimal("1234.50"), Decimal("0.01")],
            "到期日": [dt.date(2026, 11, 30), None],
            "完成时间": pd.to_datetime(["2026-11-30T16:00Z", None], utc=True),
        }
    )
    path = write_workbook({"资金台账": frame}, tmp_path / "x.xlsx", timezone="Asia/Shanghai")
    ws = load_workbook(path)["资金台账"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("单位", "金额（元）", "到期日", "完成时间")
    assert rows[1][1] == pytest.approx(1234.5) and ws["B2"].number_format == "#,##0.00"
    assert rows[1][3] == dt.datetime(2026, 12, 1, 0, 0)  # Shanghai wall-clock time
    assert rows[2][2] is None and rows[2][3] is None
    assert ws.freeze_panes == "A2"
    assert ws.column_dimensions["A"].width >= 12  # five CJK characters are ten columns wide
