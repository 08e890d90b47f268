"""Budget processes (SPEC §4) as Prefect flows, each with a form in the UI.

* budget-set-fiscal-year        the annual budget and its emergency reserve
* budget-line-approval          propose a zero-based line, then wait for its reviews
                                (compliance → evaluator → executive/leadership) in the UI
* budget-adjustment-approval    the same for an adjustment of an approved line
* budget-review                 one review given outside a waiting approval run
* budget-ledger-entry           one disbursement by hand
* budget-ledger-import          a finance export (CSV/XLSX), row-validated
* budget-reserve-draw           draw on the emergency reserve for an open emergency
* budget-audit                  the weekly compliance audit (scheduled; any past week)
* budget-performance-audit      the semi-annual performance audit for the evaluator
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger, pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from flows.parameters import ACTOR, Actor, form_of
from taskforce.budget.forms import (
    HALF_PATTERN,
    WEEK_PATTERN,
    DisbursementForm,
    ProposeAdjustmentForm,
    ProposeLineForm,
    ReserveDrawForm,
    ReviewForm,
    SetFiscalYearForm,
    SubjectKind,
)
from taskforce.budget.periods import iso_week, last_complete_half, last_complete_week
from taskforce.context import Context
from taskforce.errors import DomainError
from taskforce.money import format_yuan, to_fen
from taskforce.text import Text
from tasks import budget as t

ReviewTimeoutHours = Annotated[int, Field(ge=1, le=24 * 90)]
PollSeconds = Annotated[int, Field(ge=1, le=300)]
POLL = Field(
    10,
    title="Check for a review every (s) 轮询间隔（秒）",
    description="How often the run looks for the next review 三审 (seconds); the default suits most.",
)
REVIEW_TIMEOUT = Field(
    168,
    title="Hours to wait for each review 每审等待时限（小时）",
    description="A review not given within this time fails the run; the line stays "
    "in review and can be reviewed later with budget-review.",
)


class ReviewInput(RunInput):
    """三审 — your review of this line or adjustment."""

    reviewer: str = Field(
        ..., title="Reviewer 审查人", min_length=1, max_length=64, description="Your member code."
    )
    approved: bool = Field(..., title="Approve 通过")
    comment: Text = Field("", title="Comment 意见", max_length=4000)


def _run_key(suffix: str = "") -> str | None:
    run_id = flow_run.get_id()
    return f"flow-run:{run_id}{suffix}" if run_id else None


@flow(name="budget-set-fiscal-year", log_prints=True)
def set_fiscal_year(
    form: SetFiscalYearForm = form_of(SetFiscalYearForm), actor: Actor = ACTOR
) -> dict:
    result = t.set_fiscal_year(form, actor, _run_key())
    locale = Context.default().policy.locale
    get_run_logger().info(
        f"fiscal year {result['year']}: total {format_yuan(result['total_fen'], locale)}, "
        f"emergency reserve {format_yuan(result['reserve_fen'], locale)} "
        f"(line {result['reserve_line_code']})"
        + ("" if result["changed"] else "; unchanged, as set before")
    )
    return result


def _collect_reviews(
    subject: SubjectKind,
    line_code: str | None,
    adjustment_id: int | None,
    stages: list[str],
    hours: int,
    poll_seconds: int,
) -> dict:
    """Wait for each review in the UI; a refused review (wrong group, beyond authority) is
    logged with its rule and asked for again."""
    logger = get_run_logger()
    result: dict = {"status": "proposed"}
    attempt = 0
    while result["status"] in ("proposed", "in_review"):
        attempt += 1
        wanted = result.get("next_stage") or stages[0]
        logger.info("waiting for the %s review of %s", wanted, line_code or adjustment_id)
        given = pause_flow_run(
            wait_for_input=ReviewInput.with_initial_data(
                description=f"The {wanted} review of {subject.value} {line_code or adjustment_id}"
            ),
            timeout=hours * 3600,
            poll_interval=poll_seconds,
            key=f"review-{attempt}",
        )
        form = ReviewForm(
            subject=subject,
            line_code=line_code,
            adjustment_id=adjustment_id,
            reviewer=given.reviewer,
            approved=given.approved,
            comment=given.comment,
        )
        try:
            result = t.review(form, given.reviewer, _run_key(f":review-{attempt}"))
        except DomainError as exc:
            logger.error("review refused: %s", exc)
            continue
        logger.info(
            "%s review by %s: %s; %s %s is now %s",
            result["stage"],
            given.reviewer,
            "approved" if given.approved else "not approved",
            subject.value,
            line_code or adjustment_id,
            result["status"],
        )
    return result


@flow(name="budget-line-approval", log_prints=True)
def line_approval(
    form: ProposeLineForm = form_of(ProposeLineForm),
    actor: Actor = ACTOR,
    review_timeout_hours: ReviewTimeoutHours = REVIEW_TIMEOUT,
    poll_seconds: PollSeconds = POLL,
) -> dict:
    """零基预算 + 三审: propose the line, then take each review from the UI's resume form."""
    proposed = t.propose_line(form, actor, _run_key())
    return _collect_reviews(
        SubjectKind.line,
        proposed["code"],
        None,
        proposed["stages"],
        review_timeout_hours,
        poll_seconds,
    )


@flow(name="budget-adjustment-approval", log_prints=True)
def adjustment_approval(
    form: ProposeAdjustmentForm = form_of(ProposeAdjustmentForm),
    actor: Actor = ACTOR,
    review_timeout_hours: ReviewTimeoutHours = REVIEW_TIMEOUT,
    poll_seconds: PollSeconds = POLL,
) -> dict:
    """预算调整: the same three reviews for a change of an approved line."""
    proposed = t.propose_adjustment(form, actor, _run_key())
    return _collect_reviews(
        SubjectKind.adjustment,
        None,
        proposed["adjustment_id"],
        proposed["stages"],
        review_timeout_hours,
        poll_seconds,
    )


@flow(name="budget-review", log_prints=True)
def review(form: ReviewForm = form_of(ReviewForm)) -> dict:
    return t.review(form, form.reviewer, _run_key())


@flow(name="budget-ledger-entry", log_prints=True)
def ledger_entry(form: DisbursementForm = form_of(DisbursementForm), actor: Actor = ACTOR) -> dict:
    result = t.record_disbursement(form, actor)
    logger = get_run_logger()
    if result["duplicate"]:
        logger.info(
            "voucher %s is already on the ledger (entry %s): nothing recorded again",
            form.voucher,
            result["entry_id"],
        )
    else:
        logger.info("recorded as ledger entry %s", result["entry_id"])
    for warning in result["warnings"]:
        logger.warning(warning)
    return result


@flow(name="budget-ledger-import", log_prints=True)
def ledger_import(
    path: Annotated[str, Field(min_length=1)] = Field(
        ...,
        description="财务导出文件 Finance export: the path of a .csv or .xlsx export on the "
        "worker (columns: voucher, date, line, kind, amount, payee, description, emergency; "
        "Chinese headers accepted).",
    ),
    actor: Actor = ACTOR,
) -> dict:
    result = t.import_ledger(path, actor)
    logger = get_run_logger()
    logger.info(
        "%s rows: %s imported, %s already on the ledger, %s rows with errors",
        result["rows"],
        result["imported"],
        result["already_imported"],
        len({e["row"] for e in result["errors"]}),
    )
    for notice in result["to_check"][:20]:
        logger.warning("row %s, %s: %s", notice["row"], notice["field"], notice["message"])
    return result


@flow(name="budget-reserve-draw", log_prints=True)
def reserve_draw(form: ReserveDrawForm = form_of(ReserveDrawForm), actor: Actor = ACTOR) -> dict:
    result = t.draw_reserve(form, actor, _run_key())
    # What was charged to which emergency, by its whole id (an operator trial: a draw's log
    # said nothing, and the form may name the emergency by its first characters).
    get_run_logger().info(
        "drew %s from the reserve for emergency %s: ledger entry %s (%s); reserve left %s",
        format_yuan(to_fen(form.amount), "en"),
        result["emergency_id"] or form.emergency,
        result["entry_id"],
        result["external_ref"],
        format_yuan(result["reserve_left_fen"], "en"),
    )
    return result


@flow(name="budget-audit", log_prints=True)
def budget_audit(
    # Prefect keeps constraints from Annotated and the description from the default Field.
    week: Annotated[str | None, Field(pattern=WEEK_PATTERN)] = Field(
        None,
        title="ISO week 审计周",
        description="The week to audit, e.g. 2026-W48. Empty: the last complete week.",
    ),
) -> dict:
    """周合规检查: the weekly compliance audit of the ledger, for any past week."""
    label = iso_week(week).label if week else last_complete_week(Context.default().today()).label
    result = t.audit(label)
    paths = t.publish_audit(result)
    get_run_logger().info(
        "%s: %s open findings (%s new, %s resolved)",
        label,
        result.summary["open"],
        result.summary["new"],
        result.summary["resolved"],
    )
    return {"week": label, "summary": result.summary, "new": result.new_keys, "reports": paths}


@flow(name="budget-performance-audit", log_prints=True)
def performance_audit(
    half: Annotated[str | None, Field(pattern=HALF_PATTERN)] = Field(
        None,
        title="Half-year 半年度",
        description="e.g. 2026-H1. Empty: the last complete half-year.",
    ),
) -> dict:
    """绩效审计: input against output per budget line, for the third-party evaluator."""
    label = half or last_complete_half(Context.default().today()).label
    result = t.performance_audit(label)
    paths = t.publish_performance(result)
    summary = result.summary
    # Counts and sums only (a line's purpose may be classified): an operator trial found
    # the run's log empty.
    get_run_logger().info(
        "%s: %s budget lines, %s allocated, %s spent to date (%.2f%%)%s",
        label,
        summary["lines"],
        format_yuan(summary["amount_fen"], "en"),
        format_yuan(summary["spent_to_date_fen"], "en"),
        summary["execution_bp"] / 100,
        "; " + ", ".join(f"{n} {k}" for k, n in sorted(summary["by_assessment"].items()))
        if summary["by_assessment"]
        else "",
    )
    return {"half": label, "summary": result.summary, "reports": paths}
