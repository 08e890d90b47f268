"""Drive the loop's core services in tests, each call its own transaction."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop import coordinate as coord
from taskforce.loop import evaluate as ev
from taskforce.loop import feedback as fb
from taskforce.loop import plan as pl
from taskforce.loop import report as rp
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
from taskforce.loop.models import TaskLevel, TaskNode


class Loop:
    def __init__(self, engine, ctx: Context):
        self.engine, self.ctx = engine, ctx

    def _run(self, fn, *args, **kwargs):
        with unit_of_work(self.engine) as s:
            return fn(s, self.ctx, *args, actor="E1", **kwargs)

    def report(self, title="企业开办材料重复提交", unit="market-reg", key=None, **kw):
        return self._run(
            rp.report_issue, ReportIssueForm(title=title, reporting_unit=unit, **kw), key=key
        )

    def coordinate(
        self,
        number,
        *,
        budget="100000",
        units=("market-reg",),
        major=False,
        days=60,
        key=None,
        flagged_by="",
    ):
        share = 100 // len(units)
        shares = [share] * (len(units) - 1) + [100 - share * (len(units) - 1)]
        form = CoordinateForm(
            participants=list(units),
            solution="统一材料清单，一次提交",
            budget=budget,
            flagged_major=major,
            # E1: the executive director (config/org.yaml), who flags a major matter.
            flagged_by=("E1" if major else None) if flagged_by == "" else flagged_by,
            deadline=self.ctx.today() + dt.timedelta(days=days),
            responsible=[
                ResponsibleUnit(unit=u, share_percent=p) for u, p in zip(units, shares, strict=True)
            ],
        )
        return self._run(coord.coordinate, number, form, key=key)

    def vote(self, number, yes: int, no: int = 0, abstain: int = 0, pre_review=True, key=None):
        codes = [f"L{i}" for i in range(1, 8)]
        ballots = dict.fromkeys(codes[:yes], "yes")
        ballots |= dict.fromkeys(codes[yes : yes + no], "no")
        ballots |= dict.fromkeys(codes[yes + no : yes + no + abstain], "abstain")
        form = LeadershipVoteForm(
            pre_review_passed=pre_review,
            ballots=ballots,
            expert_opinions=[{"expert": "X1", "supports": True, "opinion": "方案可行"}],
        )
        return self._run(coord.leadership_vote, number, form, key=key)

    def plan(self, number, *, items=2, due_in=20, owners=("market-reg",), key=None):
        due = self.ctx.today() + dt.timedelta(days=due_in)
        form = PlanForm(
            goal="企业开办一次办结",
            sub_projects=[
                SubProjectInput(
                    title="材料清单",
                    action_items=[
                        ActionItemInput(
                            title=f"行动项{i}",
                            owner_unit=owners[i % len(owners)],
                            due_date=due,
                            deliverable="清单发布",
                        )
                        for i in range(items)
                    ],
                )
            ],
        )
        return self._run(pl.file_plan, number, form, key=key)

    def items(self, number, open_only=False):
        from taskforce.loop.models import Issue

        with unit_of_work(self.engine) as s:
            issue_id = s.scalar(select(Issue.id).where(Issue.number == number))
            query = select(TaskNode.id).where(
                TaskNode.issue_id == issue_id, TaskNode.level == TaskLevel.action_item
            )
            if open_only:
                query = query.where(TaskNode.done.is_(False))
            return list(s.scalars(query.order_by(TaskNode.id)))

    def progress(self, number, task_id, percent, note="", key=None):
        return self._run(
            fb.report_progress,
            number,
            ProgressForm(task_id=task_id, percent=percent, note=note, reported_by="W1"),
            key=key,
        )

    def evaluate(self, number, outcome="solved", satisfaction=90, key=None):
        return self._run(
            ev.evaluate,
            number,
            EvaluateForm(outcome=outcome, satisfaction=satisfaction, lessons="材料清单要先统一"),
            key=key,
        )

    def finish_all(self, number):
        for t in self.items(number, open_only=True):
            self.progress(number, t, 100)
