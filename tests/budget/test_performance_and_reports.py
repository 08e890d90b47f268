"""The semi-annual performance audit and the reports of both audits."""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from taskforce.budget.models import BudgetLine
from taskforce.budget.performance import ASSESSMENTS, _basis_points, run_performance_audit
from taskforce.budget.report import (
    performance_table,
    write_audit_reports,
    write_performance_reports,
)
from taskforce.loop.models import Evaluation, Issue, Outcome
from taskforce.policy.schema import Classification
from tests.budget.conftest import csv_text


def _performance(books, half):
    with books.tx() as s:
        return run_performance_audit(s, books.ctx, half)


def test_input_against_output_per_line(books, tmp_path):
    books.set_year("100000000.00")
    books.line("A-1", "1000.00")
    books.line("A-2", "500.00")
    books.propose("P-1", "9000.00")  # proposed, not approved: listed, not budgeted
    books.import_csv(
        csv_text(
            "V1,2026-03-10,A-1,,400.00,,,",
            "V2,2026-07-01,A-1,,200.00,,,",  # second half: not in H1
            "V3,2026-03-10,A-2,,500.01,,,",
        )
    )
    with books.tx() as s:
        issue_id = s.scalar(select(BudgetLine.issue_id).where(BudgetLine.code == "A-1"))
        s.add(
            Evaluation(
                issue_id=issue_id,
                round=1,
                outcome=Outcome.solved,
                satisfaction=92,
                lessons="",
                evaluated_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
            )
        )
    h1 = _performance(books, "2026-H1").lines.set_index("code")
    assert h1.loc["A-1", "spent_in_half_fen"] == 40_000
    assert h1.loc["A-1", "execution_bp"] == 4_000  # 40.00 %
    assert (h1.loc["A-1", "outcome"], h1.loc["A-1", "satisfaction"]) == ("solved", 92)
    assert h1.loc["A-1", "assessment"] == "target met"
    assert h1.loc["A-1", "output_target"] == "system live in 12 districts"
    assert h1.loc["A-2", "assessment"] == "over budget"
    assert h1.loc["P-1", "status"] == "proposed"
    assert h1.loc["P-1", "assessment"] == "not approved"
    sheet = load_workbook(
        write_performance_reports(_performance(books, "2026-H1"), tmp_path)["xlsx"]
    )
    rows = list(sheet["lines"].iter_rows(values_only=True))
    by_code = {row[0]: row for row in rows[2:]}
    assert by_code["A-1"][rows[1].index("执行率（%） execution (%)")] == 40  # a percentage
    assert by_code["A-1"][rows[1].index("金额（元） amount (CNY)")] == 1000  # yuan, not fen
    summary = _performance(books, "2026-H1").summary
    assert summary["amount_fen"] == 150_000  # A-1 + A-2, not the proposed 9,000
    assert summary["execution_bp"] == 90_001 * 10_000 // 150_000  # 400.00 + 500.01 of 1,500
    books.clock.set(dt.datetime(2027, 1, 4, 1, tzinfo=dt.UTC))  # an audit of a half begun
    h2 = _performance(books, "2026-H2")
    assert h2.lines.set_index("code").loc["A-1", "spent_to_date_fen"] == 60_000
    assert h2.summary["spent_in_half_fen"] == 20_000


def test_reports_in_three_formats_withhold_secret_lines(books, tmp_path):
    books.set_year("100000000.00")
    books.line("A-1", "1000.00", schedule=[("2026-03-10", "500.00")])
    books.line("S-1", "1000.00", schedule=[("2026-03-10", "500.00")])
    with books.tx() as s:
        s.scalar(
            select(BudgetLine).where(BudgetLine.code == "S-1")
        ).classification = Classification.secret
    audit = books.audit("2026-W11")
    assert set(audit.findings["classification"]) == {"internal", "secret"}
    paths = write_audit_reports(audit, tmp_path)
    html = paths["html_zh-CN"].read_text("utf-8")
    # The 说明 column in Chinese; the English report keeps the English text.
    assert "拨付进度滞后" in html and "A-1：截至本周末计划拨付 500.00 元，实际拨付 0.00 元" in html
    assert "CNY" not in html
    assert "A-1: 0.00 CNY disbursed" in paths["html_en"].read_text("utf-8")
    assert "S-1：" not in html and "S-1: 0.00 CNY" not in html and "密级高于本报告" in html
    # Owners, subjects and statuses in the reader's words, not as codes.
    assert "预算行 A-1" in html and "budget_line:" not in html
    assert "已批准" in html and "<td>approved</td>" not in html
    owners = {o for o in audit.findings["owner"]}
    assert owners and not any(f"<td>{o}</td>" in html for o in owners), owners
    md = paths["md"].read_text("utf-8")
    assert "behind_schedule" in md and "S-1: 0.00" not in md
    assert "Weekly budget compliance audit" in paths["html_en"].read_text("utf-8")
    book = load_workbook(paths["xlsx"])
    assert book.sheetnames == ["summary", "findings", "lines"]
    # The summary in yuan, as the HTML shows it (fen read as yuan: a hundredfold error).
    summary = {row[0]: row[1:] for row in book["summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["budget_cny"] == ("年度预算（元）", audit.summary["budget_fen"] / 100)
    assert summary["spent_cny"][1] == audit.summary["spent_fen"] / 100
    assert not any(item.endswith("_fen") for item in summary), summary
    # Headers a meeting reads, in both languages, under a row that says the sheet's audience
    # (an operator trial: `finding_key`, `execution_bp`, and no clearance stated).
    assert book["findings"]["A1"].value.startswith("阅读范围：内部；密级更高的内容不予显示。")
    header = [c.value for c in book["findings"][2]]
    assert "金额（元） amount (CNY)" in header and "说明（中文）" in header
    assert not any(h.endswith(("_fen", "_key", "_bp")) for h in header), header
    line_header = [c.value for c in book["lines"][2]]
    assert "已支出（元） spent (CNY)" in line_header, line_header
    assert not any("_" in h for h in line_header), line_header  # every one in words
    cells = {str(c.value) for row in book["findings"].iter_rows() for c in row}
    assert any(c.startswith("A-1：截至本周末") for c in cells)
    assert not any(c.startswith(("S-1:", "S-1：")) for c in cells), cells  # withheld in both
    cleared = write_audit_reports(audit, tmp_path / "secret", clearance=Classification.secret)
    assert "S-1: 0.00 CNY" in cleared["md"].read_text("utf-8")
    # Each copy says whom it is for (an operator trial: neither HTML nor XLSX said).
    assert "阅读范围: 内部 · 密级更高的内容不予显示" in html
    assert "Audience 阅读范围: secret" in cleared["md"].read_text("utf-8")
    assert "阅读范围: 秘密" in cleared["html_zh-CN"].read_text("utf-8")

    perf = write_performance_reports(_performance(books, "2026-H1"), tmp_path)
    assert "system live in 12 districts" in perf["md"].read_text("utf-8")
    assert "产出目标" in perf["html_zh-CN"].read_text("utf-8")
    assert "Audience: internal · content classified above it is withheld" in (
        perf["html_en"].read_text("utf-8")
    )
    perf_book = load_workbook(perf["xlsx"])
    assert perf_book.sheetnames == ["summary", "lines"]
    lines = list(perf_book["lines"].iter_rows(values_only=True))
    assert lines[0][0].startswith("阅读范围：内部") and "执行率（%） execution (%)" in lines[1]
    execution = lines[1].index("执行率（%） execution (%)")
    assert {row[execution] for row in lines[2:]} == {0}  # no spending yet
    perf_summary = {r[0]: r[2] for r in perf_book["summary"].iter_rows(min_row=2, values_only=True)}
    assert "amount_cny" in perf_summary and "execution_percent" in perf_summary, perf_summary


def _evaluate(books, code: str, outcome: Outcome, satisfaction: int) -> None:
    with books.tx() as s:
        issue_id = s.scalar(select(BudgetLine.issue_id).where(BudgetLine.code == code))
        s.add(
            Evaluation(
                issue_id=issue_id,
                round=1,
                outcome=outcome,
                satisfaction=satisfaction,
                lessons="",
                evaluated_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
            )
        )


def test_solved_meets_the_target_only_at_the_satisfaction_target(books):
    """An operator trial: "target met" at satisfaction 65 against kpi_targets.satisfaction
    (90, "不低于": 90 itself meets it)."""
    target = books.ctx.policy.kpi_targets.satisfaction
    books.set_year("100000000.00")
    books.line("AT", "1000.00")
    books.line("BELOW", "1000.00")
    books.line("PARTLY", "1000.00")
    _evaluate(books, "AT", Outcome.solved, target)
    _evaluate(books, "BELOW", Outcome.solved, target - 1)
    _evaluate(books, "PARTLY", Outcome.partly, 100)
    lines = _performance(books, "2026-H1").lines.set_index("code")
    assert lines.loc["AT", "assessment"] == "target met"
    assert lines.loc["BELOW", "assessment"] == "solved, satisfaction below target"
    assert lines.loc["PARTLY", "assessment"] == "target not met (partly)"
    assert set(lines["assessment"]) <= set(ASSESSMENTS)


def test_a_half_is_measured_on_the_lines_approved_by_its_end(books):
    """An operator trial: 2026-H1 audited in November measured H1's spending against every
    line approved by November (4.23 %), where the semi-annual review said 11.0 %."""
    books.set_year("100000000.00")
    # Proposed, reviewed and approved 15 minutes on (Books.line): approved at 23:59 on
    # 30 June, the half's last minute, and at 00:01 on 1 July, Shanghai time.
    books.clock.set(dt.datetime(2026, 6, 30, 15, 44, tzinfo=dt.UTC))
    books.line("BY-END", "1000.00")
    books.clock.set(dt.datetime(2026, 6, 30, 15, 46, tzinfo=dt.UTC))
    books.line("SINCE", "9000.00")
    with books.tx() as s:
        approved = dict(s.execute(select(BudgetLine.code, BudgetLine.approved_at)).all())
    assert approved["BY-END"] == dt.datetime(2026, 6, 30, 15, 59, tzinfo=dt.UTC)
    assert approved["SINCE"] == dt.datetime(2026, 6, 30, 16, 1, tzinfo=dt.UTC)
    books.import_csv(csv_text("V1,2026-06-10,BY-END,,400.00,,,"))
    result = _performance(books, "2026-H1")
    assert result.summary["amount_fen"] == 100_000  # BY-END only
    assert result.summary["execution_bp"] == 4_000  # 400 of 1,000, not of 10,000
    lines = result.lines.set_index("code")
    assert lines.loc["BY-END", "approved_by_end"] and not lines.loc["SINCE", "approved_by_end"]
    # Listed, and said to be outside the half (a re-trial: it read "not started").
    assert lines.loc["SINCE", "assessment"] == "approved after the period"
    assert lines.loc["BY-END", "assessment"] == "in progress"
    assert not result.summary["in_progress"]  # audited on 1 July: the half has ended


def test_performance_reports_in_chinese_say_a_running_half_and_withhold_a_secret_issue(
    books, tmp_path
):
    """An operator trial: an internal line funding a secret issue showed the issue's title to
    internal readers; the Chinese page read "solved (81.0) target met" and "- (nan)"; a half
    still running read as the whole half."""
    books.set_year("100000000.00")
    books.line("SECRET-ISSUE", "1000.00")
    books.line("PLAIN", "1000.00")
    _evaluate(books, "PLAIN", Outcome.solved, 95)
    with books.tx() as s:
        line = s.scalar(select(BudgetLine).where(BudgetLine.code == "SECRET-ISSUE"))
        issue = s.get(Issue, line.issue_id)
        issue.classification = Classification.secret
        secret_title, number = issue.title, issue.number
    result = _performance(books, "2026-H1")  # on 9 March: H1 is running
    assert result.summary["in_progress"] and result.summary["as_of"] == "2026-03-09"
    paths = write_performance_reports(result, tmp_path)
    zh = paths["html_zh-CN"].read_text("utf-8")
    texts = {name: path.read_text("utf-8") for name, path in paths.items() if name != "xlsx"}
    cells = {str(c.value) for row in load_workbook(paths["xlsx"])["lines"].iter_rows() for c in row}
    table = {str(v) for row in performance_table(result) for v in row.values()}
    for where, text in [*texts.items(), ("xlsx", " ".join(cells)), ("table", " ".join(table))]:
        assert secret_title not in text, where
    assert number in zh  # the issue's number stays: the line is readable
    assert "已解决 (95)" in zh and "达到目标" in zh and "未启动" in zh
    sheet = list(load_workbook(paths["xlsx"])["lines"].iter_rows(values_only=True))
    values = {v for row in sheet[2:] for v in row if isinstance(v, str)}
    assert {"已解决 solved", "达到目标 target met", "未启动 not started"} <= values, values
    assert "当前状态 status now" in sheet[1] and "问题当前环节 issue stage (now)" in sheet[1]
    assert "target met" not in zh and "solved" not in zh and "nan" not in zh
    assert "本半年尚未结束" in zh and "2026-03-09" in zh
    assert "has not ended" in texts["html_en"] and "has not ended" in texts["md"]
    cleared = write_performance_reports(result, tmp_path / "s", clearance=Classification.secret)
    assert secret_title in cleared["html_zh-CN"].read_text("utf-8")


@pytest.mark.parametrize(
    ("part", "whole", "basis_points"),
    [(51_815, 100_000, 5_182), (51_814, 100_000, 5_181), (1, 3, 3_333), (2, 3, 6_667), (5, 0, 0)],
)
def test_execution_is_rounded_half_up_as_the_reviews_round(part, whole, basis_points):
    """A re-trial: 13,732,000 of 26,500,000 (51.8188… %) read 51.81 %, the review 51.8 %."""
    assert _basis_points(part, whole) == basis_points
