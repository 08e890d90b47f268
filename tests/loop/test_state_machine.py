"""Random sequences of operator actions (hypothesis state machine) on the real core and database.

After every step: no issue is in an impossible state, every state change has
its trail entry, the trail verifies, and no notification exists without its
cause. A refused action changes nothing.
"""

import datetime as dt
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from pydantic import ValidationError
from sqlalchemy import func, select

from taskforce.clock import ManualClock
from taskforce.context import Context
from taskforce.db import make_engine, unit_of_work
from taskforce.errors import DomainError
from taskforce.loop.models import Decision, DecisionStatus, Issue, Plan, Stage, TaskLevel, TaskNode
from taskforce.loop.sweep import dispatch_sweep
from taskforce.notify.models import OutboxMessage
from taskforce.policy import load_policy
from taskforce.trail import verify
from taskforce.trail.models import TrailEntry
from tests.loop.helpers import Loop

TITLES = ["材料重复提交", "审批环节过多", "数据接口未开放", "融资担保难"]
UNITS = ["market-reg", "tax", "housing", "finance"]
# the trail action that must exist for an issue in each stage
STAGE_EVIDENCE = {
    Stage.reported: "issue.reported",
    Stage.planning: "plan",
    Stage.executing: "plan.filed",
    Stage.evaluating: "issue.ready_for_evaluation",
    Stage.closed: "issue.closed",
}


class LoopMachine(RuleBasedStateMachine):
    template: Path | None = None

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="tf-sm-"))
        shutil.copy(self.template, self.dir / "t.db")
        self.engine = make_engine(f"sqlite:///{self.dir / 't.db'}")
        self.clock = ManualClock(dt.datetime(2026, 3, 9, 1, tzinfo=dt.UTC))
        self.loop = Loop(self.engine, Context(policy=load_policy(), clock=self.clock))
        self.numbers: list[str] = []

    def teardown(self):
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _trail_count(self):
        with unit_of_work(self.engine) as s:
            return s.scalar(select(func.count(TrailEntry.id)))

    def _attempt(self, fn, *args, **kwargs):
        before = self._trail_count()
        try:
            return fn(*args, **kwargs)
        except (DomainError, ValidationError):
            assert self._trail_count() == before, "a refused action wrote to the trail"
            return None

    def _issue(self, data):
        return data.draw(st.sampled_from(self.numbers)) if self.numbers else None

    @rule(title=st.sampled_from(TITLES), unit=st.sampled_from(UNITS))
    def report(self, title, unit):
        r = self._attempt(self.loop.report, title=title, unit=unit)
        if r and r.issue_number not in self.numbers:
            self.numbers.append(r.issue_number)

    @rule(
        data=st.data(),
        budget=st.sampled_from(["0", "5000000", "5000000.01"]),
        days=st.integers(-2, 90),
    )
    def coordinate(self, data, budget, days):
        if n := self._issue(data):
            self._attempt(self.loop.coordinate, n, budget=budget, days=days)

    @rule(data=st.data(), yes=st.integers(0, 7))
    def vote(self, data, yes):
        if n := self._issue(data):
            self._attempt(self.loop.vote, n, yes=yes, no=7 - yes)

    @rule(data=st.data(), items=st.integers(1, 3), due_in=st.integers(-3, 100))
    def plan(self, data, items, due_in):
        if n := self._issue(data):
            self._attempt(self.loop.plan, n, items=items, due_in=due_in)

    @rule(data=st.data(), percent=st.sampled_from([10, 50, 100]))
    def progress(self, data, percent):
        if (n := self._issue(data)) and (items := self.loop.items(n, open_only=True)):
            self._attempt(self.loop.progress, n, data.draw(st.sampled_from(items)), percent)

    @rule(data=st.data(), outcome=st.sampled_from(["solved", "partly", "unsolved"]))
    def evaluate(self, data, outcome):
        if n := self._issue(data):
            self._attempt(self.loop.evaluate, n, outcome=outcome)

    @rule(days=st.integers(1, 15))
    def time_passes_and_sweep(self, days):
        self.clock.advance(days=days)
        with unit_of_work(self.engine) as s:
            dispatch_sweep(s, self.loop.ctx)

    @invariant()
    def consistent(self):
        with unit_of_work(self.engine) as s:
            assert verify(s).ok
            orphans = s.scalar(
                select(func.count(OutboxMessage.id)).where(
                    ~OutboxMessage.trail_entry_id.in_(select(TrailEntry.id))
                )
            )
            assert orphans == 0, "a notification without its cause"
            for issue in s.scalars(select(Issue)):
                actions = set(
                    s.scalars(
                        select(TrailEntry.action).where(TrailEntry.subject_id == issue.number)
                    )
                )
                evidence = STAGE_EVIDENCE.get(issue.stage)
                if evidence == "plan":
                    assert {"decision.recorded", "decision.vote_closed"} & actions
                elif evidence:
                    assert evidence in actions, (
                        f"{issue.number} in {issue.stage} without {evidence}"
                    )
                open_items = s.scalar(
                    select(func.count(TaskNode.id)).where(
                        TaskNode.issue_id == issue.id,
                        TaskNode.level == TaskLevel.action_item,
                        TaskNode.done.is_(False),
                    )
                )
                if issue.stage == Stage.executing:
                    assert (
                        s.scalar(
                            select(func.count(Plan.id)).where(
                                Plan.issue_id == issue.id, Plan.round == issue.round
                            )
                        )
                        == 1
                    )
                if issue.stage in (Stage.evaluating, Stage.closed):
                    assert open_items == 0
                if issue.stage == Stage.closed:
                    assert issue.closed_at is not None
                if issue.stage == Stage.planning:
                    assert (
                        s.scalar(
                            select(func.count(Decision.id)).where(
                                Decision.issue_id == issue.id,
                                Decision.round == issue.round,
                                Decision.status.in_(
                                    [DecisionStatus.decided, DecisionStatus.passed]
                                ),
                            )
                        )
                        == 1
                    )


def test_random_operator_sequences(_templates):
    LoopMachine.template = Path(_templates("sqlite"))
    runner = LoopMachine.TestCase
    runner.settings = settings(
        max_examples=25,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    runner().runTest()
