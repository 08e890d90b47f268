"""The budget-audit flow on a real Prefect server: findings in the database, reports on
disk, markdown and table artifacts in the UI; a re-run adds no findings."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

import pytest
from prefect.artifacts import Artifact
from sqlalchemy import func, select

from taskforce.budget.models import AuditFinding
from tests.budget.conftest import csv_text
from tests.run_logs import run_records


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


@pytest.mark.slow
@pytest.mark.prefect
def test_ledger_import_flow_shows_the_rows_to_check_in_the_ui(prefect_server, books, tmp_path):
    from flows.budget import ledger_import

    books.set_year("100000000.00")
    books.line("A-1", "100.00")
    day = books.ctx.today().isoformat()
    export = tmp_path / "export.csv"
    export.write_text(csv_text(f"V1,{day},A-1,,1,ACME,,", f"V2,{day},,,1,ACME,,"), "utf-8")

    result = ledger_import(path=str(export), actor="C1")
    assert result["imported"] == 2 and result["errors"] == []
    assert [(n["row"], n["field"]) for n in result["to_check"]] == [(3, "line")]
    table = Artifact.get("budget-ledger-import-checks")
    assert table is not None and "no budget line" in str(table.data)


@pytest.mark.prefect
def test_the_budget_flows_refuse_an_actor_the_office_does_not_know(prefect_server, books, tmp_path):
    """The flows' actor ("your member code") was written on the trail unchecked."""
    from flows.budget import ledger_entry, ledger_import, set_fiscal_year
    from taskforce.budget.forms import DisbursementForm, SetFiscalYearForm
    from taskforce.budget.models import FiscalYear, LedgerEntry
    from taskforce.errors import NotFound
    from taskforce.trail.models import TrailEntry

    day = books.ctx.today()
    export = tmp_path / "export.csv"
    export.write_text(csv_text(f"V1,{day.isoformat()},,,1,ACME,,"), "utf-8")
    year = SetFiscalYearForm(year=2026, total=Decimal("100000000.00"), decided_by="L1")
    payment = DisbursementForm(
        line_code="A-1", entry_date=day, amount=Decimal("1.00"), voucher="V2"
    )
    for call in (
        lambda: set_fiscal_year(form=year, actor="root"),
        lambda: ledger_import(path=str(export), actor="root"),
        lambda: ledger_entry(form=payment, actor="root"),
    ):
        with pytest.raises(NotFound, match="actor: no active member 'root'"):
            call()
    assert books.scalar(select(func.count(TrailEntry.id))) == 0
    assert books.scalar(select(func.count()).select_from(FiscalYear)) == 0
    assert books.scalar(select(func.count(LedgerEntry.id))) == 0
    # A member sets it; the run's log says what was set (a re-trial: Prefect's lines alone).
    with run_records() as records:
        set_fiscal_year(form=year, actor="E1")
    said = [r.getMessage() for r in records]
    assert any(
        line.startswith("fiscal year 2026: total 10,000万元, emergency reserve ") for line in said
    ), said


def _paused_run(name: str, deadline: float):
    """Busy-poll the server (no sleeping) until the named run is paused for input."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
            )
            if runs and runs[0].state and runs[0].state.is_paused():
                return runs[0]
    raise AssertionError(f"{name} never paused")


def _resume(name: str, run_input: dict, deadline: float) -> None:
    from prefect.flow_runs import resume_flow_run

    while time.monotonic() < deadline:
        run = _paused_run(name, deadline)
        try:
            resume_flow_run(run.id, run_input=run_input)
            return
        except RuntimeError:
            continue  # the run is paused but has not saved its input form yet
    raise AssertionError(f"could not resume {name}")


@pytest.mark.slow
@pytest.mark.prefect
def test_line_approval_flow_takes_reviews_from_the_ui(prefect_server, books):
    from flows.budget import line_approval
    from taskforce.budget.forms import ProposeLineForm
    from taskforce.budget.models import BudgetLine, BudgetReview, LineStatus

    books.set_year("100000000.00")
    issue = books.issue()
    name = f"approval-{uuid.uuid4().hex[:8]}"
    form = ProposeLineForm(
        code="F-1",
        fiscal_year=2026,
        issue_number=issue,
        purpose="servers",
        output_target="two racks",
        benefit_target="data shared in 1 day",
        amount=Decimal("5000000.00"),
    )
    outcome: dict = {}

    def run() -> None:
        outcome["result"] = line_approval.with_options(flow_run_name=name)(
            form=form, actor="W3", poll_seconds=1
        )

    with run_records() as records:
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 120
        # Out of order first: refused with its rule, and the flow asks again.
        for reviewer in ("V1", "C1", "V1", "E1"):
            _resume(name, {"reviewer": reviewer, "approved": True, "comment": ""}, deadline)
        thread.join(timeout=120)
    assert outcome["result"]["status"] == "approved"
    # Each review is said in the log, the last with the outcome (a re-trial: the run ended
    # with "Finished in state Completed()" alone).
    said = [r.getMessage() for r in records]
    assert "compliance review by C1: approved; line F-1 is now in_review" in said, said
    assert "executive review by E1: approved; line F-1 is now approved" in said, said
    assert (
        books.scalar(select(BudgetLine.status).where(BudgetLine.code == "F-1"))
        == LineStatus.approved
    )
    stages = [s.value for s in books.scalars(select(BudgetReview.stage).order_by(BudgetReview.id))]
    assert stages == ["compliance", "evaluator", "executive"]


@pytest.mark.prefect
def test_a_reserve_draw_says_in_its_log_what_it_charged_to_which_emergency(prefect_server, books):
    """An operator trial: a successful draw's log held only Prefect's first and last lines,
    and the form may name the emergency by its first characters."""
    from flows.budget import reserve_draw
    from taskforce.budget.forms import ReserveDrawForm
    from taskforce.emergency.models import Emergency
    from tests.budget.conftest import add_emergency

    books.set_year("1000000.00")
    emergency = add_emergency(books)
    public_id = books.scalar(select(Emergency.public_id).where(Emergency.id == emergency))
    form = ReserveDrawForm(
        fiscal_year=2026,
        emergency=public_id[:8].upper(),
        entry_date=books.ctx.today(),
        amount=Decimal("50000.00"),
        payee="Pumps Ltd",
        description="pumps for the flooded hall",
        voucher="R-9",
        approver="E1",
    )
    with run_records() as records:
        result = reserve_draw(form=form, actor="E1")
    said = [r.getMessage() for r in records]
    assert result["emergency_id"] == public_id
    assert (
        f"drew CNY 50,000.00 from the reserve for emergency {public_id}: ledger entry "
        f"{result['entry_id']} (voucher:R-9); reserve left CNY 50,000.00" in said
    ), said


@pytest.mark.prefect
def test_the_performance_audit_says_what_it_found_in_its_log(prefect_server, books, tmp_path,
                                                             monkeypatch):  # fmt: skip
    """An operator trial: `budget-performance-audit` logged nothing of its own."""
    from flows.budget import performance_audit

    monkeypatch.setenv("TASKFORCE_REPORTS_DIR", str(tmp_path))
    books.set_year("100000000.00")
    books.line("A-1", "100.00")
    with run_records() as records:
        result = performance_audit(half="2026-H1")
    said = [r.getMessage() for r in records]
    assert result["summary"]["lines"] == 1
    assert any(
        line.startswith("2026-H1: 1 budget lines, CNY 100.00 allocated, CNY 0.00 spent to date")
        for line in said
    ), said
