"""The `taskforce` command: set-up, summaries and checks for operators."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import ArgumentError, DBAPIError, NoResultFound

from taskforce.budget.cli import app as budget_app
from taskforce.context import Context
from taskforce.db import DATABASE_URL_ENV, database_url, get_engine, unit_of_work
from taskforce.emergency.cli import app as emergency_app
from taskforce.gateway.cli import app as gateway_app
from taskforce.money import format_yuan, to_fen
from taskforce.notify.cli import app as notify_app
from taskforce.org.service import missing_organisation_hint
from taskforce.policy import (
    ConfigError,
    check_policy_against_org,
    config_dir,
    load_org,
    load_policy,
)
from taskforce.reviews.cli import app as review_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
trail_app = typer.Typer(help="The decision trail (决策留痕).", no_args_is_help=True)
app.add_typer(trail_app, name="trail")
deployments_app = typer.Typer(
    help="Prefect deployments (flows/deployments.py).", no_args_is_help=True
)
app.add_typer(deployments_app, name="deployments")
app.add_typer(notify_app, name="notify")
app.add_typer(budget_app, name="budget")
app.add_typer(gateway_app, name="gateway")
app.add_typer(emergency_app, name="emergency")
app.add_typer(review_app, name="review")
console = Console()


def _redacted_url() -> str:
    """The database URL in use, password hidden (it may come from the environment)."""
    from sqlalchemy.engine import make_url

    url = database_url()
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: show the scheme only, never what may be a secret
        return url.split(":", 1)[0] + ":…"


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from taskforce.migrate import upgrade

    upgrade(get_engine())
    console.print(f"[green]schema up to date[/] at {_redacted_url()}")


@app.command("config-check")
def config_check() -> None:
    """Validate config/taskforce.yaml, config/org.yaml and config/apprise.yml (secrets from the environment)."""
    from taskforce.notify.channels import load_channels

    policy = load_policy()
    check_policy_against_org(policy, load_org())
    channels = load_channels(overflow=policy.notifications.overflow)
    console.print(
        f"[green]config OK[/] ({config_dir()}; {len(channels.channels)} notification channels)"
    )
    for warning in calendar_warnings(Context.default(policy=policy)):
        console.print(f"[yellow]warning[/]: {warning}", soft_wrap=True)  # one line to grep


def calendar_warnings(ctx: Context) -> list[str]:
    """This year's and next year's holidays, if unknown: deadlines reach into next year
    weeks ahead, and without its holidays they count them as working days (an operator
    trial: 1 January 2027 counted; chinese-calendar 1.11.0 knows years up to 2026)."""
    this_year = ctx.today().year
    return [
        f"no Chinese holiday data for {year}: its deadlines count Monday-Friday, holidays "
        "and make-up days (调休) ignored, and the decision trail records that; add the "
        "State Council's holidays to config/taskforce.yaml calendar.extra_holidays and "
        "extra_workdays (or upgrade chinese-calendar) once they are published"
        for year in (this_year, this_year + 1)
        if not ctx.calendar.has_data_for(year)
    ]


@app.command()
def init() -> None:
    """Migrate, load the organisation from config/org.yaml, and print a summary."""
    from taskforce.migrate import upgrade
    from taskforce.org.service import sync_organisation

    policy, org = load_policy(), load_org()
    upgrade(get_engine())
    with unit_of_work() as session:
        counts = sync_organisation(session, org)
    loaded = ", ".join(f"{n} {what}" for what, n in counts.items())
    console.print(f"[green]database ready[/] at {_redacted_url()}; loaded {loaded}")
    _print_summary(policy)


@app.command()
def demo(
    seed: int = typer.Option(7, help="Scenario seed: the same seed plays the same months."),
    weeks: int = typer.Option(26, min=1, max=104, help="Weeks of simulated time."),
    fresh: bool = typer.Option(True, help="Start from an empty default SQLite database."),
) -> None:
    """The main job: a realistic scenario driven through the real flows (SQLite, Prefect local mode)."""
    import asyncio
    import os

    from taskforce.db import DATABASE_URL_ENV, DEFAULT_SQLITE_PATH

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if fresh and not os.environ.get(DATABASE_URL_ENV):
        from taskforce.notify.local_outbox import outbox_path

        for suffix in ("", "-wal", "-shm"):
            DEFAULT_SQLITE_PATH.with_name(DEFAULT_SQLITE_PATH.name + suffix).unlink(missing_ok=True)
        outbox_path().unlink(missing_ok=True)
    init()
    from flows.demo import run_demo

    console.print(f"[bold]Simulating {weeks} weeks of the task force through the real flows…[/]")
    scenario = asyncio.run(run_demo(seed=seed, weeks=weeks))
    _demo_report(scenario)


def _demo_report(scenario) -> None:
    from sqlalchemy import func, select

    from taskforce.budget.models import BudgetLine, LedgerEntry, LineStatus
    from taskforce.context import Context
    from taskforce.emergency.models import EarlyWarning
    from taskforce.loop.colours import colour_sql
    from taskforce.loop.models import Colour, Issue, TaskLevel, TaskNode
    from taskforce.money import format_yuan
    from taskforce.notify.local_outbox import outbox_path
    from taskforce.notify.models import OutboxMessage
    from taskforce.trail import verify

    ctx = Context.default(scenario.clock)  # the colours on the scenario's last day
    with unit_of_work() as s:
        stages = dict(s.execute(select(Issue.stage, func.count()).group_by(Issue.stage)).all())
        colour = colour_sql(ctx.today(), ctx.policy.progress).label("colour")
        colours = {
            Colour(c): n
            for c, n in s.execute(
                select(colour, func.count())
                .where(TaskNode.level == TaskLevel.action_item, TaskNode.done.is_(False))
                .group_by(colour)
            ).all()
        }
        outbox = dict(
            s.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            ).all()
        )
        warnings = s.scalar(select(func.count(EarlyWarning.id)))
        lines = s.scalar(
            select(func.count(BudgetLine.id)).where(
                BudgetLine.status == LineStatus.approved, BudgetLine.is_reserve.is_(False)
            )
        )
        entries, spent = s.execute(
            select(func.count(LedgerEntry.id), func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
        ).one()
        check = verify(s)
    table = Table(title="Demo result", show_header=False)
    table.add_row("operator actions through flows", str(scenario.total_actions))
    table.add_row(
        "issues by stage", ", ".join(f"{k.value}: {v}" for k, v in sorted(stages.items()))
    )
    table.add_row(
        f"open action items on {ctx.today()}",
        ", ".join(f"{c.value}: {colours.get(c, 0)}" for c in Colour),
    )
    table.add_row("warnings raised", str(warnings))
    table.add_row(
        "budget 资金",
        f"{lines} approved lines, {entries} ledger entries, {format_yuan(spent, 'en')} spent",
    )
    table.add_row("notifications", ", ".join(f"{k.value}: {v}" for k, v in sorted(outbox.items())))
    table.add_row("local notification outbox", str(outbox_path()))
    table.add_row(
        "decision trail",
        f"intact, {check.entries} entries"
        if check.ok
        else f"BROKEN at {check.first_break.entry_id}",
    )
    table.add_row("database", _redacted_url())
    console.print(table)
    for review in scenario.reviews:
        console.print(
            f"[bold]{review['kind']} review {review['period']}[/] "
            f"({len(review['improvement_issues'])} improvement issues opened, "
            f"{len(review['linked_issues'])} missed targets linked to issues still open):"
        )
        from pathlib import Path

        for name, path in sorted(review["files"].items()):
            shown = Path(path).resolve()
            shown = shown.relative_to(Path.cwd()) if shown.is_relative_to(Path.cwd()) else shown
            console.print(f"  {name:<11} {shown}", overflow="ignore", crop=False)
    if not check.ok:
        raise typer.Exit(1)


@app.command()
def summary() -> None:
    """Print the organisation and the policy in force."""
    _print_summary(load_policy())


def _print_summary(policy) -> None:
    from taskforce.authority import tally_vote
    from taskforce.org.service import group_summaries, leadership_size

    org = load_org()
    with unit_of_work() as session:
        groups = group_summaries(session)
        leaders = leadership_size(session)
    table = Table(title=f"{org.name} — {org.name_en}")
    for col in ("group", "name", "kind", "members", "full-time", "on call"):
        table.add_column(col)
    for g in groups:
        table.add_row(g.code, g.name, g.kind, str(g.members), str(g.full_time), str(g.on_call))
    console.print(table)
    a, v, loop = policy.authority, policy.vote, policy.loop
    needed = tally_vote(0, 0, 0, leaders, v).required if leaders else 0
    rules = Table(title="Policy in force (config/taskforce.yaml)", show_header=False)
    rules.add_row(
        "executive group approves up to (以下, inclusive)",
        format_yuan(to_fen(a.executive_approval_max)),
    )
    rules.add_row(
        "leadership: cross-department allocation from (以上)",
        format_yuan(to_fen(a.leadership_cross_department_min)),
    )
    rules.add_row(
        "leadership vote passes with",
        f"≥ {v.pass_numerator}/{v.pass_denominator} of all {leaders} members = {needed} yes",
    )
    rules.add_row(
        "plan due within", f"{loop.plan_deadline_working_days} working days of the decision"
    )
    rules.add_row(
        "emergency reserve", f"{policy.budget.emergency_reserve_share:.0%} of the annual budget"
    )
    for level, lp in policy.emergency.levels.items():
        deadlines = (
            ", ".join(f"{k} {h} h" for k, h in lp.deadlines_hours.items()) or "tracked by executive"
        )
        rules.add_row(f"emergency level {level} {lp.name_zh}", f"{lp.leading_group}: {deadlines}")
    for colour in ("yellow", "orange", "red"):
        w = getattr(policy.warnings, colour)
        rules.add_row(
            f"{colour} warning {w.name_zh}", f"{w.handled_by} within {w.deadline_hours} h"
        )
    rules.add_row("timezone / locale", f"{policy.timezone} / {policy.locale}")
    console.print(rules)
    if not groups and (hint := missing_organisation_hint()):
        console.print(f"[yellow]{hint}[/]")


@app.command("import-issues")
def import_issues(path: str = typer.Argument(..., help="The ledger (台账), .csv or .xlsx")) -> None:
    """Import an existing issue ledger: valid rows land, invalid rows are listed by row and field."""
    from pathlib import Path

    from rich.progress import Progress

    from taskforce.context import Context
    from taskforce.db import session_factory
    from taskforce.loop.ledger_import import import_ledger

    # A bar on a terminal only, gone once done: piped, it left "importing ━━━" without a
    # line break on stdout, also before a refusal (a re-trial).
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        bar = progress.add_task("importing", total=None)
        result = import_ledger(
            session_factory(),
            Context.default(),
            Path(path),
            actor="cli",
            on_progress=lambda d, t: progress.update(bar, completed=d, total=t),
        )
    console.print(
        f"{result.rows} rows: [green]{len(result.imported)} imported[/], "
        f"{len(result.linked_duplicates)} linked as duplicates, {result.already_imported} already imported, "
        f"[red]{len({e.row for e in result.errors})} invalid[/]"
    )
    for row, issue_number in result.linked_rows:
        console.print(f"  row {row}: linked to {issue_number} as a duplicate report (no new issue)")
    for e in result.errors:
        console.print(f"  row {e.row}, {escape(e.where)}: {escape(e.message)}")
    if result.errors:
        if hint := missing_organisation_hint():
            console.print(f"hint: {hint}")
        raise typer.Exit(1)


@deployments_app.command("write")
def deployments_write() -> None:
    """Regenerate prefect.yaml from flows/deployments.py and config/taskforce.yaml."""
    from flows.deployments import write_prefect_yaml

    console.print(f"[green]wrote[/] {write_prefect_yaml()}")


@app.command()
def serve(
    poll_seconds: int = typer.Option(
        1, min=1, help="How often to look for new runs (emergencies!)."
    ),
) -> None:
    """Run every deployment in this process (a small office; no worker needed)."""
    from flows.deployments import serve_all

    serve_all(poll_seconds)


@trail_app.command("verify")
def trail_verify(
    full: bool = typer.Option(
        False,
        "--full",
        help="Walk every entry from the first, not only those appended since the last "
        "verified checkpoint (run it regularly, e.g. weekly).",
    ),
    workers: int = typer.Option(
        0,
        min=0,
        help="Processes that check id ranges in parallel on a long trail (0: one per core; "
        "1: walk it in this process).",
    ),
) -> None:
    """Walk the hash chain and report the first broken link; record a checkpoint when intact."""
    from taskforce.clock import SystemClock
    from taskforce.trail.checkpoint import verify_routine

    with unit_of_work() as session:
        result, since = verify_routine(
            session, at=SystemClock().now(), full=full, workers=workers or None
        )
    if since is None:
        scope = f"{result.entries} entries verified"
    else:
        earlier = f"1..{since.last_id} verified {since.verified_at:%Y-%m-%d %H:%M} UTC"
        scope = (
            f"entries {since.last_id + 1}..{result.entries} verified ({earlier}; --full walks all)"
            if result.entries > since.last_id
            else f"no entry since the last check ({earlier}; --full walks all)"
        )
    if result.ok:
        by = f" by {result.processes} processes" if result.processes > 1 else ""
        console.print(f"[green]trail intact[/]: {scope}{by}")
    else:
        console.print(
            f"[red]trail broken[/] at entry {result.first_break.entry_id}: {result.first_break.reason}"
        )
        raise typer.Exit(1)


def main() -> None:
    from taskforce.errors import DomainError

    try:
        app()
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        sys.exit(2)
    except DomainError as exc:  # bad input: say which field and what is allowed, no traceback
        # "refused:", as the budget and review commands say it: the input, not the system.
        print(f"refused: {exc}", file=sys.stderr)
        if hint := missing_organisation_hint():
            print(f"hint: {hint}", file=sys.stderr)
        sys.exit(2)
    except NoResultFound:  # a unit or member every database loaded by `init` has
        hint = missing_organisation_hint()
        if hint is None:
            raise
        print(f"error: {hint}", file=sys.stderr)
        sys.exit(2)
    except ArgumentError as exc:  # a URL SQLAlchemy cannot parse, or an unknown scheme
        print(f"error: {bad_database_url_message(exc)}", file=sys.stderr)
        sys.exit(2)
    except DBAPIError as exc:
        message = database_error_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def bad_database_url_message(exc: Exception) -> str:
    return (
        f"{DATABASE_URL_ENV} is not a database URL this system can open ({_redacted_url()}): "
        f"{str(exc).splitlines()[0]} (allowed: sqlite:////absolute/path.db, "
        "sqlite:///relative/path.db, postgresql://user:password@host:port/database)"
    )


def _no_tables(engine) -> bool:
    from sqlalchemy import inspect

    return not inspect(engine).get_table_names()


def database_error_message(exc: Exception) -> str | None:
    """What to tell the operator about a database error instead of a traceback, or None."""
    from taskforce.db import (
        SQLITE_BUSY_TIMEOUT_SECONDS,
        forget_created_sqlite,
        get_engine,
        is_database_locked,
    )
    from taskforce.migrate import schema_behind

    if is_database_locked(exc):
        # Checked first: `taskforce migrate` itself fails this way while a gateway or a
        # worker writes, and being told to run `taskforce migrate` would be no help.
        return (
            "the database is locked: another process (the gateway, a worker, another command) "
            f"held its write lock longer than the {SQLITE_BUSY_TIMEOUT_SECONDS} s this command "
            "waits. Stop that process or let it finish, then run the command again."
        )
    # Code newer than the database (a table or column a migration adds is missing): say so
    # and what to run. Checking needs a connection: if even that fails, the database cannot
    # be reached at all (a server down, a wrong host or port, a folder that does not exist).
    try:
        behind = schema_behind(get_engine())
    except DBAPIError as again:
        reason = str(getattr(again, "orig", again)).strip().splitlines()
        return (
            f"cannot reach the database at {_redacted_url()}: "
            f"{reason[0] if reason else type(again).__name__}. Check that its server runs and "
            f"that {DATABASE_URL_ENV} names it."
        )
    if behind is None:
        return None
    current, head = behind
    if (
        current is None
        and get_engine().url.get_backend_name() == "sqlite"
        and _no_tables(get_engine())
    ):
        # Opening an SQLite path creates the file: a mistyped path looks like a database
        # never migrated, and `taskforce migrate` would only make a second, empty one.
        # What this command created there is removed again.
        removed = forget_created_sqlite(get_engine())
        return (
            f"there is no taskforce database at {_redacted_url()}"
            + (" (nothing was left there)" if removed else ": it has no tables")
            + f". A mistyped {DATABASE_URL_ENV}? Fix the path, or run `taskforce init` to "
            "create one there."
        )
    return (
        f"the database is at schema revision {current or 'none'}, this code needs "
        f"{head}: run `taskforce migrate` first"
    )


if __name__ == "__main__":
    main()
