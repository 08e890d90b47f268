"""The `taskforce` command: set-up, summaries and checks for operators."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from taskforce.db import database_url, get_engine, unit_of_work
from taskforce.money import format_yuan, to_fen
from taskforce.policy import ConfigError, config_dir, load_org, load_policy
from taskforce.reviews.cli import app as review_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
trail_app = typer.Typer(help="The decision trail (决策留痕).", no_args_is_help=True)
app.add_typer(trail_app, name="trail")
app.add_typer(review_app, name="review")
console = Console()


def _redacted_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url()).render_as_string(hide_password=True)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from taskforce.migrate import upgrade

    upgrade(get_engine())
    console.print(f"[green]schema up to date[/] at {_redacted_url()}")


@app.command("config-check")
def config_check() -> None:
    """Validate config/taskforce.yaml and config/org.yaml."""
    load_policy()
    load_org()
    console.print(f"[green]config OK[/] ({config_dir()})")


@app.command()
def init() -> None:
    """Migrate, load the organisation from config/org.yaml, and print a summary."""
    from taskforce.migrate import upgrade
    from taskforce.org.service import sync_organisation

    policy, org = load_policy(), load_org()
    upgrade(get_engine())
    with unit_of_work() as session:
        counts = sync_organisation(session, org)
    console.print(f"[green]database ready[/] at {_redacted_url()}; loaded {counts}")
    _print_summary(policy)


@app.command()
def demo() -> None:
    """The main job on the embedded defaults (until the closed loop lands: init and summary)."""
    init()


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


@trail_app.command("verify")
def trail_verify() -> None:
    """Walk the hash chain and report the first broken link."""
    from taskforce.trail import verify

    with unit_of_work() as session:
        result = verify(session)
    if result.ok:
        console.print(f"[green]trail intact[/]: {result.entries} entries verified")
    else:
        console.print(
            f"[red]trail broken[/] at entry {result.first_break.entry_id}: {result.first_break.reason}"
        )
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
