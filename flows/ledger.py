"""Bulk import of an existing issue ledger (台账) for a task force moving onto the system."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run
from pydantic import Field

from flows.loop import Operator, OperatorParam
from taskforce.context import Context
from taskforce.db import session_factory
from taskforce.loop.ledger_import import ImportResult, error_report, import_ledger
from taskforce.reports.render import md_cell  # a ledger's value may hold | or a line break


@task(name="import-ledger-rows")
def import_rows(path: str, operator: str) -> ImportResult:
    progress_id = (
        create_progress_artifact(0.0, key="ledger-import-progress") if flow_run.get_id() else None
    )

    def on_progress(done: int, total: int) -> None:
        if progress_id and (done == total or done % 25 == 0):
            update_progress_artifact(progress_id, 100.0 * done / total)

    return import_ledger(
        session_factory(), Context.default(), Path(path), actor=operator, on_progress=on_progress
    )


REFUSED_SHOWN = 20


def import_markdown(result: ImportResult) -> str:
    """The artifact: the counts, then every linked row and every refused row once, each in
    its table (the result holds the first refusals only)."""
    md = [
        "# 台账导入 Ledger import",
        "",
        "| | |",
        "|---|---:|",
        f"| 行数 rows | {result.rows} |",
        f"| 已导入 imported | {len(result.imported)} |",
        f"| 作为重复上报关联 linked as duplicate reports | {len(result.linked_rows)} |",
        f"| 此前已导入 already imported | {result.already_imported} |",
        f"| 未导入 invalid rows | {len({e.row for e in result.errors})} |",
    ]
    if result.linked_rows:
        md += ["", "## 作为重复上报关联的行 Rows linked as duplicate reports", ""]
        md += ["| 行 row | 并入问题 joined issue |", "|---:|---|"]
        md += [f"| {row} | {number} |" for row, number in result.linked_rows]
    errors = error_report(result)
    if len(errors):
        md += ["", "## 未导入的行 Refused rows", ""]
        md += ["| 行 row | 字段 field | 问题 problem |", "|---:|---|---|"]
        md += [
            f"| {r.row} | {md_cell(r.field)} | {md_cell(r.message)} |" for r in errors.itertuples()
        ]
    return "\n".join(md)


@flow(name="import-issue-ledger", flow_run_name="import ledger {path}", log_prints=True)
def import_issue_ledger_flow(
    path: str = Field(
        ..., title="Ledger file 台账文件", description="Path of a .csv or .xlsx on the worker."
    ),
    operator: OperatorParam = Operator,
) -> dict:
    """Validate every row, import the valid ones, report the invalid ones by row and field."""
    result = import_rows(path, operator)
    summary = {
        "rows": result.rows,
        "imported": len(result.imported),
        "duplicates_linked": len(result.linked_duplicates),
        # Which rows, and to what (an operator looks them up in the ledger).
        "linked_rows": [f"row {row} → {number}" for row, number in result.linked_rows],
        "already_imported": result.already_imported,
        "invalid_rows": len({e.row for e in result.errors}),
        # Why, for the first rows (the artifact lists every one): the result is what the run
        # page and `prefect flow-run logs` show.
        "refused": [f"row {e.row}, {e.where}: {e.message}" for e in result.errors[:REFUSED_SHOWN]],
    }
    if flow_run.get_id():
        create_markdown_artifact(
            import_markdown(result), key="ledger-import", description="Ledger import result"
        )
    print(summary)
    return summary
