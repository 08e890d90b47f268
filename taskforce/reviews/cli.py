"""`taskforce review …`: build a PDCA review without Prefect (the flows do the same steps)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from taskforce.errors import DomainError
from taskforce.org.service import missing_organisation_hint
from taskforce.policy.schema import Classification
from taskforce.reports.i18n import LOCALES
from taskforce.reviews.periods import ReviewKind

app = typer.Typer(
    help="PDCA reviews and their reports (周调度 / 月度复盘 / 季度 / 半年度).", no_args_is_help=True
)
console = Console(soft_wrap=True)  # a path printed whole, not cut at 80 columns
# A refusal is one line, however wide (off a terminal rich would wrap it at 80 columns).
errors = Console(stderr=True, soft_wrap=True)


def _refuse(exc: DomainError) -> None:
    """Refused input: the reason on stderr, exit 2 (as every command; README "Exit codes")."""
    errors.print(f"[red]refused[/]: {escape(str(exc))}")
    if hint := missing_organisation_hint():
        errors.print(f"hint: {hint}")
    raise typer.Exit(2) from exc


@app.command("run")
def run(
    kind: ReviewKind = typer.Argument(..., help="weekly / monthly / quarterly / semiannual"),
    period: str = typer.Option(
        None,
        help="e.g. 2026-W40, 2026-10, 2026-Q3, 2026-H1 (an ended period); default: the last complete one",
    ),
    audience: Classification = typer.Option(
        None, help="public / internal / secret (default: config review.default_audience)"
    ),
    locale: list[str] = typer.Option(list(LOCALES), help="zh-CN and/or en"),
) -> None:
    """Build (or rebuild) a review's reports and print their paths."""
    # Imported here: pandas and matplotlib are not needed by the CLI's other commands.
    from taskforce.context import Context
    from taskforce.db import get_engine
    from taskforce.reviews.service import run_review

    try:
        outcome = run_review(
            get_engine(), Context.default(), kind, period, audience=audience, locales=locale
        )
    except DomainError as exc:
        _refuse(exc)
    verb = "built" if outcome.created else "rebuilt"
    console.print(f"[green]{outcome.kind} review {outcome.period} {verb}[/] ({outcome.audience})")
    missed = [k["code"] for k in outcome.kpis if k["status"] == "missed"]
    console.print(f"missed targets: {', '.join(missed) or 'none'}")
    for action in outcome.actions:
        linked = ", linked: its KPI's earlier issue is still open" if action.duplicate else ""
        console.print(f"improvement issue {action.issue_number} ({action.code}{linked})")
    for path in outcome.files.values():
        print(path)


class Ledger(StrEnum):
    tasks = "tasks"  # 任务台账
    budget = "budget"  # 资金台账


@app.command("export-ledger")
def export_ledger(
    out: Path = typer.Option(..., "--out", help="the XLSX file to write (replaced if it exists)"),
    ledger: Ledger = typer.Option(Ledger.tasks, help="tasks (任务台账) or budget (资金台账)"),
    audience: Classification = typer.Option(
        None, help="public / internal / secret (default: config review.default_audience)"
    ),
    locale: str = typer.Option(None, help="zh-CN or en (default: config locale)"),
) -> None:
    """Export the WHOLE task or budget ledger (every record the audience may read).

    A review's workbook lists only its period's items; this is the full ledger, on demand.
    Past Excel's 1,048,576 rows a sheet continues on "<name> (2)".
    """
    from taskforce.context import Context
    from taskforce.db import get_engine
    from taskforce.reviews.ledgers import export_ledger as export

    try:
        rows = export(
            get_engine(), Context.default(), out, ledger=ledger.value, audience=audience,
            locale=locale,
        )  # fmt: skip
    except DomainError as exc:
        _refuse(exc)
    console.print(f"[green]{ledger.value} ledger exported[/]: {rows:,} rows")
    print(out)
