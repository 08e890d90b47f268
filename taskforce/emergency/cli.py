"""`taskforce emergency list`: the emergencies still open, as the executive office needs them.

The acknowledge-emergency and resolve-emergency forms ask for an emergency's id; a page
carries it, and this lists it beside what the office asks first: how urgent, who has been
paged, whether anyone has answered.
"""

from __future__ import annotations

from typing import NamedTuple

import typer
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from taskforce.clock import local_minute
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency.queries import OPEN_STATUSES, chain, group_for_step, listed
from taskforce.org.names import owner_names
from taskforce.policy.schema import Classification
from taskforce.reports.i18n import translator

app = typer.Typer(help="Emergencies (应急事件).", no_args_is_help=True)
console = Console()


@app.command("list")
def list_emergencies(
    all_statuses: bool = typer.Option(
        False, "--all", help="Resolved and closed ones too (newest first), not only open ones."
    ),
    limit: int = typer.Option(50, min=1, max=10_000, help="At most this many, newest first."),
    clearance: Classification = typer.Option(
        Classification.internal,
        help="Show titles up to this classification; a title above it is withheld "
        "(e.g. on a screen in a meeting: public).",
    ),
) -> None:
    """Open emergencies, newest first: id, level, status, who is paged, the answer."""
    ctx = Context.default()
    t = translator(ctx.policy.locale)
    names = owner_names(ctx.policy.locale)
    steps = chain(ctx)
    with unit_of_work() as session:
        rows = listed(session, None if all_statuses else OPEN_STATUSES, limit)
    if not rows:
        console.print(
            "no emergency 无应急事件" if all_statuses else "no open emergency 无未结应急事件"
        )
        return
    what = "应急事件 Emergencies" if all_statuses else "未结应急事件 Open emergencies"
    heading = f"{what} ({len(rows)}{'+' if len(rows) == limit else ''})"
    tz = ctx.policy.timezone
    lines = []
    for e in rows:
        group = group_for_step(e, steps[e.escalation_step]) or ""
        title = (
            e.title
            if Classification(e.classification).readable_by(clearance)
            else f"（{t('audience.' + Classification(e.classification).value)}，不显示）"
        )
        lines.append(
            _Line(
                e.public_id,
                f"{e.level.value}级{' 演练' if e.is_drill else ''}",
                # A drill (or one closed without its issue) is not "turned into an issue".
                t(f"emergency_status.{e.status.value}")
                if e.follow_up_issue_id is None
                else t("emergency_status.closed_with_issue"),
                local_minute(e.opened_at, tz),
                f"{names.get(group, group)} ×{e.pages_at_step}" if e.pages_at_step else "—",
                local_minute(e.acknowledged_at, tz) if e.acknowledged_at else "—",
                title,
            )
        )
    if console.width < WIDE_ENOUGH:
        _print_blocks(heading, lines)
    else:
        _print_table(heading, lines)


# Below this many columns a row of seven columns folds its title a character per line (an
# operator trial, 80 columns): each emergency is then a block of three lines.
WIDE_ENOUGH = 110


class _Line(NamedTuple):
    id: str
    level: str
    status: str
    opened: str
    paged: str
    acknowledged: str
    title: str


def _print_table(heading: str, lines: list[_Line]) -> None:
    table = Table(title=heading)
    # The id is what the forms ask for: never folded, so it can be copied whole.
    table.add_column("编号 id", no_wrap=True, min_width=36)
    for column in ("级别", "状态", "发生 opened", "呼叫 paged", "确认 ack", "事项 title"):
        table.add_column(column, overflow="fold")
    for line in lines:
        # Text, not markup: a monitoring system's title may hold "[…]" (rich's markup).
        table.add_row(*(Text(cell) for cell in line))
    console.print(table)


def _print_blocks(heading: str, lines: list[_Line]) -> None:
    console.print(heading, style="bold")
    for line in lines:
        console.print()
        console.print(f"{line.id}  {line.level}  {line.status}", markup=False, highlight=False)
        console.print(
            f"  发生 opened {line.opened} · 呼叫 paged {line.paged} · 确认 ack {line.acknowledged}",
            markup=False,
            highlight=False,
        )
        # Indented as a block, a long title's continuation lines too.
        console.print(Padding(Text(line.title), (0, 0, 0, 2), expand=False))
