"""`taskforce budget …`: the budget from the command line (the same services as the flows)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.errors import DomainError, problem_text
from taskforce.money import (
    TYPED_YUAN,
    TYPED_YUAN_ALLOWED,
    MoneyError,
    format_yuan,
    to_fen,
    to_yuan,
)
from taskforce.org.service import active_member, missing_organisation_hint

app = typer.Typer(help="Budget (预算): fiscal year, ledger import, audits.", no_args_is_help=True)
console = Console(soft_wrap=True)  # a path printed whole, not cut at 80 columns
# A refusal is one line, however wide (off a terminal rich would wrap it at 80 columns).
errors = Console(stderr=True, soft_wrap=True)
M = TypeVar("M", bound=BaseModel)
SHOWN_ROWS = 50  # rows of a notice table printed; the rest are counted


def _fail(exc: DomainError) -> None:
    """Refused input: the reason on stderr, exit 2 (as every command; README "Exit codes")."""
    errors.print(f"[red]refused[/]: {escape(str(exc))}")
    if hint := missing_organisation_hint():
        errors.print(f"hint: {hint}")
    raise typer.Exit(2)


def _require_organisation() -> None:
    """An audit of a database never given its organisation found nothing and passed (exit 0,
    "台账合规": an operator trial); it is refused as the reviews are."""
    if hint := missing_organisation_hint():
        errors.print(f"[red]refused[/]: {escape(hint)}")
        raise typer.Exit(2)


def _yuan(text: str, field: str) -> Decimal:
    """An amount typed on the command line (money.to_fen's rules), refused by its field."""
    try:
        fen = to_fen(text)
    except MoneyError as exc:
        raise DomainError(str(exc), field=field, allowed=TYPED_YUAN_ALLOWED) from None
    if not TYPED_YUAN.fullmatch(text.strip()):
        raise DomainError(
            f"{text!r} is not an amount as typed", field=field, allowed=TYPED_YUAN_ALLOWED
        )
    return to_yuan(fen)


def _form(model: type[M], **values) -> M:
    """The form, or a DomainError naming its first invalid field (no pydantic traceback)."""
    try:
        return model(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "form"
        given = error.get("input")
        shown = str(given) if isinstance(given, Decimal) else repr(given)  # not Decimal('0.00')
        raise DomainError(f"{problem_text(error)} (got {shown})", field=field) from None


# A negative total ("-5") is an argument to refuse with the form's reason, not an option.
@app.command("set-year", context_settings={"ignore_unknown_options": True})
def set_year(
    year: int = typer.Argument(..., help="Fiscal year, e.g. 2026."),
    total: str = typer.Argument(..., help="Annual budget in yuan, e.g. 86000000.00."),
    decided_by: str = typer.Option(..., help="The leadership member recording the decision."),
    actor: str = typer.Option(..., help="Your member code (config/org.yaml), e.g. E1."),
) -> None:
    """Set the annual budget (a leadership decision); its reserve share is held back as the
    reserve line."""
    from taskforce.budget.forms import SetFiscalYearForm
    from taskforce.budget.service import set_fiscal_year

    try:
        with unit_of_work() as session:
            active_member(session, actor, field="actor")
            result = set_fiscal_year(
                session,
                Context.default(),
                _form(
                    SetFiscalYearForm,
                    year=year,
                    total=_yuan(total, "total"),
                    decided_by=decided_by,
                ),
                actor=actor,
            )
    except DomainError as exc:
        _fail(exc)
    console.print(
        f"[green]{year}[/]: {format_yuan(result.total_fen, 'en')}, reserve {format_yuan(result.reserve_fen, 'en')} "
        f"({result.reserve_line_code})"
        + ("" if result.changed else " — unchanged: the year already had this total")
    )


@app.command("import")
def import_ledger(
    path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="A .csv or .xlsx finance export."
    ),
    actor: str = typer.Option(..., help="Your member code (config/org.yaml), e.g. E1."),
) -> None:
    """Import a finance export; bad rows are listed (row, field, what is allowed), good rows land."""
    from taskforce.budget.ledger import import_file

    try:
        with unit_of_work() as session:
            active_member(session, actor, field="actor")
            result = import_file(session, Context.default(), path, actor=actor)
    except DomainError as exc:
        _fail(exc)
    console.print(
        f"{result.rows} rows: [green]{result.imported} imported[/] ({format_yuan(result.imported_fen, 'en')}), "
        f"{result.already_imported} already on the ledger, {len(result.duplicates_in_file)} repeated"
    )
    if result.to_check:
        table = Table(title="Rows recorded, to check")
        for col in ("row", "field", "check"):
            table.add_column(col)
        for n in result.to_check[:SHOWN_ROWS]:
            table.add_row(*(escape(str(n[k])) for k in ("row", "field", "message")))
        console.print(table)
        if len(result.to_check) > SHOWN_ROWS:
            console.print(f"… and {len(result.to_check) - SHOWN_ROWS} more")
    if result.errors:
        table = Table(title="Rows not imported")
        for col in ("row", "field", "problem", "allowed"):
            table.add_column(col)
        for e in result.errors:
            table.add_row(*(escape(str(e[k])) for k in ("row", "field", "message", "allowed")))
        console.print(table)
        raise typer.Exit(1)


@app.command("audit")
def audit(
    week: str = typer.Option(
        None, help="ISO week, e.g. 2026-W48; default: the last complete week."
    ),
    out: Path = typer.Option(None, help="Directory for the HTML/Markdown/XLSX reports."),
) -> None:
    """Run the weekly compliance audit for a week and write its reports."""
    from taskforce.budget.audit import run_audit
    from taskforce.budget.periods import last_complete_week
    from taskforce.budget.report import output_dir, write_audit_reports

    _require_organisation()
    ctx = Context.default()
    # An empty --week is refused by the parser (an operator trial: it meant the default).
    label = last_complete_week(ctx.today()).label if week is None else week
    try:
        folder = output_dir(out)  # refused before the audit is recorded
        with unit_of_work() as session:
            result = run_audit(session, ctx, label, actor="cli")
    except DomainError as exc:
        _fail(exc)
    paths = write_audit_reports(result, folder)
    s = result.summary
    console.print(f"{label}: {s['open']} open findings ({s['new']} new, {s['resolved']} resolved)")
    for name, path in paths.items():
        console.print(f"  {name}: {path}")


@app.command("performance")
def performance(
    half: str = typer.Option(None, help="Half-year, e.g. 2026-H1; default: the last complete one."),
    out: Path = typer.Option(None, help="Directory for the reports."),
) -> None:
    """Run the semi-annual performance audit and write its reports."""
    from taskforce.budget.performance import run_performance_audit
    from taskforce.budget.periods import last_complete_half
    from taskforce.budget.report import output_dir, write_performance_reports

    _require_organisation()
    ctx = Context.default()
    label = last_complete_half(ctx.today()).label if half is None else half
    try:
        folder = output_dir(out)  # refused before the audit is recorded
        with unit_of_work() as session:
            result = run_performance_audit(session, ctx, label, actor="cli")
    except DomainError as exc:
        _fail(exc)
    paths = write_performance_reports(result, folder)
    s = result.summary
    # What the audit found, before where its files are (an operator trial: paths only).
    console.print(
        f"{label}: {s['lines']} lines; executed {s['execution_bp'] / 100:.2f} % "
        f"({format_yuan(s['spent_to_date_fen'], 'en')} of {format_yuan(s['amount_fen'], 'en')} "
        f"approved by {s['end']})"
        + (f"; not ended, as of {s['as_of']}" if s["in_progress"] else "")
    )
    for name, path in paths.items():
        console.print(f"  {name}: {path}")
