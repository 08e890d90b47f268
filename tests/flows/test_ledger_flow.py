"""The `import-issue-ledger` deployment's flow, as a real Prefect flow run."""

from __future__ import annotations

import re

from prefect.client.orchestration import get_client
from sqlalchemy import func, select

from flows.ledger import import_issue_ledger_flow, import_markdown
from taskforce.db import unit_of_work
from taskforce.loop.ledger_import import ImportResult, RowError
from taskforce.loop.models import Issue


def test_the_ledger_flow_says_which_rows_it_linked_and_which_it_refused(flow_db, tmp_path):
    """Its result and artifact name the rows linked as duplicates and the issue each joined
    (a review: the flow gave only a count, where `taskforce import-issues` names them)."""
    ledger = tmp_path / "ledger.csv"
    ledger.write_text(
        "标题,问题描述,上报单位,预估经费\n"
        '窗口排队时间长,东区,tax,"1,000.00"\n'
        "证照办理跑多次,北区,tax,1e7\n"
        "窗口排队时间长,西区,tax,\n",
        encoding="utf-8",
    )
    summary = import_issue_ledger_flow(str(ledger), operator="E1")
    assert summary["rows"] == 3 and summary["imported"] == 1 and summary["invalid_rows"] == 1, (
        summary
    )
    assert summary["duplicates_linked"] == 1, summary
    assert len(summary["linked_rows"]) == 1
    assert re.fullmatch(r"row 4 → TF-\d{4}-00001", summary["linked_rows"][0])
    # Why row 3 was refused, in the result the run page shows (a re-trial: only a count).
    assert summary["refused"] == [
        "row 3, 预估经费: '1e7' is not an amount of money (allowed: yuan with at most "
        "2 decimals, e.g. 86000000.00 or 86,000,000.00)"
    ]
    with unit_of_work() as s:
        assert s.scalar(select(func.count(Issue.id))) == 1
        assert s.scalar(select(Issue.estimated_budget_fen)) == 100_000
    with get_client(sync_client=True) as client:
        artifact = next(a for a in client.read_latest_artifacts() if a.key == "ledger-import")
    # Each linked and each refused row once, in its table, by the ledger's own column name.
    assert re.search(r"^\| 4 \| TF-\d{4}-00001 \|$", artifact.data, re.M), artifact.data
    assert artifact.data.count("'1e7'") == 1, artifact.data
    assert "| 3 | 预估经费 | '1e7' is not an amount of money" in artifact.data


def test_a_refused_value_with_a_bar_or_a_line_break_stays_in_its_table_cell():
    result = ImportResult(
        rows=1, errors=[RowError(2, "category", "'a|b\nc' is too long", column="类别")]
    )
    table_rows = [line for line in import_markdown(result).splitlines() if line.startswith("| 2 ")]
    assert table_rows == ["| 2 | 类别 | 'a\\|b c' is too long |"]
