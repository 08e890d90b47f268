"""The five steps as real Prefect flows (local test server), end to end."""

import asyncio
import datetime as dt
import gc
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from flows.dispatch import dispatch_sweep_flow
from flows.loop import (
    coordinate_flow,
    evaluate_flow,
    file_plan_flow,
    leadership_vote_flow,
    record_progress_flow,
    report_issue_flow,
)
from taskforce.db import unit_of_work
from taskforce.errors import DomainError
from taskforce.loop.forms import (
    ActionItemInput,
    CoordinateForm,
    EvaluateForm,
    LeadershipVoteForm,
    PlanForm,
    ProgressForm,
    ReportIssueForm,
    ResponsibleUnit,
    SubProjectInput,
)
from taskforce.loop.models import Issue, Stage, TaskLevel, TaskNode
from taskforce.trail import verify
from tests.run_logs import run_records


def _coordinate(budget="100000"):
    today = dt.date.today()
    return CoordinateForm(
        participants=["market-reg"],
        responsible=[ResponsibleUnit(unit="market-reg", share_percent=100)],
        solution="统一材料清单",
        deadline=today + dt.timedelta(days=60),
        budget=budget,
    )


def _plan():
    due = dt.date.today() + dt.timedelta(days=30)
    return PlanForm(
        goal="一次办结",
        sub_projects=[
            SubProjectInput(
                title="清单",
                action_items=[
                    ActionItemInput(
                        title="梳理", owner_unit="market-reg", due_date=due, deliverable="清单"
                    )
                ],
            )
        ],
    )


def _items(number):
    with unit_of_work() as s:
        return list(
            s.scalars(
                select(TaskNode.id)
                .join(Issue, Issue.id == TaskNode.issue_id)
                .where(
                    Issue.number == number,
                    TaskNode.level == TaskLevel.action_item,
                    TaskNode.done.is_(False),
                )
            )
        )


async def _walk(number, *, vote_yes=None, outcome="solved"):
    await coordinate_flow(number, _coordinate("8000000" if vote_yes is not None else "100000"))
    if vote_yes is not None:
        ballots = {f"L{i}": ("yes" if i <= vote_yes else "no") for i in range(1, 8)}
        result = await leadership_vote_flow(
            number,
            LeadershipVoteForm(
                pre_review_passed=True,
                ballots=ballots,
                expert_opinions=[{"expert": "X2", "supports": True, "opinion": "技术上可行"}],
            ),
        )
        if not result.detail["passed"]:
            return result
    await file_plan_flow(number, _plan())
    for task_id in _items(number):
        await record_progress_flow(
            number, ProgressForm(task_id=task_id, percent=100, reported_by="W1")
        )
    return await evaluate_flow(number, EvaluateForm(outcome=outcome, satisfaction=88))


def test_five_steps_through_flows_and_trail_verifies(flow_db):
    async def scenario():
        r = await report_issue_flow(
            ReportIssueForm(title="流程测试问题", reporting_unit="market-reg")
        )
        last = await _walk(r.issue_number)
        dup = await report_issue_flow(ReportIssueForm(title="另一个问题", reporting_unit="tax"))
        again = await report_issue_flow(ReportIssueForm(title="另一个问题", reporting_unit="tax"))
        return r, last, dup, again

    _, last, dup, again = asyncio.run(scenario())
    assert last.stage == "closed"
    assert again.duplicate and again.issue_number == dup.issue_number
    with unit_of_work() as s:
        assert verify(s).ok
        assert s.scalar(select(func.count(Issue.id))) == 2


def test_vote_path_through_flows(flow_db):
    async def scenario():
        fail = await report_issue_flow(
            ReportIssueForm(title="重大事项甲", reporting_unit="finance")
        )
        ok = await report_issue_flow(ReportIssueForm(title="重大事项乙", reporting_unit="finance"))
        return await _walk(fail.issue_number, vote_yes=4), await _walk(ok.issue_number, vote_yes=5)

    failed, passed = asyncio.run(scenario())
    assert failed.stage == "coordinating" and failed.detail["required"] == 5
    assert passed.stage == "closed"


def test_loop_back_through_flows(flow_db):
    async def scenario():
        r = await report_issue_flow(ReportIssueForm(title="回退问题", reporting_unit="industry"))
        first = await _walk(r.issue_number, outcome="unsolved")
        second = await _walk(r.issue_number)
        return first, second

    first, second = asyncio.run(scenario())
    assert first.stage == "coordinating" and first.detail["returns"] == 1
    assert second.stage == "closed"


def test_flow_retry_with_same_key_changes_nothing(flow_db):
    form = ReportIssueForm(title="幂等问题", reporting_unit="tax")

    async def scenario():
        a = await report_issue_flow(form, idempotency_key="k-1")
        b = await report_issue_flow(form, idempotency_key="k-1")  # a retry: the same input
        return a, b

    with run_records() as records:
        a, b = asyncio.run(scenario())
    assert a == b
    said = [r.getMessage() for r in records]
    # The retry's log says it changed nothing (a re-trial: it read as the first run's).
    assert f"{a.issue_number}: reported; stage now reported" in said, said
    assert (
        f"{a.issue_number}: reported: done already by an earlier run with this key; "
        "nothing changed; stage now reported" in said
    ), said
    # Another report under the same key is refused, not answered with the first one.
    different = ReportIssueForm(title="完全不同", reporting_unit="tax")
    with pytest.raises(DomainError, match="'k-1' was already used for a different input"):
        asyncio.run(report_issue_flow(different, idempotency_key="k-1"))
    with unit_of_work() as s:
        assert s.scalar(select(func.count(Issue.id))) == 1
        assert s.scalar(select(Issue.stage)) == Stage.reported


def test_dispatch_sweep_flow_twice_sends_nothing_new(flow_db):
    from taskforce.notify.models import OutboxMessage

    asyncio.run(report_issue_flow(ReportIssueForm(title="扫描测试", reporting_unit="tax")))
    first = dispatch_sweep_flow()
    with unit_of_work() as s:
        before = s.scalar(select(func.count(OutboxMessage.id)))
    second = dispatch_sweep_flow()
    with unit_of_work() as s:
        assert s.scalar(select(func.count(OutboxMessage.id))) == before
    assert first["items"] == second["items"] == 0 and second["new_overdue_warnings"] == 0


def test_a_step_out_of_order_fails_at_once_without_retrying(flow_db):
    """A domain error is the operator's to fix: the run fails on its first attempt, and the
    issue is left as it was (retries are only for a busy or lost database)."""
    from prefect.client.orchestration import get_client

    from taskforce.errors import IllegalTransition

    async def scenario():
        r = await report_issue_flow(ReportIssueForm(title="顺序错误", reporting_unit="tax"))
        state = await file_plan_flow(r.issue_number, form=_plan(), return_state=True)
        async with get_client() as client:
            run = await client.read_flow_run(state.state_details.flow_run_id)
        return r, state, run

    _reported, state, run = asyncio.run(scenario())
    assert state.is_failed()
    assert run.run_count == 1
    try:
        state.result()
    except IllegalTransition as exc:
        assert "plan" in str(exc) or exc.allowed
    else:
        raise AssertionError("filing a plan before coordination must fail")
    with unit_of_work() as s:
        assert s.scalar(select(Issue.stage)) == Stage.reported
        assert s.scalar(select(func.count(TaskNode.id))) == 0


def test_each_step_run_is_named_after_what_it_does(flow_db):
    from prefect.client.orchestration import get_client

    async def scenario():
        reported = await report_issue_flow(
            ReportIssueForm(title="命名测试", reporting_unit="tax"), return_state=True
        )
        number = (await reported.result()).issue_number
        coordinated = await coordinate_flow(number, form=_coordinate(), return_state=True)
        # A secret issue's title stays out of the run's name (the run list, every log line's
        # head in the terminal): an operator trial.
        secret = await report_issue_flow(
            ReportIssueForm(title="保密事项", reporting_unit="tax", classification="secret"),
            return_state=True,
        )
        async with get_client() as client:
            names = [
                (await client.read_flow_run(s.state_details.flow_run_id)).name
                for s in (reported, coordinated, secret)
            ]
        return number, names

    number, names = asyncio.run(scenario())
    assert names == [
        "report: 命名测试",
        f"{number}: coordinate",
        "report: a secret issue from tax",
    ]
    # The same first line settled the process: start-up objects out of the collector's way.
    assert gc.get_freeze_count() > 0


def test_a_step_sends_its_own_notifications_and_leaves_a_backlog_to_the_delivery_flow(flow_db):
    """A weekly sweep can leave tens of thousands of rows pending: an operator's step sends
    the rows its own state change wrote, not the backlog (the delivery flow's job)."""
    from taskforce.context import Context
    from taskforce.loop import report
    from taskforce.notify.models import DeliveryStatus, OutboxMessage

    with unit_of_work() as s:  # the backlog: reported outside any flow, nothing sent
        backlog = report.report_issue(
            s, Context.default(), ReportIssueForm(title="积压通知", reporting_unit="tax"), actor="t"
        )
    reported = asyncio.run(
        report_issue_flow(ReportIssueForm(title="本步通知", reporting_unit="industry"))
    )

    def statuses(number: str) -> set[DeliveryStatus]:
        with unit_of_work() as s:
            return set(
                s.scalars(select(OutboxMessage.status).where(OutboxMessage.subject_id == number))
            )

    assert statuses(backlog.issue_number) == {DeliveryStatus.pending}
    assert statuses(reported.issue_number) == {DeliveryStatus.delivered}


def test_the_ui_form_of_a_step_describes_and_checks_its_top_level_fields():
    """Prefect titles parameters with their names and drops the default Field's constraints:
    the operator saw bare 'issue_number' / 'operator' / 'actor' with no pattern or hint."""
    import re

    from prefect.utilities.callables import parameter_schema

    from flows.budget import set_fiscal_year
    from flows.lifecycle import issue_lifecycle_flow
    from flows.loop import record_progress_flow

    for flow_fn in (record_progress_flow, issue_lifecycle_flow):
        fields = parameter_schema(flow_fn.fn).model_dump_for_openapi()["properties"]
        number = fields["issue_number"]
        assert "问题编号" in number["description"]
        assert re.match(number["pattern"], "TF-2026-00001")
        assert not re.match(number["pattern"], "TF-26-1")
        assert "操作人" in fields["operator"]["description"]
    key = parameter_schema(record_progress_flow.fn).model_dump_for_openapi()["properties"]
    assert "different input it is refused" in key["idempotency_key"]["description"]
    actor = parameter_schema(set_fiscal_year.fn).model_dump_for_openapi()["properties"]["actor"]
    assert "member code" in actor["description"] and actor["minLength"] == 1


@pytest.mark.prefect
def test_an_amount_the_form_cannot_take_is_refused_before_a_run_starts(prefect_server):
    """The API checks a deployment's parameters against its form's schema. An amount typed
    as text had no pattern there: "-5" or "五万" made a run that failed on the worker."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    from flows.budget import set_fiscal_year
    from flows.loop import report_issue_flow

    report = report_issue_flow.to_deployment(name="amount-check").apply()
    year = set_fiscal_year.to_deployment(name="amount-check").apply()
    form = {"title": "材料重复提交", "reporting_unit": "market-reg"}
    with get_client(sync_client=True) as client:
        for amount in ("-5", "五万", "8600万", "1,000.00", "1e7", "0.001", -5):
            with pytest.raises(PrefectHTTPStatusError, match="estimated_budget") as refused:
                client.create_flow_run_from_deployment(
                    report, parameters={"form": {**form, "estimated_budget": amount}}
                )
            assert refused.value.response.status_code == 409, amount
        for total in (0, "0", "0.00", 1e14, "12345678901234"):  # more than 0, 15 digits
            with pytest.raises(PrefectHTTPStatusError, match="total"):
                client.create_flow_run_from_deployment(
                    year,
                    parameters={
                        "form": {"year": 2027, "total": total, "decided_by": "L1"},
                        "actor": "E1",
                    },
                )
        run = client.create_flow_run_from_deployment(
            year,
            parameters={"form": {"year": 2027, "total": "0.01", "decided_by": "L1"}, "actor": "E1"},
        )
        client.delete_flow_run(run.id)
        for amount in ("50000", "50000.5", "0", 50000, 12.34):
            run = client.create_flow_run_from_deployment(
                report, parameters={"form": {**form, "estimated_budget": amount}}
            )
            client.delete_flow_run(run.id)  # nothing runs it: no worker in this test
    # What the pattern means, under the field in the UI (the refusal shows the pattern only).
    from prefect.utilities.callables import parameter_schema

    budget = parameter_schema(report_issue_flow.fn).model_dump_for_openapi()["definitions"][
        "ReportIssueForm"
    ]["properties"]["estimated_budget"]
    assert "no 万, no commas" in budget["description"] and "86000000" in budget["description"]


def test_a_steps_run_log_says_what_it_did_and_a_duplicate_names_its_issue(flow_db):
    """An operator trial: a report linked as a duplicate said so only in its artifact and
    result; the run's log (where an operator looks first) said nothing of it."""

    async def scenario():
        first = await report_issue_flow(
            ReportIssueForm(title="窗口排队时间长", reporting_unit="tax")
        )
        again = await report_issue_flow(
            ReportIssueForm(title="窗口排队时间长", reporting_unit="tax")
        )
        return first, again

    with run_records() as records:
        first, again = asyncio.run(scenario())
    said = [r.getMessage() for r in records]
    number = first.issue_number
    assert again.duplicate and again.issue_number == number
    assert f"{number}: reported; stage now {first.stage}" in said, said
    assert (
        f"linked to {number} as a duplicate report (no new issue); {number} is at stage "
        f"{again.stage}" in said
    ), said
    assert not any("窗口排队时间长" in line for line in said)  # a title may be classified


def test_the_cockpit_and_issue_board_withhold_a_secret_issues_text_in_the_ui(flow_db):
    """An operator trial: the `issue-board` artifact listed a secret issue's title (and its
    times in raw UTC); the task cockpit lists every open item's title the same way. The
    Prefect UI is read at internal clearance (taskforce/reports/audience.py)."""
    from prefect.client.orchestration import get_client

    from flows.dispatch import issue_board_flow
    from taskforce.reports.audience import WITHHELD

    async def scenario():
        secret = await report_issue_flow(
            ReportIssueForm(
                title="某涉密系统漏洞排查", reporting_unit="tax", classification="secret"
            )
        )
        plain = await report_issue_flow(
            ReportIssueForm(title="窗口排队时间长", reporting_unit="tax")
        )
        for number in (secret.issue_number, plain.issue_number):
            await coordinate_flow(number, _coordinate())
            await file_plan_flow(number, _plan())
        waiting = await report_issue_flow(ReportIssueForm(title="路灯不亮", reporting_unit="tax"))
        return secret.issue_number, plain.issue_number, waiting.issue_number

    secret, plain, waiting = asyncio.run(scenario())
    dispatch_sweep_flow()
    board = {row["number"]: row for row in issue_board_flow()}
    assert board[secret]["title"] == WITHHELD and board[secret]["classification"] == "secret"
    assert board[plain]["title"] == "窗口排队时间长"
    with unit_of_work() as s:
        entered = s.scalar(select(Issue.stage_entered_at).where(Issue.number == plain))
    shanghai = entered.replace(tzinfo=dt.UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    assert board[plain]["stage_entered_at"] == shanghai.strftime("%Y-%m-%d %H:%M")
    # A stage due at the end of a day shows that day, not the midnight after it (a re-trial).
    with unit_of_work() as s:
        expires = s.scalar(select(Issue.stage_due_at).where(Issue.number == waiting))
    midnight = expires.replace(tzinfo=dt.UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    assert midnight.time() == dt.time(0)
    assert board[waiting]["due_by"] == (midnight.date() - dt.timedelta(days=1)).isoformat()
    assert board[plain]["due_by"] == ""  # executing: no stage deadline
    assert "stage_due_at" not in board[plain]
    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_latest_artifacts()}
    shown = str(_table(artifacts["task-cockpit"].data)) + str(_table(artifacts["issue-board"].data))
    assert "某涉密系统漏洞排查" not in shown and "窗口排队时间长" in shown
    cockpit = [row for row in _table(artifacts["task-cockpit"].data) if row["issue"] == secret]
    assert cockpit and all(row["item"] == WITHHELD for row in cockpit)
    assert all(
        row["item"] == "梳理"
        for row in _table(artifacts["task-cockpit"].data)
        if row["issue"] == plain
    )
    # The step's own artifact: the plan's items named for the internal issue, withheld for
    # the secret one (a re-trial read "action_item_ids: 7 机密：…" there).
    secret_step = artifacts[f"issue-{secret.lower()}"].data
    plain_step = artifacts[f"issue-{plain.lower()}"].data
    assert "stage now: **executing**" in secret_step
    assert f"- action_item_ids: {WITHHELD}" in secret_step and "梳理" not in secret_step
    with unit_of_work() as s:
        secret_items = s.scalars(
            select(TaskNode.id)
            .join(Issue, Issue.id == TaskNode.issue_id)
            .where(Issue.number == secret, TaskNode.level == TaskLevel.action_item)
        ).all()
    assert secret_items and f"- item_ids: {'; '.join(map(str, secret_items))}" in secret_step
    assert "action_item_ids" in plain_step and "梳理" in plain_step


def _table(data) -> list[dict]:
    import json

    return json.loads(data) if isinstance(data, str) else data


def test_the_lifecycle_state_withholds_a_secret_issue_and_gives_office_time(flow_db):
    """The `issue-lifecycle` artifact showed a secret issue's title and items, and its time
    in UTC beside the board's office time (a re-trial)."""
    from flows.lifecycle import _state_markdown, read_state
    from taskforce.reports.audience import WITHHELD

    async def scenario():
        secret = await report_issue_flow(
            ReportIssueForm(
                title="某涉密系统漏洞排查", reporting_unit="tax", classification="secret"
            )
        )
        plain = await report_issue_flow(ReportIssueForm(title="路灯不亮", reporting_unit="tax"))
        for number in (secret.issue_number, plain.issue_number):
            await coordinate_flow(number, _coordinate())
            await file_plan_flow(number, _plan())
        return secret.issue_number, plain.issue_number

    secret, plain = asyncio.run(scenario())
    hidden, shown = read_state(secret), read_state(plain)
    assert hidden["title"] == WITHHELD and {i["title"] for i in hidden["open_items"]} == {WITHHELD}
    assert shown["title"] == "路灯不亮" and {i["title"] for i in shown["open_items"]} == {"梳理"}
    page = _state_markdown(hidden)
    assert "某涉密系统漏洞排查" not in page and "梳理" not in page
    with unit_of_work() as s:
        entered = s.scalar(select(Issue.stage_entered_at).where(Issue.number == plain))
    local = entered.replace(tzinfo=dt.UTC).astimezone(ZoneInfo("Asia/Shanghai"))
    assert shown["since"] == local.strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("detail", "says"),
    [
        (
            {"passed": True, "yes": 5, "no": 2, "members": 7, "required": 5},
            "TF-2026-00001: leadership vote passed (5 yes of 7 members, 5 needed); stage now planning",
        ),
        (
            {"passed": False, "yes": 4, "no": 3, "members": 7, "required": 5, "reason": "…"},
            "TF-2026-00001: leadership vote did not pass (4 yes of 7 members, 5 needed); "
            "stage now planning",
        ),
        (
            {"passed": False, "reason": "议程不成熟"},
            "TF-2026-00001: agenda pre-review did not pass (no vote taken); stage now planning",
        ),
    ],
)
def test_a_votes_log_line_says_whether_it_passed(detail, says):
    """A re-trial: a failed vote (4 of 7) logged only 'leadership vote; stage now …'."""
    from flows.loop import outcome_line
    from taskforce.loop.forms import StepResult

    result = StepResult(issue_number="TF-2026-00001", stage="planning", detail=detail)
    assert outcome_line(result, "leadership vote") == says


def test_a_steps_details_are_words_and_a_secret_issues_are_withheld():
    from flows.loop import _detail, outcome_line
    from taskforce.loop.forms import StepResult
    from taskforce.reports.audience import WITHHELD

    reasons = ["involves more than one region (east, west)", "flagged"]
    internal = StepResult(
        issue_number="TF-2026-00001",
        stage="coordinating",
        classification="internal",
        detail={"major": True, "reasons": reasons},
    )
    assert _detail(internal) == [
        "- major: True",
        "- reasons: involves more than one region (east, west); flagged",
    ]
    secret = internal.model_copy(update={"classification": "secret"})
    assert _detail(secret) == ["- major: True", f"- reasons: {WITHHELD}"]
    unknown = internal.model_copy(update={"classification": None})  # remembered before
    assert _detail(unknown) == ["- major: True", f"- reasons: {WITHHELD}"]
    assert outcome_line(internal, "coordinated") == (
        "TF-2026-00001: coordinated; a major matter, referred to the leadership group "
        "(pre-review, expert review, vote); stage now coordinating"
    )
