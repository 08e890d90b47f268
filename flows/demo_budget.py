"""The demo's money (资金): the year's budget, a zero-based line for each funded plan with its
three reviews (三审), and each month's finance export imported into the ledger (资金台账).

Operator actions go through the budget flows, as an operator would start them in the UI:
`budget-set-fiscal-year`, `budget-review` for each review, `budget-ledger-import` for each
month's export. One step does not: a line's proposal is the first step of
`budget-line-approval`, a flow that then waits in the UI for the reviewers' resume forms;
the demo makes the same proposal with that flow's own task and gives the reviews with
`budget-review`, the flow meant for reviews given outside a waiting approval run.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import random
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from flows.budget import ledger_import, review, set_fiscal_year
from taskforce.budget.forms import ProposeLineForm, ReviewForm, SetFiscalYearForm, SubjectKind
from taskforce.budget.models import BudgetLine, LedgerEntry, LineStatus
from taskforce.db import DEFAULT_SQLITE_PATH, unit_of_work
from tasks.budget import propose_line

YEAR_TOTAL = Decimal("86000000.00")  # the demo city's year: 8,600 万元
# Who gives each review (config/org.yaml): the compliance officer, the third-party
# evaluator, then the approver whose authority covers the amount.
REVIEWERS = {"compliance": "C1", "evaluator": "V1", "executive": "E1", "leadership": "L1"}
PAYEES = ["市政务服务中心", "数据集成服务商", "政策研究院", "工程咨询公司", "培训服务机构"]


# Where the demo leaves the finance exports it imports: beside the demo database.
DEFAULT_EXPORTS = DEFAULT_SQLITE_PATH.parent / "demo-finance-exports"


class DemoBudget:
    def __init__(self, rng: random.Random, year: int, exports: Path = DEFAULT_EXPORTS):
        self.rng, self.year, self.exports = rng, year, exports
        self.actions = 0

    async def fund_year(self) -> None:
        form = SetFiscalYearForm(year=self.year, total=YEAR_TOTAL, decided_by="L1")
        await asyncio.to_thread(set_fiscal_year, form=form, actor="E1")
        self.actions += 1

    async def fund_plan(
        self, number: str, amount: Decimal, owner_unit: str, cross_department: bool
    ) -> str:
        """Propose the plan's zero-based line and take it through its reviews. Returns its status."""
        code = f"FY{self.year}-{number.rsplit('-', 1)[-1]}"
        form = ProposeLineForm(
            code=code,
            fiscal_year=self.year,
            issue_number=number,
            purpose="方案实施所需的系统改造、咨询与培训经费",
            output_target="方案所列行动项全部按期完成并通过验收",
            benefit_target="企业办事时长压减30%，满意度不低于90分",
            amount=amount,
            cross_department=cross_department,
            owner_unit=owner_unit,
        )
        proposed = await asyncio.to_thread(propose_line.fn, form, "E3", f"demo:line:{code}")
        self.actions += 1
        status = proposed["status"]
        for stage in proposed["stages"]:
            given = ReviewForm(
                subject=SubjectKind.line,
                line_code=code,
                reviewer=REVIEWERS[stage],
                approved=True,
                comment="目标明确、测算依据充分，同意",
            )
            status = (await asyncio.to_thread(review, form=given))["status"]
            self.actions += 1
        return status

    async def import_month(self, first_of_month: dt.date) -> Path | None:
        """Import the finance export of the month before `first_of_month`: one payment per
        approved line, 8–20 % of the line, never beyond what is left of it."""
        month_end = first_of_month - dt.timedelta(days=1)
        rows = []
        for code, amount_fen, spent_fen in _approved_lines(self.year):
            left = amount_fen - spent_fen
            pay = min(left, amount_fen * self.rng.randint(8, 20) // 100)
            if pay <= 0:
                continue
            day = _weekday_on_or_before(month_end.replace(day=self.rng.randint(5, 25)))
            rows.append(
                {
                    "凭证号": f"PZ{month_end:%Y%m}-{code}",
                    "日期": day.isoformat(),
                    "预算行": code,
                    "类型": "支出",
                    "金额": f"{Decimal(pay) / 100:.2f}",
                    "收款人": self.rng.choice(PAYEES),
                    "摘要": f"{month_end:%Y年%m月}{code}项目进度款",
                }
            )
        if not rows:
            return None
        path = self.exports / f"finance-export-{month_end:%Y-%m}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8-sig") as out:  # as Excel saves it
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        await asyncio.to_thread(ledger_import, path=str(path), actor="C1")
        self.actions += 1
        return path


def _approved_lines(year: int) -> list[tuple[str, int, int]]:
    """(code, amount, spent) of the year's approved lines, reserve excluded, in code order."""
    spent = (
        select(LedgerEntry.line_id, func.sum(LedgerEntry.amount_fen).label("fen"))
        .group_by(LedgerEntry.line_id)
        .subquery()
    )
    with unit_of_work() as s:
        return [
            (code, amount, paid or 0)
            for code, amount, paid in s.execute(
                select(BudgetLine.code, BudgetLine.amount_fen, spent.c.fen)
                .outerjoin(spent, spent.c.line_id == BudgetLine.id)
                .where(
                    BudgetLine.fiscal_year == year,
                    BudgetLine.status == LineStatus.approved,
                    BudgetLine.is_reserve.is_(False),
                )
                .order_by(BudgetLine.code)
            )
        ]


def _weekday_on_or_before(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day
