"""The weekly dispatch sweep (周调度) and the task cockpit (任务驾驶舱) in the Prefect UI."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from taskforce.clock import as_utc, last_day, local_minute
from taskforce.context import Context
from taskforce.reports.audience import withhold
from tasks import loop as steps
from tasks.notify import deliver_pending_notifications

COCKPIT_ROWS = 500  # the UI table shows the most urgent items first
_ITEM_TEXT = ("item", "reason")  # an action item's title and its latest progress note


@flow(name="dispatch-sweep", log_prints=True)
def dispatch_sweep_flow() -> dict:
    """Interview new red items, escalate long-red ones, warn about overdue stages once."""
    result = steps.fill_board(steps.run_sweep())
    summary = result.summary()
    deliver_pending_notifications(limit=1000)
    if flow_run.get_id():
        _artifacts(result, summary)
    print(f"dispatch sweep: {summary}")
    return summary


def _artifacts(result, summary: dict) -> None:
    c = summary["colours"]
    md = [
        "# 调度扫描 Dispatch sweep summary",
        "",
        "| 🟢 green | 🟡 yellow | 🔴 red | newly red (interviews) | escalated | overdue stages |",
        "|---|---|---|---|---|---|",
        f"| {c.get('green', 0)} | {c.get('yellow', 0)} | {c.get('red', 0)} | "
        f"{summary['newly_red']} | {summary['escalated']} | {summary['overdue_stages']} |",
        "",
    ]
    if result.overdue_stages:
        md += [
            "## Overdue stages 超期环节",
            "",
            "| issue | what | due | days late |",
            "|---|---|---|---|",
        ]
        md += [
            f"| {o['issue']} | {o['what']} | {o['due'][:10]} | {o['late_days']} |"
            for o in result.overdue_stages
        ]
    # Read in the Prefect UI at its clearance: a secret issue's items and notes are withheld.
    deviation = None if result.deviation is None else withhold(result.deviation, _ITEM_TEXT)
    if deviation is not None and len(deviation):
        md += [
            "",
            "## 偏差分析 Deviation analysis",
            "",
            "| issue | item | owner | colour | deviation | days late | why |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in deviation.head(50).itertuples():
            md.append(
                f"| {r.issue} | {r.item} | {r.owner} | {r.colour} | {r.deviation:+d} pts | {r.days_late} | "
                f"{r.reason} |"
            )
    create_markdown_artifact(
        "\n".join(md), key="dispatch-summary", description="Dispatch sweep summary"
    )
    table = withhold(result.cockpit.head(COCKPIT_ROWS), _ITEM_TEXT)
    table["due"] = table["due"].astype(str)
    create_table_artifact(
        table.to_dict(orient="records"),
        key="task-cockpit",
        description="任务驾驶舱 Task cockpit: open action items, most urgent first",
    )


@flow(name="issue-board", log_prints=True)
def issue_board_flow() -> list[dict]:
    """Which issues wait for which step, and since when (office time); a secret issue's
    title withheld, as everywhere in the Prefect UI (an operator trial)."""
    timezone = Context.default().policy.timezone
    board = withhold(steps.issue_board(), ("title",))
    # A stage's deadline is the end of a working day: shown as that day (due by 10 Nov),
    # not as the midnight it expires (11 Nov 00:00 read as a day late: an operator trial).
    rows = (
        board.assign(
            stage_entered_at=[_local(t, timezone) for t in board["stage_entered_at"]],
            due_by=[_last_day(t, timezone) for t in board["stage_due_at"]],
        )
        .drop(columns="stage_due_at")
        .to_dict(orient="records")
    )
    if flow_run.get_id():
        create_table_artifact(
            rows,
            key="issue-board",
            description=f"Open issues and the step each waits for (times: {timezone})",
        )
    return rows


def _local(instant, timezone: str) -> str:
    if instant is None or pd.isna(instant):
        return ""
    return local_minute(_utc(instant), timezone)


def _last_day(instant, timezone: str) -> str:
    if instant is None or pd.isna(instant):
        return ""
    return last_day(_utc(instant), timezone).isoformat()


def _utc(instant) -> dt.datetime:
    """A board cell (a pandas Timestamp, naive when SQLite stored it) as an aware instant."""
    return as_utc(pd.Timestamp(instant).to_pydatetime())
