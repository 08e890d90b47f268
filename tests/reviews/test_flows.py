"""The review flow on a real Prefect server: artifacts in the UI, a re-run creates nothing twice.
And the register forms as flows."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import zipfile

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flows.registers import upsert_risk_flow
from flows.reviews import monthly_review
from taskforce.clock import ManualClock
from taskforce.context import use_clock
from taskforce.emergency.models import EarlyWarning
from taskforce.errors import NotFound
from taskforce.loop.models import Issue
from taskforce.registers.forms import RiskForm
from taskforce.registers.models import Review
from taskforce.trail.models import TrailEntry
from tests.conftest import ROOT
from tests.reviews import factories as f
from tests.run_logs import run_records


@pytest.fixture
def in_december():
    """The flows' clock (Context.default) in December 2026: November's review is of a finished
    month, whatever the day the tests run (a named period must have ended)."""
    previous = use_clock(ManualClock(dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.UTC)))
    yield
    use_clock(previous)


def _artifacts(flow_run_id) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


@pytest.mark.prefect
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_monthly_review_flow(prefect_server, engine, tmp_path, monkeypatch, in_december):
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
    summary = artifacts["review-monthly-summary"].data
    assert "2026-11" in summary
    # Out of the KPIs that have a target, not of all twenty.
    assert re.search(r"未达标：\d+ 项（共 \d+ 项有目标的指标）", summary), summary
    kpis = artifacts["review-monthly-kpis"]
    # In the office's words: 问题解决率 / ≥ 80.0% / 未达标, not resolution_rate / min / missed.
    rows = json.loads(kpis.data) if isinstance(kpis.data, str) else kpis.data
    table = json.dumps(rows, ensure_ascii=False)
    assert kpis.type == "table" and "问题解决率" in table and "≥ 80.0%" in table
    assert "resolution_rate" not in table and "min 80" not in table and "未达标" in table
    # Prefect stores a link artifact as markdown: [text](link).
    link = artifacts["review-monthly-en-html"].data
    assert link.startswith("[") and "monthly-2026-11.en.internal.html)" in link
    progress = artifacts["review-monthly-progress"]
    assert progress.type == "progress" and progress.data == 100

    # The secret edition's run: the UI (internal clearance) gets no link to its report.
    secret = monthly_review(period="2026-11", audience="secret", locales=["en"], return_state=True)
    assert secret.result()["files"]["en.html"].endswith("monthly-2026-11.en.secret.html")
    shown = _artifacts(secret.state_details.flow_run_id)
    assert "review-monthly-summary" in shown and "review-monthly-en-html" not in shown, shown

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
    # The trail names a member: a default "operator" named nobody on the risk and its
    # warning. An unknown code is refused with the codes there are, and writes nothing.
    with pytest.raises(NotFound, match="actor: no active member 'operator'"):
        upsert_risk_flow(form=form, actor="operator")
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(EarlyWarning)) == 0
    first = upsert_risk_flow(form=form, actor="E1")
    assert first.created and first.warning_raised == "orange"  # 16 >= 15
    second = upsert_risk_flow(form=form, actor="E1")
    assert not second.changed and second.warning_raised is None
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(EarlyWarning)) == 1
        actors = s.scalars(
            select(TrailEntry.actor).where(
                TrailEntry.action.in_(["risk.created", "warning.raised"])
            )
        ).all()
        assert actors and set(actors) == {"E1"}


@pytest.mark.prefect
def test_upsert_risk_flow_logs_the_ids_of_the_warnings_a_lowered_risk_settled(
    prefect_server, engine
):
    """A risk lowered below its thresholds settled its warnings, and the run's log did not
    say which: the line names the risk and the warnings' ids, never their (secret) titles."""
    title = "Secret vendor exposure"

    def form(probability: int, impact: int) -> RiskForm:
        return RiskForm(
            code="R-MKT-02", title=title, category="market", probability=probability,
            impact=impact, strategy="transfer", owner_unit="commerce", classification="secret",
        )  # fmt: skip

    assert upsert_risk_flow(form=form(4, 4), actor="E1").warning_raised == "orange"
    assert upsert_risk_flow(form=form(5, 5), actor="E1").warning_raised == "red"
    with run_records() as records:
        lowered = upsert_risk_flow(form=form(1, 2), actor="E1")
    with Session(engine) as s:
        ids = s.scalars(
            select(EarlyWarning.id)
            .where(EarlyWarning.subject_id == "R-MKT-02", EarlyWarning.status == "handled")
            .order_by(EarlyWarning.id)
        ).all()
    assert len(ids) == 2 and lowered.warnings_settled == ids
    said = [r.getMessage() for r in records]
    line = f"risk R-MKT-02 now scores 2, below their threshold: settled warnings {ids[0]}, {ids[1]}"
    assert line in said, said
    assert not any(title in message for message in said), said
    with run_records() as records:  # nothing settled: no such line
        upsert_risk_flow(form=form(1, 1), actor="E1")
    assert not any("settled warnings" in r.getMessage() for r in records)


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


@pytest.mark.prefect
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_review_flow_writes_its_workbooks_in_a_process_of_their_own_at_scale(
    prefect_server, engine, tmp_path, monkeypatch, in_december
):
    """From review.workbook_process_from_nodes task nodes the flow, like run_review, hands
    the workbooks to a second process: the same workbook, byte for byte, as in-process."""
    from taskforce.reviews import ledgers

    with Session(engine) as s, s.begin():
        f.november_dataset(s)
    finished: list[dict] = []
    finish = ledgers.WorkbookJob.finish

    def observed(job):
        finished.append(finish(job))
        return finished[-1]

    monkeypatch.setattr(ledgers.WorkbookJob, "finish", observed)
    files = {}
    for threshold in (10**9, 0):  # in-process, then in a process of their own
        config = tmp_path / f"config-{threshold}"
        shutil.copytree(ROOT / "config", config)
        policy = (config / "taskforce.yaml").read_text(encoding="utf-8")
        policy, replaced = re.subn(
            r"(?m)^(\s+workbook_process_from_nodes:)\s*\d+", rf"\g<1> {threshold}", policy
        )
        assert replaced == 1
        (config / "taskforce.yaml").write_text(policy, encoding="utf-8")
        monkeypatch.setenv("TASKFORCE_CONFIG_DIR", str(config))
        monkeypatch.setenv("TASKFORCE_REPORTS_DIR", str(tmp_path / f"out-{threshold}"))
        files[threshold] = monthly_review(period="2026-11", locales=["zh-CN"])["files"]
    assert len(finished) == 1 and finished[0]["tasks"] > 0  # the second run only
    with (
        zipfile.ZipFile(files[0]["zh-CN.xlsx"]) as ours,
        zipfile.ZipFile(files[10**9]["zh-CN.xlsx"]) as theirs,
    ):
        assert sorted(ours.namelist()) == sorted(theirs.namelist())
        # The KPI sheet (sheet1) differs: the first run's Act step opened improvement
        # issues, which the second run counts (run_review's test compares it too).
        for name in set(theirs.namelist()) - {"xl/worksheets/sheet1.xml"}:
            assert ours.read(name) == theirs.read(name), name
        ledger_sheet = ours.read("xl/worksheets/sheet2.xml")
    assert ledger_sheet.count(b"<row>") > 1  # the period's task ledger, not only its header
    assert not list(tmp_path.rglob("*.partial"))
