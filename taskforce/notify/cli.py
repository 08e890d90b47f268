"""`taskforce notify …`: delivery status, a channel check, and one delivery run."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

app = typer.Typer(help="Notifications: outbox delivery through Apprise.", no_args_is_help=True)
console = Console()


@app.command("status")
def status(
    problems: bool = typer.Option(
        False, "--problems", help="also list failing and dead rows with their last error"
    ),
) -> None:
    """Pending, delivered, failing and dead-lettered notifications per audience."""
    from taskforce.db import unit_of_work
    from taskforce.notify import status as notify_status

    with unit_of_work() as session:
        rows = notify_status.delivery_status(session)
        trouble = notify_status.problems(session) if problems else []
    table = Table(title="Notification delivery per audience")
    for column in ("audience", "pending", "delivered", "failing", "dead"):
        table.add_column(column, justify="left" if column == "audience" else "right")
    for row in rows:
        table.add_row(
            row.audience,
            str(row.pending),
            str(row.delivered),
            f"[yellow]{row.failing}[/]" if row.failing else "0",
            f"[red]{row.dead}[/]" if row.dead else "0",
        )
    if not rows:
        table.add_row("(no notifications yet)", "", "", "", "")
    console.print(table)
    if problems and not trouble:
        console.print("no failing or dead-lettered notification 无发送失败的通知")
    elif problems:
        listing = Table(title="Failing and dead-lettered notifications")
        for column in (
            "id",
            "kind",
            "audience",
            "status",
            "attempts",
            "next attempt",
            "last error",
        ):
            listing.add_column(column)
        for p in trouble:
            listing.add_row(
                str(p.message_id),
                p.event_kind,
                p.audience,
                p.status,
                str(p.attempts),
                "—" if p.status == "dead" else str(p.next_attempt_at),
                Text(p.last_error or ""),  # a server's words: text, not rich markup
            )
        console.print(listing)


@app.command("check")
def check() -> None:
    """Load config/apprise.yml (secrets from the environment) and list audiences without a channel."""
    from taskforce.notify.channels import coverage_problems, load_channels
    from taskforce.notify.readers import audience_clearances, readers_in_org
    from taskforce.notify.routing import known_audiences
    from taskforce.policy import load_org, load_policy

    policy = load_policy()
    channels = load_channels(overflow=policy.notifications.overflow)
    for channel in channels.channels:
        console.print(
            f"channel [bold]{channel.name}[/] ({channel.clearance.value}): "
            f"{len(channel.audiences)} audiences"
        )
    org = load_org()
    # Not an error: the readers' clearance wins over the channel's (notify/readers.py), and
    # the operator should know where content will arrive as a reference only.
    readers = audience_clearances(readers_in_org(org))
    for channel in channels.channels:
        for audience in sorted(channel.audiences):
            if audience.lower() not in readers:
                console.print(
                    f"note: {audience} (channel {channel.name}) reaches no member of "
                    "config/org.yaml: nobody is known to be cleared behind it, so only its "
                    "public records arrive in full, the others as references"
                )
                continue
            cleared = readers.of(audience)
            if cleared.rank < channel.clearance.rank:
                console.print(
                    f"note: channel {channel.name} is cleared for {channel.clearance.value}, but "
                    f"{audience} reaches a member cleared for {cleared.value} (config/org.yaml): "
                    f"its records above {cleared.value} go to {audience} as references only"
                )
    missing = coverage_problems(channels, known_audiences(policy, org))
    if missing:
        console.print(f"[red]audiences without a channel[/]: {', '.join(missing)}")
        raise typer.Exit(1)
    console.print("[green]every audience has a channel[/]")


@app.command("deliver")
def deliver(limit: int = typer.Option(100, min=1, max=10000, help="rows to send at most")) -> None:
    """Send due notifications once, without Prefect (the flow does the same every minute)."""
    from taskforce.context import Context
    from taskforce.db import get_engine
    from taskforce.notify.delivery import deliver_pending

    report = deliver_pending(get_engine(), Context.default(), limit=limit)
    console.print_json(json.dumps(report.as_dict()))
