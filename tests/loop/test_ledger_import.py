import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from taskforce.context import Context
from taskforce.db import session_factory
from taskforce.errors import DomainError
from taskforce.loop.ledger_import import import_ledger
from taskforce.loop.models import Issue
from taskforce.trail import verify

ROWS = [
    {
        "编号": "TZ-001",
        "标题": "企业开办材料重复提交",
        "上报单位": "market-reg",
        "相关单位": "tax;commerce",
        "密级": "internal",
        "预估经费": "120000",
    },
    {
        "编号": "TZ-002",
        "标题": "",
        "上报单位": "tax",
        "相关单位": "",
        "密级": "internal",
        "预估经费": "",
    },
    {
        "编号": "TZ-003",
        "标题": "审批环节过多",
        "上报单位": "nowhere",
        "相关单位": "",
        "密级": "internal",
        "预估经费": "",
    },
    {
        "编号": "TZ-004",
        "标题": "数据接口未开放",
        "上报单位": "data-bureau",
        "相关单位": "",
        "密级": "top-secret",
        "预估经费": "",
    },
    {
        "编号": "TZ-005",
        "标题": "融资担保难",
        "上报单位": "finance",
        "相关单位": "",
        "密级": "secret",
        "预估经费": "1.234",
    },
    {
        "编号": "TZ-006",
        "标题": "融资担保难",
        "上报单位": "finance",
        "相关单位": "",
        "密级": "secret",
        "预估经费": "50000",
    },
]


def _write(tmp_path, kind):
    frame = pd.DataFrame(ROWS)
    path = tmp_path / f"ledger.{kind}"
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_excel(path, index=False)
    return path


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_import_reports_row_errors_and_imports_valid_rows_once(
    engine, policy, clock, tmp_path, kind
):
    ctx = Context(policy=policy, clock=clock)
    factory = session_factory(engine)
    path = _write(tmp_path, kind)
    result = import_ledger(factory, ctx, path, actor="import")
    assert result.rows == 6
    assert len(result.imported) == 2  # TZ-001 and TZ-006
    errors = {(e.row, e.field) for e in result.errors}
    assert (3, "title") in errors  # empty title, spreadsheet row 3
    assert (4, "reporting_unit") in errors  # unknown unit
    assert (5, "classification") in errors
    assert (6, "estimated_budget") in errors  # more than two decimals
    again = import_ledger(factory, ctx, path, actor="import")
    assert again.imported == [] and again.already_imported == 2
    with factory() as s:
        assert s.scalar(select(func.count(Issue.id))) == 2
        assert verify(s).ok


def test_unknown_column_refused_before_anything_is_written(engine, policy, clock, tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame([{"标题": "x y", "上报单位": "tax", "负责人": "张三"}]).to_csv(path, index=False)
    with pytest.raises(DomainError, match="unknown columns"):
        import_ledger(
            session_factory(engine), Context(policy=policy, clock=clock), path, actor="import"
        )
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count(Issue.id))) == 0


@settings(max_examples=500)
@given(
    a=st.text(alphabet="ab问题材料审批", min_size=1, max_size=40),
    b=st.text(alphabet="ab问题材料审批", min_size=1, max_size=40),
    threshold=st.floats(0.5, 1.0),
)
def test_length_prefilter_never_drops_a_similar_title(a, b, threshold):
    import difflib

    from taskforce.loop.report import title_length_bounds

    if difflib.SequenceMatcher(None, a, b).ratio() >= threshold:
        low, high = title_length_bounds(len(a), threshold)
        assert low <= len(b) <= high


def test_missing_file_is_a_clear_error(engine, policy, clock, tmp_path):
    with pytest.raises(
        DomainError, match=r"path: no file .* \(allowed: an existing \.csv or \.xlsx file\)"
    ):
        import_ledger(
            session_factory(engine),
            Context(policy=policy, clock=clock),
            tmp_path / "nope.csv",
            actor="import",
        )
