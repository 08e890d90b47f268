import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from taskforce.context import Context
from taskforce.db import session_factory
from taskforce.errors import DomainError
from taskforce.loop.ledger_import import import_ledger
from taskforce.loop.models import Issue, IssueUnit
from taskforce.org.models import Unit
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

    from taskforce.loop.duplicates import title_length_bounds

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


def test_a_gb18030_export_is_read_as_a_utf8_one(engine, policy, clock, tmp_path):
    """Excel on Chinese Windows saves CSV in GB18030; the import refused it as "not a readable
    CSV file" where the budget ledger's import read it."""
    ctx, factory = Context(policy=policy, clock=clock), session_factory(engine)
    path = tmp_path / "ledger.csv"
    pd.DataFrame(ROWS[:1]).to_csv(path, index=False, encoding="gb18030")
    assert "企业开办".encode("gb18030") in path.read_bytes()  # not UTF-8 text
    result = import_ledger(factory, ctx, path, actor="import")
    assert len(result.imported) == 1 and not result.errors
    with factory() as s:
        assert s.scalar(select(Issue.title)) == "企业开办材料重复提交"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\xff\xfe\x00bad", r"ledger\.csv is neither UTF-8 nor GB18030 text"),
        (
            "标题,上报单位\n甲,tax\n乙,tax,多,余\n".encode(),
            r"ledger\.csv is not a readable CSV file \(Error tokenizing data\. C error: "
            r"Expected 2 fields in line 3, saw 4\) \(allowed:",
        ),
    ],
)
def test_an_unreadable_csv_is_refused_on_one_line(engine, policy, clock, tmp_path, content, says):
    path = tmp_path / "ledger.csv"
    path.write_bytes(content)
    with pytest.raises(DomainError, match=says) as refused:
        import_ledger(
            session_factory(engine), Context(policy=policy, clock=clock), path, actor="import"
        )
    assert "\n" not in str(refused.value)
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count(Issue.id))) == 0


def test_a_title_cell_over_lines_is_imported_on_one_line(engine, policy, clock, tmp_path):
    """A cell written with Alt+Enter holds a line break; a title is one line (text.py)."""
    ctx, factory = Context(policy=policy, clock=clock), session_factory(engine)
    path = tmp_path / "ledger.csv"
    rows = [{**ROWS[0], "标题": "企业开办\n材料重复提交", "问题描述": "第一行\n第二行\x0b"}]
    pd.DataFrame(rows).to_csv(path, index=False)
    result = import_ledger(factory, ctx, path, actor="import")
    assert len(result.imported) == 1 and not result.errors
    with factory() as s:
        issue = s.scalars(select(Issue)).one()
        assert (issue.title, issue.description) == ("企业开办 材料重复提交", "第一行\n第二行")


def _seed_open_issues(session) -> None:
    """Open and closed issues of three lead units, with titles the benchmark's ledger repeats."""
    from benchmarks.dataset import PLACES, PROBLEMS, TOPICS
    from tests.reviews import factories as f

    at = f.utc(2026, 10, 1)
    for n, (place, topic) in enumerate(zip(PLACES * 3, TOPICS * 3, strict=False)):
        unit = ("finance", "tax", "commerce")[n % 3]
        problem = PROBLEMS[n % len(PROBLEMS)]
        closed = f.utc(2026, 10, 5) if n % 4 == 0 else None
        f.issue(session, reported_at=at, title=f"{place}{topic}{problem}", unit=unit,
                closed_at=closed)  # fmt: skip


def _outcomes(session, numbers: list[str]) -> list[tuple[str, str]]:
    titles = dict(session.execute(select(Issue.number, Issue.title)).all())
    return [(n, titles[n]) for n in numbers]


def test_an_import_links_the_same_duplicates_as_row_by_row_reports(engine, policy, clock, tmp_path):
    """The import reads each lead unit's open titles once (OpenTitles) and adds its own rows
    as it goes; it must link every row as report_issue alone (one read per row) does: to
    the same open issue, to an earlier row of the file, or to nothing."""
    from benchmarks.dataset import PLACES, PROBLEMS, TOPICS
    from taskforce.loop.forms import ReportIssueForm
    from taskforce.loop.report import report_issue

    ctx = Context(policy=policy, clock=clock)
    factory = session_factory(engine)
    with factory() as s, s.begin():
        _seed_open_issues(s)
    # Titles from a small vocabulary, some with a trailing mark: the file repeats the open
    # issues, itself, and issues of other units (not duplicates: another lead unit).
    rng = random.Random(3)
    titles = [
        rng.choice(PLACES[:3]) + rng.choice(TOPICS[:3]) + rng.choice(PROBLEMS[:2])
        + rng.choice(["", "。", "问题"])
        for _ in range(60)
    ]  # fmt: skip
    units = [rng.choice(["finance", "tax", "commerce"]) for _ in titles]
    frame = pd.DataFrame(
        {
            "编号": [f"EQ-{n:03d}" for n in range(len(titles))],  # each row its own key
            "标题": titles,
            "上报单位": units,
            "问题描述": "历史台账导入",
        }
    )
    rows = frame.rename(columns={"标题": "title", "上报单位": "reporting_unit"})
    # The reference, then rolled back: each row in a savepoint, duplicates read from the
    # database row by row.
    expected = []
    with factory() as s, s.begin():
        for title, unit in zip(rows["title"], rows["reporting_unit"], strict=True):
            form = ReportIssueForm(title=title, reporting_unit=unit, description="历史台账导入")
            with s.begin_nested():
                done = report_issue(s, ctx, form, actor="ref")
            linked_title = s.scalar(select(Issue.title).where(Issue.id == done.issue_id))
            expected.append((done.duplicate, linked_title))
        s.rollback()
    assert sum(d for d, _ in expected) >= 5  # the file repeats itself and the open issues

    path = tmp_path / "ledger.csv"
    frame.to_csv(path, index=False)
    result = import_ledger(factory, ctx, path, actor="import")
    assert not result.errors
    with factory() as s:
        got = []
        imported, linked = iter(result.imported), iter(result.linked_duplicates)
        for duplicate, _ in expected:
            number = next(linked) if duplicate else next(imported)
            got.append((duplicate, _outcomes(s, [number])[0][1]))
    assert got == expected


def test_open_titles_keep_only_committed_issues_and_skip_closed_ones(engine, policy, clock):
    from taskforce.loop.duplicates import OpenTitles
    from taskforce.loop.models import Stage
    from taskforce.policy.schema import Classification
    from tests.reviews import factories as f

    ctx = Context(policy=policy, clock=clock)
    factory = session_factory(engine)
    with factory() as s, s.begin():
        first = f.issue(s, reported_at=f.utc(2026, 10, 1), title="东区企业开办材料重复提交",
                        unit="tax")  # fmt: skip
        unit_id = first.lead_unit_id
        first_id = first.id
    titles = OpenTitles()
    internal, secret = Classification.internal, Classification.secret
    with factory() as s:
        assert titles.find(s, ctx, unit_id, "东区企业开办材料重复提交。", internal).id == first_id
        # A staged issue whose block (its transaction) failed is never a duplicate target;
        # one whose block ended well is.
        with pytest.raises(RuntimeError), titles.row():
            titles.stage(unit_id, 10_000, "西区融资担保难", internal)
            raise RuntimeError("the commit failed")
        assert titles.find(s, ctx, unit_id, "西区融资担保难", internal) is None
        with titles.row():
            titles.stage(unit_id, first_id, "北区融资担保难", internal)
        assert titles.find(s, ctx, unit_id, "北区融资担保难", internal).id == first_id
        # A staged secret issue: a secret row's duplicate target, never an internal row's
        # (the secret list, read first here, gets the internal issues as well).
        assert titles.find(s, ctx, unit_id, "东区企业开办材料重复提交。", secret).id == first_id
        with titles.row():
            titles.stage(unit_id, first_id, "南区污水管网改造", secret)  # (an id that exists)
        assert titles.find(s, ctx, unit_id, "南区污水管网改造", secret).id == first_id
        assert titles.find(s, ctx, unit_id, "南区污水管网改造", internal) is None
    with factory() as s, s.begin():  # closed by someone else after the unit was read
        s.get(Issue, first_id).stage = Stage.closed
    with factory() as s:
        assert titles.find(s, ctx, unit_id, "东区企业开办材料重复提交。", internal) is None


def _import_csv(engine, policy, clock, tmp_path, rows: list[dict]):
    """The rows written as a CSV ledger and imported: (the session factory, the result)."""
    path = tmp_path / "ledger.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    factory = session_factory(engine)
    ctx = Context(policy=policy, clock=clock)
    return factory, import_ledger(factory, ctx, path, actor="import")


def test_units_and_classifications_may_be_written_as_the_office_writes_them(
    engine, policy, clock, tmp_path
):
    """A hand-kept ledger names units (商务局, Finance Bureau) and 密级 (内部) in words."""
    ledger = [
        {
            "标题": "外资企业登记慢",
            "上报单位": "商务局",
            "相关单位": "财政局，税务局",
            "密级": "内部",
        },
        {
            "标题": "融资担保门槛高",
            "上报单位": "FINANCE BUREAU",
            "相关单位": "",
            "密级": "机密",
        },
        {"标题": "园区用地审批慢", "上报单位": "商务厅", "相关单位": "", "密级": "内部"},
        {"标题": "招商引资政策不清", "上报单位": "commerce", "相关单位": "", "密级": "绝密"},
        {"标题": "人才公寓分配不透明", "上报单位": "commerce", "相关单位": "", "密级": "秘密"},
        # 、 is how a Chinese list is written (it was taken for one unit's name); ； too.
        {"标题": "出口退税周期长", "上报单位": "commerce", "相关单位": "财政局、税务局；住建局"},
    ]
    factory, result = _import_csv(engine, policy, clock, tmp_path, ledger)
    assert len(result.imported) == 4, result.errors
    with factory() as s:
        rows = s.execute(select(Issue.title, Issue.classification).order_by(Issue.id)).all()
        related = s.scalars(
            select(Unit.name)
            .join(IssueUnit, IssueUnit.unit_id == Unit.id)
            .join(Issue, Issue.id == IssueUnit.issue_id)
            .where(Issue.title == "出口退税周期长", IssueUnit.responsible.is_(False))
        ).all()
    assert [(t, c.value) for t, c in rows][:3] == [
        ("外资企业登记慢", "internal"),
        ("融资担保门槛高", "secret"),  # 机密: taken as the strictest level there is
        ("人才公寓分配不透明", "secret"),
    ]
    assert sorted(related) == sorted(["财政局", "税务局", "住建局"])
    errors = {e.row: e for e in result.errors}
    assert errors[4].field == "reporting_unit"
    assert "unknown unit '商务厅'" in errors[4].message and "commerce" in errors[4].message
    assert errors[5].field == "classification" and "'绝密'" in errors[5].message
    assert "公开 / 内部 / 秘密" in errors[5].message and "public" in errors[5].message


def test_a_row_with_an_unknown_unit_lists_its_other_problems_too(engine, policy, clock, tmp_path):
    """An operator's trial: a row naming an unknown unit reported only the unit, so the
    ledger was fixed and imported again once per problem. Every problem is listed at once,
    and nothing of the row is written."""
    ledger = [
        {
            "标题": "窗口排队时间长",
            "上报单位": "commerce",
            "首接单位": "moon",
            "相关单位": "财政局，火星局",
            "密级": "绝密",
            "预估经费": "-5",
        }
    ]
    factory, result = _import_csv(engine, policy, clock, tmp_path, ledger)
    assert result.imported == []
    problems = {e.field: e.message for e in result.errors}
    assert set(problems) == {
        "received_by",
        "related_units",
        "classification",
        "estimated_budget",
    }, problems
    assert {e.row for e in result.errors} == {2}
    assert "unknown unit 'moon'" in problems["received_by"]
    assert "unknown unit '火星局'" in problems["related_units"]
    assert "'绝密'" in problems["classification"]
    # Each named as the ledger's header names it (a trial: 预估经费 was reported as
    # estimated_budget, a name the spreadsheet does not have).
    columns = {e.field: e.where for e in result.errors}
    assert columns == {
        "received_by": "首接单位",
        "related_units": "相关单位",
        "classification": "密级",
        "estimated_budget": "预估经费",
    }, columns
    with factory() as s:
        assert s.scalar(select(func.count(Issue.id))) == 0


def test_a_ledger_with_english_headers_has_its_problems_named_by_them(
    engine, policy, clock, tmp_path
):
    ledger = [{"title": "窗口排队时间长", "reporting_unit": "commerce", "estimated_budget": "五万"}]
    _, result = _import_csv(engine, policy, clock, tmp_path, ledger)
    assert [(e.row, e.where) for e in result.errors] == [(2, "estimated_budget")]


def test_a_refused_title_is_not_repeated_and_long_values_are_cut(engine, policy, clock, tmp_path):
    """Import errors reach the Prefect UI and the terminal, whoever reads them: a refused
    title or description is not repeated (it may be a secret row's own words), and any other
    refused value is cut to 40 characters."""
    ledger = [
        {"标题": "秘" * 301, "上报单位": "commerce", "密级": "秘密"},
        {"标题": "窗口排队", "上报单位": "commerce", "类别": "x" * 100},
    ]
    _, result = _import_csv(engine, policy, clock, tmp_path, ledger)
    errors = {(e.row, e.field): e.message for e in result.errors}
    assert "秘秘" not in errors[(2, "title")] and "got" not in errors[(2, "title")]
    category = errors[(3, "category")]
    assert "x" * 40 + "…" in category and "x" * 41 not in category, category


def test_budget_amounts_may_be_written_as_a_spreadsheet_writes_them(
    engine, policy, clock, tmp_path
):
    """An operator's trial: 预估经费 `1,000.00` was refused as "not a valid decimal", saying
    neither why nor what is taken, where the budget commands and the budget ledger's import
    take thousands separators. Grouped thousands and a ¥ are taken; a slip is refused with
    what an amount looks like."""
    amounts = {
        "外资企业登记慢": "86,000,000.00",
        "融资担保门槛高": "¥120,000",
        "园区用地审批慢": "4999999.99",
        "招商引资政策不清": "1,0,0",  # not thousands: a slip
        "人才公寓分配不透明": "12,000.123",
        "出口退税周期长": "1e7",  # Decimal reads these; a ledger's 预估经费 they are not
        "窗口排队时间长": "+5",
        "证照办理跑多次": "1_000",
        "园区道路破损": "86，000",  # a full-width comma, as an IME types it
    }
    ledger = [
        {"标题": title, "上报单位": "commerce", "相关单位": "", "预估经费": amount}
        for title, amount in amounts.items()
    ]
    factory, result = _import_csv(engine, policy, clock, tmp_path, ledger)
    with factory() as s:
        budgets = dict(s.execute(select(Issue.title, Issue.estimated_budget_fen)).all())
    assert budgets == {
        "外资企业登记慢": 8_600_000_000,
        "融资担保门槛高": 12_000_000,
        "园区用地审批慢": 499_999_999,
        "园区道路破损": 8_600_000,
    }
    problems = {e.row: (e.field, e.message) for e in result.errors}
    assert set(problems) == {5, 6, 7, 8, 9}
    for field, message in problems.values():
        assert field == "estimated_budget"
        assert "allowed: yuan with at most 2 decimals, e.g. 86000000.00 or 86,000,000.00" in message
    assert "'1,0,0'" in problems[5][1] and "'12,000.123'" in problems[6][1]
    for row, typed in ((5, "1,0,0"), (7, "1e7"), (8, "+5"), (9, "1_000")):
        assert problems[row][1].startswith(f"{typed!r} is not an amount of money"), problems[row]


def test_a_rows_problem_is_said_without_pydantics_words(engine, policy, clock, tmp_path):
    """A trial: `row 2, 标题: Value error, must not be empty …`: pydantic's "Value error, "
    told the office nothing."""
    ledger = [{"标题": "\u200b\u200b", "上报单位": "commerce"}]
    _factory, result = _import_csv(engine, policy, clock, tmp_path, ledger)
    (error,) = result.errors
    assert error.message == "must not be empty (it has no visible character)", error.message
