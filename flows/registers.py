"""UI forms for the registers the reviews read: the risk register and the milestones."""

from __future__ import annotations

from prefect import flow, task

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.registers import service
from taskforce.registers.forms import MilestoneForm, MilestoneResult, RiskForm, RiskResult


@task(name="upsert-risk", retries=2, retry_delay_seconds=1)
def _upsert_risk(form: RiskForm, actor: str) -> RiskResult:
    with unit_of_work() as session:
        return service.upsert_risk(session, Context.default(), form, actor=actor)


@task(name="upsert-milestone", retries=2, retry_delay_seconds=1)
def _upsert_milestone(form: MilestoneForm, actor: str) -> MilestoneResult:
    with unit_of_work() as session:
        return service.upsert_milestone(session, Context.default(), form, actor=actor)


@flow(name="upsert-risk", log_prints=True)
def upsert_risk_flow(form: RiskForm, actor: str = "operator") -> RiskResult:
    """风险登记 Add or update a risk (same code = update); a score crossing a threshold warns once."""
    result = _upsert_risk(form, actor)
    print(result.model_dump())
    return result


@flow(name="upsert-milestone", log_prints=True)
def upsert_milestone_flow(form: MilestoneForm, actor: str = "operator") -> MilestoneResult:
    """里程碑 Add or update a milestone (same code = update)."""
    result = _upsert_milestone(form, actor)
    print(result.model_dump())
    return result
