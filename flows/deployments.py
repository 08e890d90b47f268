"""Every deployment, in one place: `prefect.yaml` is generated from this list
(`taskforce deployments write`), and `taskforce serve` runs them all in one
process for a small office. A test keeps prefect.yaml equal to this list.

Schedules come from config/taskforce.yaml (`reviews:`), in its timezone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from taskforce.policy import load_policy
from taskforce.policy.loader import PROJECT_ROOT

WORK_POOL = "taskforce"
EMERGENCY_POOL = "taskforce-emergency"  # its own pool and worker, polled every second
RESPONSE_QUEUE = "responses"  # the emergency-response runs' queue in EMERGENCY_POOL


@dataclass(frozen=True)
class Spec:
    name: str
    entrypoint: str  # path:function, relative to the project root
    description: str
    tags: tuple[str, ...] = ()
    schedule: str | None = None  # a key of config `reviews` (policy.reviews): its cron
    parameters: dict = field(default_factory=dict)
    concurrency: int | None = None
    # A key of config `emergency` (policy.emergency) giving the concurrency instead.
    concurrency_from: str | None = None
    pool: str = WORK_POOL
    queue: str | None = None  # a work queue of the pool (else the pool's default queue)


SPECS: list[Spec] = [
    Spec(
        "report-issue",
        "flows/loop.py:report_issue_flow",
        "问题上报 Report an issue to the executive group.",
        ("loop", "operator"),
    ),
    Spec(
        "coordinate-issue",
        "flows/loop.py:coordinate_flow",
        "协调会商 Record the coordination meeting.",
        ("loop", "operator"),
    ),
    Spec(
        "leadership-vote",
        "flows/loop.py:leadership_vote_flow",
        "议题预审-专家论证-集体表决 Record the vote.",
        ("loop", "operator"),
    ),
    Spec(
        "file-plan",
        "flows/loop.py:file_plan_flow",
        "方案制定 File the task tree.",
        ("loop", "operator"),
    ),
    Spec(
        "record-progress",
        "flows/loop.py:record_progress_flow",
        "执行反馈 Progress on an action item.",
        ("loop", "operator"),
    ),
    Spec(
        "evaluate-issue",
        "flows/loop.py:evaluate_flow",
        "效果评估 Evaluate the effect.",
        ("loop", "operator"),
    ),
    Spec(
        "issue-lifecycle",
        "flows/lifecycle.py:issue_lifecycle_flow",
        "Walk one issue round the loop, waiting for each step's form.",
        ("loop", "operator"),
    ),
    Spec(
        "import-issue-ledger",
        "flows/ledger.py:import_issue_ledger_flow",
        "台账导入 Import an issue ledger.",
        ("loop", "operator"),
    ),
    Spec(
        "issue-board",
        "flows/dispatch.py:issue_board_flow",
        "Which issues wait for which step.",
        ("loop",),
    ),
    Spec(
        "deliver-notifications",
        "flows/notifications.py:deliver_notifications",
        "Send due outbox rows through Apprise; retries, dead-letter, A/B backup pages.",
        ("notifications", "scheduled"),
        schedule="notification_delivery",
        concurrency=1,
    ),
    Spec(
        "dispatch-sweep",
        "flows/dispatch.py:dispatch_sweep_flow",
        "调度扫描 Dispatch sweep: red-item interviews and escalations, overdue stages, the task cockpit.",
        ("review", "scheduled"),
        schedule="dispatch_sweep",
        concurrency=1,
    ),
    # --- budget (flows/budget.py) ---
    Spec(
        "budget-audit",
        "flows/budget.py:budget_audit",
        "周合规检查 Weekly compliance audit of the budget ledger; any past week on demand.",
        ("budget", "scheduled"),
        schedule="weekly_budget_audit",
        concurrency=1,
    ),
    Spec(
        "budget-performance-audit",
        "flows/budget.py:performance_audit",
        "绩效审计 Semi-annual performance audit for the third-party evaluator.",
        ("budget", "scheduled"),
        schedule="semiannual_audit",
        concurrency=1,
    ),
    Spec(
        "budget-set-fiscal-year",
        "flows/budget.py:set_fiscal_year",
        "Set a fiscal year's budget and its emergency reserve.",
        ("budget", "operator"),
    ),
    Spec(
        "budget-line-approval",
        "flows/budget.py:line_approval",
        "Propose a zero-based budget line and take it through the three reviews.",
        ("budget", "operator"),
    ),
    Spec(
        "budget-adjustment-approval",
        "flows/budget.py:adjustment_approval",
        "Adjust a budget line through the approval procedure.",
        ("budget", "operator"),
    ),
    Spec(
        "budget-review",
        "flows/budget.py:review",
        "三审 Record one review of a line or adjustment.",
        ("budget", "operator"),
    ),
    Spec(
        "budget-ledger-entry",
        "flows/budget.py:ledger_entry",
        "Enter a disbursement.",
        ("budget", "operator"),
    ),
    Spec(
        "budget-ledger-import",
        "flows/budget.py:ledger_import",
        "Import a finance export (CSV/XLSX) into the ledger.",
        ("budget", "operator"),
    ),
    Spec(
        "budget-reserve-draw",
        "flows/budget.py:reserve_draw",
        "Draw on the emergency reserve for an emergency.",
        ("budget", "emergency"),
    ),
    # --- emergencies (flows/emergency.py, flows/warnings.py, flows/drill.py): their own pool, polled every second ---
    Spec(
        "emergency-response",
        "flows/emergency.py:emergency_response",
        "One run per emergency, started by the gateway (idempotency key = the emergency id).",
        ("emergency",),
        concurrency_from="response_runs_at_once",
        pool=EMERGENCY_POOL,
        # A queue of their own, limited as the deployment is (README "Work pools"): the
        # server then hands the worker no more response runs than may run, where a storm's
        # queued runs made the worker try and abort them over and over, and the sweep
        # and the forms of the pool's default queue started up to a minute late.
        queue=RESPONSE_QUEUE,
    ),
    Spec(
        "open-emergency",
        "flows/emergency.py:open_emergency",
        "开启应急事项 An operator opens an emergency from the UI form.",
        ("emergency", "operator"),
        pool=EMERGENCY_POOL,
    ),
    Spec(
        "acknowledge-emergency",
        "flows/emergency.py:acknowledge_emergency",
        "确认 Acknowledge a page; stops the escalation.",
        ("emergency", "operator"),
        pool=EMERGENCY_POOL,
    ),
    Spec(
        "resolve-emergency",
        "flows/emergency.py:resolve_emergency",
        "解除 The emergency is over; the sweep then opens its follow-up issue.",
        ("emergency", "operator"),
        pool=EMERGENCY_POOL,
    ),
    Spec(
        "record-emergency-deadline",
        "flows/emergency.py:record_emergency_deadline",
        "记录时限节点 Record a level deadline as met (e.g. command formed).",
        ("emergency", "operator"),
        pool=EMERGENCY_POOL,
    ),
    Spec(
        "dispatch-pending-emergencies",
        "flows/emergency.py:dispatch_pending_emergencies",
        "Dispatch what the gateway could not; escalate unacknowledged pages, missed deadlines and "
        "overdue warnings; close resolved emergencies with their follow-up issue.",
        ("emergency", "scheduled"),
        schedule="emergency_sweep",
        concurrency=1,
        pool=EMERGENCY_POOL,
    ),
    Spec(
        "raise-warning",
        "flows/warnings.py:raise_warning",
        "发布预警 Raise a yellow / orange / red warning.",
        ("warning", "operator"),
    ),
    Spec(
        "handle-warning",
        "flows/warnings.py:handle_warning",
        "处置预警 Mark a warning handled.",
        ("warning", "operator"),
    ),
    Spec(
        "quarterly-drill",
        "flows/drill.py:quarterly_drill",
        "季度演练 A drill emergency through the real path, and its report.",
        ("emergency", "drill", "scheduled"),
        schedule="quarterly_drill",
        concurrency=1,
        pool=EMERGENCY_POOL,
    ),
    # --- PDCA reviews (flows/reviews.py) and registers (flows/registers.py) ---
    Spec(
        "weekly-dispatch-report",
        "flows/reviews.py:weekly_dispatch_report",
        "周调度报告 Weekly dispatch report of the last ISO week (after the sweep).",
        ("review", "scheduled"),
        schedule="weekly_dispatch_report",
        concurrency=1,
    ),
    Spec(
        "monthly-review",
        "flows/reviews.py:monthly_review",
        "月度复盘 Monthly review; missed targets open improvement issues.",
        ("review", "scheduled"),
        schedule="monthly_review",
        concurrency=1,
    ),
    Spec(
        "quarterly-review",
        "flows/reviews.py:quarterly_review",
        "季度优化 Quarterly review and 运行白皮书.",
        ("review", "scheduled"),
        schedule="quarterly_review",
        concurrency=1,
    ),
    Spec(
        "semiannual-audit",
        "flows/reviews.py:semiannual_audit",
        "半年度 Performance and risk audit (5×5 risk matrix).",
        ("review", "scheduled"),
        schedule="semiannual_audit",
        concurrency=1,
    ),
    Spec(
        "upsert-risk",
        "flows/registers.py:upsert_risk_flow",
        "风险登记 Add or update a risk.",
        ("register", "operator"),
    ),
    Spec(
        "upsert-milestone",
        "flows/registers.py:upsert_milestone_flow",
        "里程碑 Add or update a milestone.",
        ("register", "operator"),
    ),
]


def resolve_cron(spec: Spec) -> str | None:
    if spec.schedule is None:
        return None
    return getattr(load_policy().reviews, spec.schedule)


def resolve_concurrency(spec: Spec) -> int | None:
    if spec.concurrency_from is None:
        return spec.concurrency
    return getattr(load_policy().emergency, spec.concurrency_from)


def prefect_yaml() -> dict:
    policy = load_policy()
    deployments = []
    for spec in SPECS:
        item: dict = {
            "name": spec.name,
            "entrypoint": spec.entrypoint,
            "description": spec.description,
            "tags": list(spec.tags),
            "parameters": spec.parameters,
            "work_pool": {"name": spec.pool}
            | ({"work_queue_name": spec.queue} if spec.queue else {}),
        }
        if limit := resolve_concurrency(spec):
            item["concurrency_limit"] = {"limit": limit, "collision_strategy": "ENQUEUE"}
        if cron := resolve_cron(spec):
            item["schedules"] = [{"cron": cron, "timezone": policy.timezone, "active": True}]
        deployments.append(item)
    return {
        "name": "taskforce",
        "prefect-version": "3.9.1",
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $TASKFORCE_HOME }}"
                }
            }
        ],
        "deployments": deployments,
    }


HEADER = """\
# Generated from flows/deployments.py by `taskforce deployments write` — edit that file, not this one.
# Schedules come from config/taskforce.yaml (reviews:), timezone included.
# Deploy: see README "Operator guide". TASKFORCE_HOME is the project folder on the worker.
"""


def render_prefect_yaml() -> str:
    return HEADER + yaml.safe_dump(prefect_yaml(), allow_unicode=True, sort_keys=False, width=120)


def write_prefect_yaml(path: Path = PROJECT_ROOT / "prefect.yaml") -> Path:
    path.write_text(render_prefect_yaml(), encoding="utf-8")
    return path


def runner_deployments():
    """Every deployment as a RunnerDeployment, for `serve` (no work pool needed)."""
    import importlib

    from prefect.schedules import Cron

    out = []
    policy = load_policy()
    for spec in SPECS:
        path, func = spec.entrypoint.split(":")
        module = path.removesuffix(".py").replace("/", ".")
        flow = getattr(importlib.import_module(module), func)
        cron = resolve_cron(spec)
        out.append(
            flow.to_deployment(
                spec.name,
                description=spec.description,
                tags=list(spec.tags),
                parameters=spec.parameters,
                concurrency_limit=resolve_concurrency(spec),
                # A Cron object: `to_deployment` takes no dict here (a dict crashed `taskforce
                # serve` at start-up: an operator trial).
                schedules=[Cron(cron, timezone=policy.timezone)] if cron else None,
            )
        )
    return out


def serve_all(poll_seconds: int = 1) -> None:
    """Run every deployment in this process. Stopping it does not pause the schedules."""
    from prefect import serve

    serve(*runner_deployments(), pause_on_shutdown=False, query_seconds=poll_seconds)
