"""UI forms for the registers the reviews read: the risk register and the milestones."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows.parameters import ACTOR, Actor, form_of
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.org.service import active_member
from taskforce.registers import service
from taskforce.registers.forms import MilestoneForm, MilestoneResult, RiskForm, RiskResult
from tasks.loop import STEP


@task(name="upsert-risk", **STEP)  # refused input fails at once, not three times
def _upsert_risk(form: RiskForm, actor: str) -> RiskResult:
    with unit_of_work() as session:
        active_member(session, actor, field="actor")
        return service.upsert_risk(session, Context.default(), form, actor=actor)


@task(name="upsert-milestone", **STEP)
def _upsert_milestone(form: MilestoneForm, actor: str) -> MilestoneResult:
    with unit_of_work() as session:
        active_member(session, actor, field="actor")
        return service.upsert_milestone(session, Context.default(), form, actor=actor)


@flow(name="upsert-risk", log_prints=True)
def upsert_risk_flow(form: RiskForm = form_of(RiskForm), actor: Actor = ACTOR) -> RiskResult:
    """风险登记 Add or update a risk (same code = update); a score crossing a threshold warns once."""
    result = _upsert_risk(form, actor)
    if result.warnings_settled:  # ids only: a warning's title may be classified
        get_run_logger().info(
            "risk %s now scores %s, below their threshold: settled warnings %s",
            result.code,
            result.score,
            ", ".join(str(i) for i in result.warnings_settled),
        )
    print(result.model_dump())
    return result


@flow(name="upsert-milestone", log_prints=True)
def upsert_milestone_flow(
    form: MilestoneForm = form_of(MilestoneForm), actor: Actor = ACTOR
) -> MilestoneResult:
    """里程碑 Add or update a milestone (same code = update)."""
    result = _upsert_milestone(form, actor)
    print(result.model_dump())
    return result
