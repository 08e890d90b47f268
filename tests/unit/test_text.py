"""Operators' text (taskforce/text.py): one visible line for titles, no invisible controls."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from taskforce.loop.forms import ActionItemInput, PlanForm, ReportIssueForm
from taskforce.text import check_one_line, check_text


@pytest.mark.parametrize(
    ("title", "says"),
    [
        ("\u200b\u200b\u200b", "must not be empty (it has no visible character)"),
        ("\u3000\ufeff\u2060\u200d", "must not be empty"),
        ("\u202e机密文件\u202c", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("\u2067隔离\u2069", "U+2067 (RIGHT-TO-LEFT ISOLATE)"),
        ("与\x00空字符", "must not contain NUL"),
        ("响\x07铃", "U+0007"),
        ("标题\n换行", "must be one line"),
        ("标题\t制表", "must be one line"),
        ("标题\u2028分行", "must be one line"),
    ],
)
def test_a_title_no_reader_can_see_as_typed_is_refused_by_field(title, says):
    with pytest.raises(ValidationError) as refused:
        ReportIssueForm(title=title, reporting_unit="tax")
    (error,) = refused.value.errors()
    assert error["loc"] == ("title",) and says in error["msg"]


def test_a_description_may_hold_lines_and_tabs_but_not_controls():
    form = ReportIssueForm(title="窗口排队", reporting_unit="tax", description="一\n二\t三\r\n")
    assert form.description.startswith("一\n二\t三")
    with pytest.raises(ValidationError, match=r"U\+202E"):
        ReportIssueForm(title="窗口排队", reporting_unit="tax", description="\u202e倒序")


def test_a_nested_title_is_refused_by_its_path():
    item = {
        "title": "\u200b\u200b",
        "owner_unit": "tax",
        "due_date": "2026-12-31",
        "deliverable": "清单",
    }
    with pytest.raises(ValidationError) as refused:
        PlanForm(
            goal="一次办结",
            sub_projects=[{"title": "清单", "action_items": [item]}],
        )
    assert ("sub_projects", 0, "action_items", 0, "title") in [
        e["loc"] for e in refused.value.errors()
    ]
    assert ActionItemInput(
        title="梳理 清单", owner_unit="tax", due_date="2026-12-31", deliverable="清单"
    )


@given(st.text(st.characters(categories=["L", "N", "P", "S"]), min_size=1, max_size=50))
def test_any_visible_line_is_taken_as_it_is(line):
    assert check_one_line(line) == line
    assert check_text(line + "\n" + line) == line + "\n" + line


def test_copied_text_keeps_what_a_reader_sees_and_drops_the_rest():
    from taskforce.text import as_one_line, as_text

    assert as_one_line("城东\n泵站\t故障\u202e  告警\x00") == "城东 泵站 故障 告警"
    assert as_text("第一行\n第二行\t\u202e\x07") == "第一行\n第二行\t"
    assert check_one_line(as_one_line("a\r\nb")) == "a b"


def _forms():
    from flows.warnings import HandleWarningForm, RaiseWarningForm
    from taskforce.budget.forms import DisbursementForm, ProposeLineForm, ReviewForm
    from taskforce.emergency.forms import ReserveDrawForm
    from taskforce.registers.forms import MilestoneForm, RiskForm

    return [
        (RaiseWarningForm, "title", "\u200b\u200b", "must not be empty"),
        (HandleWarningForm, "note", "已处置\x00", "must not contain NUL"),
        (RiskForm, "title", "\u202e风险", "U+202E"),
        (RiskForm, "plan", "预案\x1b[31m", "U+001B"),
        (MilestoneForm, "title", "里程碑\n第二行", "must be one line"),
        (ProposeLineForm, "purpose", "用途\u2066", "U+2066"),
        (ReviewForm, "comment", "意见\x00", "must not contain NUL"),
        (DisbursementForm, "voucher", "V-1\t2", "must be one line"),
        (ReserveDrawForm, "payee", "收款\x00方", "must not contain NUL"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_the_other_operator_forms_refuse_what_no_reader_sees(case):
    """A re-trial: warnings, registers, budget and reserve-draw forms took NUL, overrides and
    zero-width titles that the loop's forms refuse."""
    model, field, value, says = _forms()[case]
    with pytest.raises(ValidationError) as refused:
        model.model_validate({field: value})
    mine = [e for e in refused.value.errors() if e["loc"] == (field,)]
    assert mine and says in mine[0]["msg"], refused.value.errors()


def test_the_dropped_characters_are_the_controls_but_tab_and_line_breaks_and_the_bidi_ones():
    # `as_text` matches one character class rather than asking unicodedata per character:
    # the class must be exactly what `check_text` refuses (NUL aside, which it names).
    from taskforce.text import _BIDI_CONTROLS, _DROPPED, _control

    for code in range(0x110000):
        ch = chr(code)
        assert bool(_DROPPED.match(ch)) == (_control(ch) or ch in _BIDI_CONTROLS), hex(code)


_MIXED = st.text(
    st.one_of(
        st.characters(),
        st.sampled_from("\t\n\r \x85\u2028\u2029\u202e\u2066\x07\x1c\x7f\x9f\u3000\u200b"),
    ),
    max_size=40,
)


@given(_MIXED)
def test_copied_text_is_cleaned_character_by_character(value):
    from taskforce.text import as_one_line, as_text

    kept = "".join(ch for ch in value if check_text_accepts(ch))
    assert as_text(value) == kept
    line = "".join(" " if ch in "\t\n\r\u2028\u2029" else ch for ch in kept)
    while "  " in line:
        line = line.replace("  ", " ")
    assert as_one_line(value) == line.strip()
    if as_one_line(value).strip() and "\x00" not in value:
        check_text(as_one_line(value))


def check_text_accepts(ch: str) -> bool:
    try:
        check_text(ch)
    except ValueError:
        return False
    return True
