"""The weekly dispatch sweep (周调度) and the task cockpit (任务驾驶舱) in the Prefect UI."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from tasks import loop as steps
from tasks.notify import deliver_pending_notifications

COCKPIT_ROWS = 500  # the UI table shows the most urgent items first


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
    if result.deviation is not None and len(result.deviation):
        md += [
            "",
            "## 偏差分析 Deviation analysis",
            "",
            "| issue | item | owner | colour | deviation | days late | why |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in result.deviation.head(50).itertuples():
            md.append(
                f"| {r.issue} | {r.item} | {r.owner} | {r.colour} | {r.deviation:+d} pts | {r.days_late} | "
                f"{r.reason} |"
            )
    create_markdown_artifact(
        "\n".join(md), key="dispatch-summary", description="Dispatch sweep summary"
    )
    table = result.cockpit.head(COCKPIT_ROWS).copy()
    table["due"] = table["due"].astype(str)
    create_table_artifact(
        table.to_dict(orient="records"),
        key="task-cockpit",
        description="任务驾驶舱 Task cockpit: open action items, most urgent first",
    )


@flow(name="issue-board", log_prints=True)
def issue_board_flow() -> list[dict]:
    """Which issues wait for which step, and since when."""
    board = steps.issue_board()
    rows = board.assign(
        stage_entered_at=board["stage_entered_at"].astype(str),
        stage_due_at=board["stage_due_at"].astype(str),
    ).to_dict(orient="records")
    if flow_run.get_id():
        create_table_artifact(
            rows, key="issue-board", description="Open issues and the step each waits for"
        )
    return rows
