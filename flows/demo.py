"""The README's main job: a realistic scenario driven through the real flows.

Months of simulated time (the process clock is moved, ARCHITECTURE.md rule 5)
in which units report issues, the executive group coordinates, the
leadership group votes on major matters, owners report progress (or do not),
the weekly dispatch sweep interviews and escalates, and the executive group
evaluates — one failure loops an issue back. Every operator action goes
through the step flows with simulated form inputs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import random
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.progress import Progress
from sqlalchemy import select

from flows.budget import budget_audit
from flows.demo_budget import DEFAULT_EXPORTS, DemoBudget
from flows.dispatch import dispatch_sweep_flow
from flows.loop import (
    coordinate_flow,
    evaluate_flow,
    file_plan_flow,
    leadership_vote_flow,
    record_progress_flow,
    report_issue_flow,
)
from taskforce.clock import ManualClock
from taskforce.context import use_clock
from taskforce.db import unit_of_work
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
from taskforce.policy import load_org

TZ = ZoneInfo("Asia/Shanghai")


@functools.cache
def _unit_names() -> dict[str, str]:
    """The sample units' Chinese names by code (config/org.yaml)."""
    return {unit.code: unit.name for unit in load_org().units}


UNITS = [
    "dev-reform",
    "finance",
    "industry",
    "commerce",
    "market-reg",
    "data-bureau",
    "tax",
    "hr-social",
    "natural-res",
    "housing",
    "ecology",
    "north-district",
]
TOPICS = [
    ("企业开办材料重复提交", "approval"),
    ("工程建设项目审批环节过多", "approval"),
    ("跨部门数据接口未开放", "data"),
    ("政务数据共享目录不统一", "data"),
    ("中小企业融资担保难", "finance"),
    ("税费优惠政策落地慢", "finance"),
    ("不动产登记耗时过长", "approval"),
    ("招投标信息不透明", "market"),
    ("企业诉求响应超时", "service"),
    ("园区用地指标紧张", "land"),
    ("环评审批与规划衔接不畅", "ecology"),
    ("人才引进补贴兑现慢", "talent"),
    ("电子证照互认不足", "data"),
    ("涉企检查多头重复", "market"),
    ("跨区域通办事项少", "service"),
    ("社保医保业务分头办理", "service"),
    ("外贸企业出口退税周期长", "finance"),
    ("建筑许可证联审联办缺位", "approval"),
]


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), TZ).astimezone(dt.UTC)


def _open_items(number: str) -> list[tuple[int, int]]:
    with unit_of_work() as s:
        return list(
            s.execute(
                select(TaskNode.id, TaskNode.progress_percent)
                .join(Issue, Issue.id == TaskNode.issue_id)
                .where(
                    Issue.number == number,
                    TaskNode.level == TaskLevel.action_item,
                    TaskNode.done.is_(False),
                )
                .order_by(TaskNode.id)
            ).all()
        )


def _stage(number: str) -> Stage:
    with unit_of_work() as s:
        return s.scalar(select(Issue.stage).where(Issue.number == number))


class Scenario:
    """Seeded: the same seed plays the same months."""

    def __init__(
        self, seed: int, start: dt.date, weeks: int, exports: Path = DEFAULT_EXPORTS
    ) -> None:
        self.rng, self.start, self.weeks = random.Random(seed), start, weeks
        self.clock = ManualClock(_at(start))
        self.issues: dict[str, dict] = {}
        self.topic = 0
        self.actions = 0
        self.reviews: list[dict] = []
        self.budget = DemoBudget(self.rng, start.year, exports)

    async def run(self, progress: Progress | None = None) -> None:
        previous = use_clock(self.clock)
        try:
            await self._play(progress)
        finally:  # the process's own time again (a test suite runs on after the demo)
            use_clock(previous)

    async def _play(self, progress: Progress | None) -> None:
        task = progress.add_task("simulating weeks", total=self.weeks) if progress else None
        await self.budget.fund_year()
        for week in range(self.weeks):
            monday = self.start + dt.timedelta(weeks=week)
            self.clock.set(_at(monday, 9))
            await asyncio.to_thread(dispatch_sweep_flow)
            # The Monday compliance audit of last week's spending (周合规检查), as scheduled:
            # its findings are what the reviews count (audit_findings_new / _open).
            await asyncio.to_thread(budget_audit)
            if week and monday.day <= 7:  # the month's first Monday: last month's payments
                await self.budget.import_month(monday.replace(day=1))
            for _ in range(self.rng.choice([1, 1, 2])):
                await self.report(monday)
            self.clock.set(_at(monday + dt.timedelta(days=1)))
            for number in list(self.issues):
                await self.advance(number, monday)
            if progress:
                progress.advance(task)
        await self.review()

    @property
    def total_actions(self) -> int:
        return self.actions + self.budget.actions

    async def review(self) -> None:
        """The month's and the quarter's reviews of the last complete periods, through the review flows."""
        from flows.reviews import monthly_review, quarterly_review
        from taskforce.reviews.periods import last_complete_period

        end = self.start + dt.timedelta(weeks=self.weeks)
        self.clock.set(_at(end, 9))
        if end.day <= 7:
            # That Monday's import of last month's payments comes first, as in the weeks
            # played (an operator trial: the month reviewed read as if nothing was spent).
            await self.budget.import_month(end.replace(day=1))
        for flow_fn, kind in ((monthly_review, "monthly"), (quarterly_review, "quarterly")):
            period = last_complete_period(kind, end).label
            self.reviews.append(await asyncio.to_thread(flow_fn, period=period))
        # The reviews' improvement issues notify too; deliver them as the every-minute run would.
        from flows.notifications import deliver_notifications

        await asyncio.to_thread(deliver_notifications)

    async def report(self, day: dt.date) -> None:
        title, category = TOPICS[self.topic % len(TOPICS)]
        if self.topic >= len(TOPICS):
            # A repeated topic, from another unit: named as a reader would name it.
            code = UNITS[self.topic % len(UNITS)]
            title = f"{title}（{_unit_names().get(code, code)}）"
        self.topic += 1
        unit = self.rng.choice(UNITS)
        related = self.rng.sample([u for u in UNITS if u != unit], k=self.rng.randint(0, 2))
        secret = self.rng.random() < 0.1
        form = ReportIssueForm(
            title=title,
            description=f"{title}，影响企业办事体验。",
            reporting_unit=unit,
            category=category,
            related_units=related,
            classification="secret" if secret else "internal",
            estimated_budget=Decimal(self.rng.choice([50_000, 300_000, 1_200_000, 8_000_000])),
        )
        result = await report_issue_flow(form)
        self.actions += 1
        if not result.duplicate:
            n = len(self.issues)
            self.issues[result.issue_number] = {
                "unit": unit,
                "stuck": self.rng.random() < 0.15,
                "major": n in (2, 7),
                "vote_fails_first": n == 7,
                "unsolved_once": n in (1, 5),
                "returned": False,
            }

    async def advance(self, number: str, monday: dt.date) -> None:
        info, stage = self.issues[number], _stage(number)
        today = monday + dt.timedelta(days=1)
        if stage in (Stage.reported, Stage.coordinating) and self.rng.random() < 0.8:
            if info.get("awaiting_vote"):
                yes = 4 if info.pop("vote_fails_first", False) else 5
                ballots = {f"L{i}": ("yes" if i <= yes else "no") for i in range(1, 8)}
                await leadership_vote_flow(
                    number,
                    LeadershipVoteForm(
                        pre_review_passed=True,
                        ballots=ballots,
                        expert_opinions=[
                            {
                                "expert": "X1",
                                "supports": True,
                                "opinion": "方案总体可行，建议分步实施",
                            }
                        ],
                    ),
                )
                info["awaiting_vote"] = False
            else:
                # A major matter spans two regions (SPEC §2.2): add a unit from another region.
                other = "housing" if info["unit"] != "housing" else "ecology"
                units = [info["unit"], *([other] if info["major"] else [])]
                share = [100] if len(units) == 1 else [60, 40]
                budget = Decimal(
                    8_000_000 if info["major"] else self.rng.choice([0, 200_000, 900_000])
                )
                result = await coordinate_flow(
                    number,
                    CoordinateForm(
                        participants=[*units, "dev-reform"],
                        solution="明确牵头单位与配合单位，统一办理标准",
                        responsible=[
                            ResponsibleUnit(unit=u, share_percent=p)
                            for u, p in zip(units, share, strict=True)
                        ],
                        deadline=today + dt.timedelta(weeks=10),
                        budget=budget,
                    ),
                )
                info["awaiting_vote"] = result.detail.get("major", False)
                info["budget"], info["units"] = budget, units
            self.actions += 1
        elif stage == Stage.planning and self.rng.random() < 0.85:
            items = [
                ActionItemInput(
                    title=f"{label}",
                    owner_unit=self.rng.choice([info["unit"], *UNITS[:4]]),
                    due_date=today + dt.timedelta(days=self.rng.randint(14, 45)),
                    deliverable="形成书面成果并经执行小组验收",
                )
                for label in self.rng.sample(
                    [
                        "梳理现状清单",
                        "制定改革方案",
                        "系统接口改造",
                        "试点运行",
                        "制度文件印发",
                        "培训与宣贯",
                    ],
                    k=self.rng.randint(2, 4),
                )
            ]
            await file_plan_flow(
                number,
                PlanForm(
                    goal="问题销号，企业满意度达到90分",
                    sub_projects=[SubProjectInput(title="实施", action_items=items)],
                ),
            )
            self.actions += 1
            if info.get("budget") and not info.get("funded"):  # 零基预算: a line per plan
                units = info["units"]
                await self.budget.fund_plan(number, info["budget"], units[0], len(units) > 1)
                info["funded"] = True
        elif stage == Stage.executing and not info["stuck"]:
            for task_id, percent in _open_items(number):
                if self.rng.random() < 0.75:
                    new = min(100, percent + self.rng.choice([20, 30, 40, 50]))
                    note = "" if new >= percent + 30 else "配合单位材料未及时提供"
                    await record_progress_flow(
                        number,
                        ProgressForm(task_id=task_id, percent=new, note=note, reported_by="W1"),
                    )
                    self.actions += 1
        elif stage == Stage.evaluating:
            unsolved = info["unsolved_once"] and not info["returned"]
            outcome = "unsolved" if unsolved else self.rng.choice(["solved"] * 6 + ["partly"])
            info["returned"] = info["returned"] or outcome != "solved"
            await evaluate_flow(
                number,
                EvaluateForm(
                    outcome=outcome,
                    satisfaction=self.rng.randint(60, 98),
                    lessons="牵头单位要先统一标准，再推动系统改造",
                ),
            )
            self.actions += 1


async def run_demo(
    seed: int = 7,
    weeks: int = 26,
    start: dt.date = dt.date(2026, 5, 4),
    exports: Path = DEFAULT_EXPORTS,
) -> Scenario:
    scenario = Scenario(seed, start, weeks, exports)
    with Progress() as progress:
        await scenario.run(progress)
    return scenario
