"""The budget-audit flow on a real Prefect server: findings in the database, reports on
disk, markdown and table artifacts in the UI; a re-run adds no findings."""

from __future__ import annotations

import pytest
from prefect.artifacts import Artifact
from sqlalchemy import func, select

from taskforce.budget.models import AuditFinding
from tests.budget.conftest import csv_text


@pytest.mark.slow
@pytest.mark.prefect
def test_budget_audit_flow(prefect_server, books, tmp_path, monkeypatch):
    from flows.budget import budget_audit

    monkeypatch.setenv("TASKFORCE_REPORTS_DIR", str(tmp_path))
    books.set_year("100000000.00")
    books.line("A-1", "100.00")
    books.import_csv(csv_text("V1,2026-03-10,A-1,,100.01,ACME,,", "V2,2026-03-10,,,1,ACME,,"))

    result = budget_audit(week="2026-W11")
    assert result["summary"]["open"] == 2 and len(result["new"]) == 2
    assert {p.rsplit(".", 1)[-1] for p in result["reports"].values()} == {"html", "md", "xlsx"}
    assert (tmp_path / "budget" / "budget-audit-2026-W11.xlsx").exists()
    markdown = Artifact.get("budget-audit-2026-w11")
    assert markdown is not None and "overspend" in markdown.data
    table = Artifact.get("budget-audit-2026-w11-findings")
    assert table is not None and "unapproved_spending" in str(table.data)

    again = budget_audit(week="2026-W11")
    assert again["new"] == []
    assert books.scalar(select(func.count(AuditFinding.id))) == 2
