"""The review flow on a real Prefect server: artifacts in the UI, a re-run creates nothing twice.
And the register forms as flows."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flows.registers import upsert_risk_flow
from flows.reviews import monthly_review
from taskforce.emergency.models import EarlyWarning
from taskforce.loop.models import Issue
from taskforce.registers.forms import RiskForm
from taskforce.registers.models import Review
from tests.reviews import factories as f


def _artifacts(flow_run_id) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


@pytest.mark.prefect
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_monthly_review_flow(prefect_server, engine, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKFORCE_REPORTS_DIR", str(tmp_path))
    with Session(engine) as s, s.begin():
        f.november_dataset(s)

    state = monthly_review(period="2026-11", locales=["en"], return_state=True)
    assert state.is_completed()
    first = state.result()
    assert first["created"] and first["period"] == "2026-11"
    assert sorted(first["files"]) == ["en.html", "en.md", "en.xlsx"]
    assert (tmp_path / "monthly" / "2026-11" / "monthly-2026-11.en.internal.html").is_file()
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert artifacts["review-monthly-summary"].type == "markdown"
    assert "2026-11" in artifacts["review-monthly-summary"].data
    kpis = artifacts["review-monthly-kpis"]
    assert kpis.type == "table" and "resolution_rate" in str(kpis.data)
    # Prefect stores a link artifact as markdown: [text](link).
    link = artifacts["review-monthly-en-html"].data
    assert link.startswith("[") and "monthly-2026-11.en.internal.html)" in link
    progress = artifacts["review-monthly-progress"]
    assert progress.type == "progress" and progress.data == 100

    again = monthly_review(period="2026-11", locales=["en"])
    assert not again["created"]
    assert again["improvement_issues"] == first["improvement_issues"]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Review)) == 1
        opened = s.scalar(select(func.count()).select_from(Issue).where(Issue.origin == "review"))
        assert opened == len(first["improvement_issues"]) > 0


@pytest.mark.prefect
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_upsert_risk_flow_warns_once(prefect_server, engine):
    form = RiskForm(
        code="R-MKT-01", title="Market shock", category="market", probability=4, impact=4,
        strategy="transfer", owner_unit="commerce",
    )  # fmt: skip
    first = upsert_risk_flow(form=form)
    assert first.created and first.warning_raised == "orange"  # 16 >= 15
    second = upsert_risk_flow(form=form)
    assert not second.changed and second.warning_raised is None
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(EarlyWarning)) == 1


@pytest.mark.parametrize(
    ("flow_fn", "good", "bad"),
    [
        ("weekly_dispatch_report", "2026-W48", "2026-W54"),
        ("monthly_review", "2026-11", "2026-13"),
        ("quarterly_review", "2026-Q4", "2026-Q5"),
        ("semiannual_audit", "2026-H2", "2026-H3"),
    ],
)
def test_ui_form_of_each_review(flow_fn, good, bad):
    """The UI form: titled fields, the period's shape, the audiences; bad input refused before a run."""
    import re

    from prefect.utilities.callables import parameter_schema

    import flows.reviews as module

    schema = parameter_schema(getattr(module, flow_fn)).model_dump_for_openapi()
    period = schema["properties"]["period"]
    assert good[:4] in period["description"] and "last complete period" in period["description"]
    pattern = next(p["pattern"] for p in period["anyOf"] if "pattern" in p)
    assert re.match(pattern, good) and not re.match(pattern, bad)
    assert "阅读范围" in schema["properties"]["audience"]["description"]
    assert schema["properties"]["locales"]["items"]["enum"] == ["zh-CN", "en"]
    assert "secret" in str(schema["definitions"]["Classification"]["enum"])
