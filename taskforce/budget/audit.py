"""The weekly compliance audit of the budget (周合规检查, SPEC §4).

Set-based (ARCHITECTURE.md rule 7): a fixed handful of SQL queries fetch the
columns the checks need — ledger spending is aggregated per line and day in
the database — and pandas does the rest. The number of statements does not
grow with the number of ledger entries.

The audit is "as of" the end of an ISO week (local time), so it can be run for
any past week: approvals after that instant, entries dated after that day and
adjustments decided after it are not yet in force.

Findings have a stable identity (`finding_key` = check + subject), so a re-run
for the same week adds no duplicates; a finding no longer found in a week at or
after its last sighting is marked resolved in that week, and reopens if found
again later.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from taskforce import events
from taskforce.authority import may_approve, route_amount
from taskforce.budget.models import (
    AuditFinding,
    BudgetAdjustment,
    BudgetLine,
    BudgetReview,
    DisbursementSchedule,
    FiscalYear,
    LedgerEntry,
    LedgerKind,
    LineStatus,
    ReviewStage,
    Severity,
)
from taskforce.budget.periods import Period, iso_week, started, within_recorded_years
from taskforce.budget.service import required_reserve_fen
from taskforce.context import Context
from taskforce.emergency.models import Emergency
from taskforce.money import to_yuan
from taskforce.notify.outbox import enqueue
from taskforce.org.models import Unit
from taskforce.org.names import owner_names
from taskforce.policy.schema import Classification, GroupKind, Policy

CHECKS = (
    "unapproved_spending",
    "overspend",
    "approval_beyond_authority",
    "adjustment_without_procedure",
    "behind_schedule",
    "reserve_without_emergency",
    "reserve_below_share",
)
SEVERITY_RANK = {s.value: i for i, s in enumerate(Severity)}
FINDING_COLUMNS = [
    "finding_key",
    "check",
    "severity",
    "owner",
    "subject_type",
    "subject_id",
    "fiscal_year",
    "amount_fen",
    "summary",
    "summary_zh",
    "classification",
    "status",
    "first_seen_week",
    "last_seen_week",
    "resolved_week",
]


@dataclass
class Finding:
    check: str
    subject_type: str
    subject_id: str
    owner: str
    fiscal_year: int
    summary: str
    amount_fen: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    classification: str = Classification.internal.value  # of the line concerned
    # The same finding for the Chinese report's 说明 column (`summary` stays the English text
    # of the trail, the Markdown report and the Prefect artifact).
    summary_zh: str = ""

    @property
    def key(self) -> str:
        return f"{self.check}:{self.subject_type}:{self.subject_id}"


@dataclass
class AuditResult:
    week: str
    period: Period
    findings: pd.DataFrame  # FINDING_COLUMNS: this week's findings and those resolved this week
    lines: pd.DataFrame  # per line: amount, spent, scheduled, status (the report's overview)
    summary: dict[str, Any]
    new_keys: list[str]


# --- reading -----------------------------------------------------------------


def _frame(session: Session, query, columns: list[str]) -> pd.DataFrame:
    rows = session.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _load(session: Session, period: Period, cutoff: dt.datetime) -> dict[str, pd.DataFrame]:
    years = period.fiscal_years
    end = period.end
    data: dict[str, pd.DataFrame] = {}
    data["years"] = _frame(
        session,
        select(FiscalYear.year, FiscalYear.total_fen, FiscalYear.reserve_fen).where(
            FiscalYear.year.in_(years)
        ),
        ["year", "total_fen", "reserve_fen"],
    )
    data["lines"] = _frame(
        session,
        select(
            BudgetLine.id,
            BudgetLine.code,
            BudgetLine.fiscal_year,
            BudgetLine.is_reserve,
            BudgetLine.amount_fen,
            BudgetLine.status,
            BudgetLine.approved_by,
            BudgetLine.approved_at,
            BudgetLine.cross_department,
            BudgetLine.classification,
            Unit.code,
        )
        .outerjoin(Unit, Unit.id == BudgetLine.owner_unit_id)
        .where(BudgetLine.fiscal_year.in_(years)),
        [
            "line_id",
            "code",
            "fiscal_year",
            "is_reserve",
            "amount_fen",
            "status",
            "approved_by",
            "approved_at",
            "cross_department",
            "classification",
            "owner_unit",
        ],
    )
    line_ids = select(BudgetLine.id).where(BudgetLine.fiscal_year.in_(years)).scalar_subquery()
    data["adjustments"] = _frame(
        session,
        select(
            BudgetAdjustment.id,
            BudgetAdjustment.line_id,
            BudgetAdjustment.delta_fen,
            BudgetAdjustment.status,
            BudgetAdjustment.approved_by,
            BudgetAdjustment.decided_at,
        ).where(BudgetAdjustment.line_id.in_(line_ids)),
        ["adjustment_id", "line_id", "delta_fen", "status", "approved_by", "decided_at"],
    )
    data["reviews"] = _frame(
        session,
        select(
            BudgetReview.id,
            BudgetReview.line_id,
            BudgetReview.adjustment_id,
            BudgetReview.stage,
            BudgetReview.reviewer_group,
            BudgetReview.approved,
            BudgetReview.amount_fen,
            BudgetReview.at,
        ).where(BudgetReview.line_id.in_(line_ids), BudgetReview.at <= cutoff),
        [
            "review_id",
            "line_id",
            "adjustment_id",
            "stage",
            "reviewer_group",
            "approved",
            "amount_fen",
            "at",
        ],
    )
    in_scope = (LedgerEntry.fiscal_year.in_(years), LedgerEntry.entry_date <= end)
    # Spending per line, day and kind: the database sums, pandas never sees an entry.
    data["spending"] = _frame(
        session,
        select(
            LedgerEntry.line_id,
            LedgerEntry.entry_date,
            LedgerEntry.kind,
            func.sum(LedgerEntry.amount_fen),
            func.count(LedgerEntry.id),
        )
        .where(*in_scope, LedgerEntry.line_id.is_not(None))
        .group_by(LedgerEntry.line_id, LedgerEntry.entry_date, LedgerEntry.kind),
        ["line_id", "entry_date", "kind", "amount_fen", "entries"],
    )
    # Entries that are findings one by one: spending without any line, and reserve draws.
    reserve_ids = select(BudgetLine.id).where(BudgetLine.is_reserve.is_(True)).scalar_subquery()
    data["entries"] = _frame(
        session,
        select(
            LedgerEntry.id,
            LedgerEntry.fiscal_year,
            LedgerEntry.line_id,
            LedgerEntry.kind,
            LedgerEntry.entry_date,
            LedgerEntry.amount_fen,
            LedgerEntry.external_ref,
            LedgerEntry.emergency_id,
            Emergency.opened_at,
            Emergency.is_drill,
        )
        .outerjoin(Emergency, Emergency.id == LedgerEntry.emergency_id)
        .where(
            *in_scope,
            or_(
                LedgerEntry.line_id.is_(None),
                LedgerEntry.kind == LedgerKind.reserve_draw,
                LedgerEntry.line_id.in_(reserve_ids),
            ),
        ),
        [
            "entry_id",
            "fiscal_year",
            "line_id",
            "kind",
            "entry_date",
            "amount_fen",
            "external_ref",
            "emergency_id",
            "emergency_opened_at",
            "emergency_is_drill",
        ],
    )
    data["schedule"] = _frame(
        session,
        select(DisbursementSchedule.line_id, func.sum(DisbursementSchedule.amount_fen))
        .where(DisbursementSchedule.line_id.in_(line_ids), DisbursementSchedule.due_date <= end)
        .group_by(DisbursementSchedule.line_id),
        ["line_id", "scheduled_fen"],
    )
    data["existing"] = _frame(
        session,
        select(
            AuditFinding.id,
            AuditFinding.finding_key,
            AuditFinding.check_name,
            AuditFinding.owner,
            AuditFinding.subject_type,
            AuditFinding.subject_id,
            AuditFinding.severity,
            AuditFinding.detail,
            AuditFinding.first_seen_week,
            AuditFinding.last_seen_week,
            AuditFinding.resolved,
            AuditFinding.resolved_week,
        ),
        [
            "id",
            "finding_key",
            "check",
            "owner",
            "subject_type",
            "subject_id",
            "severity",
            "detail",
            "first_seen_week",
            "last_seen_week",
            "resolved",
            "resolved_week",
        ],
    )
    return data


# --- the checks --------------------------------------------------------------


def _group_kind(group_code: str | None) -> str:
    if not group_code:
        return ""
    if group_code.startswith("wg:"):
        return GroupKind.working_group.value
    return group_code


def _yuan(fen: int) -> str:
    return f"{to_yuan(int(fen)):,}"


# The Chinese words of the findings' texts (seed: 分级授权; 三审: 初审 by the compliance
# officer, 复审 by the third-party evaluator, 终审 by the approving group; 资金拨付进度).
_LINE_STATUS_ZH = {
    LineStatus.proposed.value: "待审",
    LineStatus.in_review.value: "审核中",
    LineStatus.approved.value: "已批准",
    LineStatus.rejected.value: "已驳回",
}
_STAGE_ZH = {
    "compliance": "初审（合规审核）",
    "evaluator": "复审（第三方评估）",
    "approval": "终审",
}


def _group_zh(code: str | None) -> str:
    """A group's (or a unit's) Chinese name from config/org.yaml; its code if it has none."""
    if not code:
        return "（未记录审批组）"
    return owner_names("zh-CN").get(code, code)


def _authority_rule_zh(
    group: str | None, amount_fen: int, policy: Policy, *, cross_department: bool
) -> str:
    """Why an approval was beyond its approver's authority, in Chinese: the rule
    `authority.route_amount` applied (`rule_zh` beside the English `rule`)."""
    kind = _group_kind(group)
    if kind not in {g.value for g in GroupKind}:
        return f"{_group_zh(group)}不是审批组"
    rule = route_amount(amount_fen, policy.authority, cross_department=cross_department).rule_zh
    if kind not in (GroupKind.executive.value, GroupKind.leadership.value):
        return f"{_group_zh(group)}无审批权限；{rule}"
    return rule


@dataclass
class _State:
    """The ledger as of the cutoff, per line, computed once for all checks."""

    lines: pd.DataFrame  # + amount_asof, approved_asof, approval_day, spent, owner
    spending: pd.DataFrame
    reviews: pd.DataFrame
    adjustments: pd.DataFrame
    entries: pd.DataFrame
    years: pd.DataFrame


# A line's status in an audit's line list when it was approved only after the audited
# period ended: the period's reader saw it unapproved, and its approved total leaves it out.
APPROVED_LATER = "approved_later"


def _status_at_cutoff(lines: pd.DataFrame, reviews: pd.DataFrame) -> pd.Series:
    """Each line's status as the audited period ended (`reviews`: those up to the cutoff).
    Approved later: APPROVED_LATER. Rejected later: in review if a review came before the
    cutoff, else proposed."""
    status = lines["status"].copy()
    approved_later = (status == LineStatus.approved.value) & ~lines["approved_asof"].astype(bool)
    status[approved_later] = APPROVED_LATER
    own = reviews[reviews["adjustment_id"].isna()]  # the line's reviews, not its adjustments'
    rejected_by_cutoff = own.loc[~own["approved"].astype(bool), "line_id"]
    rejected_later = (status == LineStatus.rejected.value) & ~lines["line_id"].isin(
        rejected_by_cutoff
    )
    reviewed = lines["line_id"].isin(own["line_id"])
    status[rejected_later & reviewed] = LineStatus.in_review.value
    status[rejected_later & ~reviewed] = LineStatus.proposed.value
    return status


def _state(data: dict[str, pd.DataFrame], cutoff: dt.datetime, policy: Policy) -> _State:
    tz = ZoneInfo(policy.timezone)
    lines = data["lines"].copy()
    adjustments = data["adjustments"].copy()
    adjustments["status"] = adjustments["status"].map(lambda s: LineStatus(s).value)
    adjustments["approved_asof"] = (
        adjustments["status"] == LineStatus.approved.value
    ) & adjustments["decided_at"].map(lambda t: t is not None and t <= cutoff)
    later = adjustments[
        (adjustments["status"] == LineStatus.approved.value) & ~adjustments["approved_asof"]
    ]
    undo = later.groupby("line_id")["delta_fen"].sum()
    applied = adjustments[adjustments["approved_asof"]].groupby("line_id")["delta_fen"].sum()
    lines["status"] = lines["status"].map(lambda s: LineStatus(s).value)
    lines["amount_asof"] = lines["amount_fen"] - lines["line_id"].map(undo).fillna(0).astype(
        "int64"
    )
    lines["adjusted_fen"] = lines["line_id"].map(applied).fillna(0).astype("int64")
    lines["approved_asof"] = (lines["status"] == LineStatus.approved.value) & lines[
        "approved_at"
    ].map(lambda t: t is not None and not pd.isna(t) and t <= cutoff)
    lines["approval_day"] = lines["approved_at"].map(
        lambda t: t.astimezone(tz).date() if t is not None and not pd.isna(t) else None
    )
    lines["owner"] = lines["owner_unit"].fillna(GroupKind.executive.value)
    spending = data["spending"].copy()
    spent = (
        spending.groupby("line_id")["amount_fen"].sum()
        if not spending.empty
        else pd.Series(dtype="int64")
    )
    lines["spent_fen"] = lines["line_id"].map(spent).fillna(0).astype("int64")
    scheduled = (
        data["schedule"].set_index("line_id")["scheduled_fen"] if not data["schedule"].empty else {}
    )
    lines["scheduled_fen"] = lines["line_id"].map(scheduled).fillna(0).astype("int64")
    reviews = data["reviews"].copy()
    reviews["stage"] = reviews["stage"].map(lambda s: ReviewStage(s).value)
    lines["status_asof"] = _status_at_cutoff(lines, reviews)
    return _State(lines, spending, reviews, adjustments, data["entries"], data["years"])


def check_unapproved_spending(state: _State, policy: Policy) -> list[Finding]:
    out = []
    lines = state.lines[~state.lines["is_reserve"].astype(bool)]
    spending = state.spending.merge(
        lines[["line_id", "approved_asof", "approval_day"]], on="line_id"
    )
    # Unapproved: the line was not approved by the cutoff, or the entry predates its approval.
    early_mask = ~spending["approved_asof"].astype(bool) | (
        spending["entry_date"] < spending["approval_day"].where(spending["approved_asof"], None)
    ).fillna(False)
    early = (
        spending[early_mask]
        .groupby("line_id")
        .agg(amount=("amount_fen", "sum"), entries=("entries", "sum"), first=("entry_date", "min"))
    )
    for line in lines[lines["line_id"].isin(early.index)].itertuples():
        hit = early.loc[line.line_id]
        if line.approved_asof:
            why = f"spent before the line was approved on {line.approval_day}"
            why_zh = f"支出早于预算行批准日（{line.approval_day}）"
        elif line.status_asof == APPROVED_LATER:
            why = (
                "spent on a line not yet approved when the period ended "
                f"(approved on {line.approval_day})"
            )
            why_zh = f"支出时预算行尚未批准（{line.approval_day} 才获批准）"
        else:  # as the line stood when the period ended (a later rejection not yet made)
            status = line.status_asof
            why = f"spent on a line that is {status}, not approved"
            why_zh = f"支出时预算行尚未批准（状态：{_LINE_STATUS_ZH.get(status, status)}）"
        amount = int(hit["amount"])
        if amount > 0:
            out.append(
                Finding(
                    "unapproved_spending",
                    "budget_line",
                    line.code,
                    line.owner,
                    int(line.fiscal_year),
                    f"{line.code}: {_yuan(amount)} CNY {why}",
                    amount,
                    {"entries": int(hit["entries"]), "first_date": str(hit["first"])},
                    summary_zh=f"{line.code}：{_yuan(amount)} 元{why_zh}",
                )
            )
    no_line = state.entries[state.entries["line_id"].isna()]
    no_line = no_line[no_line["kind"].map(lambda k: LedgerKind(k) == LedgerKind.disbursement)]
    for entry in no_line.itertuples():
        out.append(
            Finding(
                "unapproved_spending",
                "ledger_entry",
                str(entry.entry_id),
                GroupKind.executive.value,
                int(entry.fiscal_year),
                f"{_named(entry, 'entry', '台账分录')[0]} of {entry.entry_date}: "
                f"{_yuan(entry.amount_fen)} CNY "
                "spent without a budget line",
                int(entry.amount_fen),
                {"external_ref": entry.external_ref, "entry_date": str(entry.entry_date)},
                summary_zh=f"{_named(entry, 'entry', '台账分录')[1]}（{entry.entry_date}）："
                f"{_yuan(entry.amount_fen)} 元支出无对应预算行",
            )
        )
    return out


# A ledger row without a voucher number is kept under a hash of its content ("row:b538…",
# ledger.content_ref): a reader is told it had none, and its entry number to find it by.
def _named(entry, kind_en: str, kind_zh: str) -> tuple[str, str]:
    """("entry voucher:V-17", "台账分录 voucher:V-17"), or ("entry 12 (no voucher)",
    "无凭证号的台账分录 12")."""
    ref = str(entry.external_ref)
    if ref.startswith("row:"):
        return f"{kind_en} {entry.entry_id} (no voucher)", f"无凭证号的{kind_zh} {entry.entry_id}"
    return f"{kind_en} {ref}", f"{kind_zh} {ref}"


def check_overspend(state: _State, policy: Policy) -> list[Finding]:
    lines = state.lines[
        state.lines["approved_asof"] & (state.lines["spent_fen"] > state.lines["amount_asof"])
    ]
    return [
        Finding(
            "overspend",
            "budget_line",
            line.code,
            line.owner,
            int(line.fiscal_year),
            f"{line.code}: spent {_yuan(line.spent_fen)} CNY of {_yuan(line.amount_asof)} CNY, "
            f"{_yuan(line.spent_fen - line.amount_asof)} CNY over",
            int(line.spent_fen - line.amount_asof),
            {"spent_fen": int(line.spent_fen), "amount_fen": int(line.amount_asof)},
            summary_zh=f"{line.code}：预算 {_yuan(line.amount_asof)} 元，已支出 "
            f"{_yuan(line.spent_fen)} 元，超支 {_yuan(line.spent_fen - line.amount_asof)} 元",
        )
        for line in lines.itertuples()
    ]


def check_approval_beyond_authority(state: _State, policy: Policy) -> list[Finding]:
    out = []
    approvals = state.reviews[
        state.reviews["approved"].astype(bool)
        & state.reviews["stage"].isin([ReviewStage.executive.value, ReviewStage.leadership.value])
    ]
    lines = state.lines.set_index("line_id")
    for review in approvals.itertuples():
        if review.line_id not in lines.index:
            continue
        line = lines.loc[review.line_id]
        kind = _group_kind(review.reviewer_group)
        allowed = (
            kind in {g.value for g in GroupKind}
            and may_approve(
                kind,
                int(review.amount_fen),
                policy.authority,
                cross_department=bool(line["cross_department"]),
            ).allowed
        )
        if allowed:
            continue
        rule = (
            may_approve(
                kind,
                int(review.amount_fen),
                policy.authority,
                cross_department=bool(line["cross_department"]),
            ).rule
            if kind in {g.value for g in GroupKind}
            else f"{review.reviewer_group} is not an approving group"
        )
        adjustment = review.adjustment_id is not None and not pd.isna(review.adjustment_id)
        subject_type, subject_id = (
            ("budget_adjustment", str(int(review.adjustment_id)))
            if adjustment
            else ("budget_line", line["code"])
        )
        out.append(
            Finding(
                "approval_beyond_authority",
                subject_type,
                subject_id,
                review.reviewer_group or GroupKind.executive.value,
                int(line["fiscal_year"]),
                f"{'adjustment ' + subject_id + ' of ' if adjustment else ''}{line['code']}: "
                f"{_yuan(review.amount_fen)} CNY approved by {review.reviewer_group}; {rule}",
                int(review.amount_fen),
                {"review_id": int(review.review_id), "rule": rule, "line": line["code"]},
                summary_zh=f"{'预算调整 ' + subject_id + '（' if adjustment else ''}{line['code']}"
                f"{'）' if adjustment else ''}：{_yuan(review.amount_fen)} 元由"
                f"{_group_zh(review.reviewer_group)}批准；"
                + _authority_rule_zh(
                    review.reviewer_group,
                    int(review.amount_fen),
                    policy,
                    cross_department=bool(line["cross_department"]),
                ),
            )
        )
    return out


def _procedure_gaps(
    reviews: pd.DataFrame, decided_at: dt.datetime | None, policy: Policy
) -> tuple[list[str], str]:
    """What is missing from compliance → evaluator → approval, or out of order, before
    decided_at: the gaps in English (the finding's detail), and all of them in Chinese."""
    ok = reviews[reviews["approved"].astype(bool)]
    if decided_at is not None:
        ok = ok[ok["at"] <= decided_at]
    order = [s for s in policy.budget.reviews if s != ReviewStage.leadership.value] + ["approval"]
    first: dict[str, dt.datetime] = {}
    for stage in order:
        if stage == "approval":
            hits = ok[ok["stage"].isin([ReviewStage.executive.value, ReviewStage.leadership.value])]
        else:
            hits = ok[ok["stage"] == stage]
        if not hits.empty:
            first[stage] = hits["at"].min()
    missing = [stage for stage in order if stage not in first]
    gaps = [f"no {stage} review" for stage in missing]
    zh = ["未经" + "、".join(_STAGE_ZH.get(stage, stage) for stage in missing)] if missing else []
    seen = [first[s] for s in order if s in first]
    if seen != sorted(seen):
        gaps.append(f"reviews out of order (required: {' → '.join(order)})")
        zh.append(f"审核顺序不符（应为：{' → '.join(_STAGE_ZH.get(s, s) for s in order)}）")
    return gaps, "；".join(zh)


def check_adjustment_without_procedure(state: _State, policy: Policy) -> list[Finding]:
    out = []
    lines = state.lines.set_index("line_id")
    adjustments = state.adjustments[state.adjustments["approved_asof"]]
    for adj in adjustments.itertuples():
        if adj.line_id not in lines.index:
            continue
        line = lines.loc[adj.line_id]
        mine = state.reviews[state.reviews["adjustment_id"] == adj.adjustment_id]
        gaps, gaps_zh = _procedure_gaps(mine, adj.decided_at, policy)
        if gaps:
            out.append(
                Finding(
                    "adjustment_without_procedure",
                    "budget_adjustment",
                    str(int(adj.adjustment_id)),
                    GroupKind.executive.value,
                    int(line["fiscal_year"]),
                    f"adjustment {int(adj.adjustment_id)} of {line['code']} ({_yuan(adj.delta_fen)} CNY) "
                    f"approved with {'; '.join(gaps)}",
                    abs(int(adj.delta_fen)),
                    {"gaps": gaps, "line": line["code"]},
                    summary_zh=f"预算调整 {int(adj.adjustment_id)}（{line['code']}，"
                    f"{'调增' if adj.delta_fen >= 0 else '调减'} {_yuan(abs(adj.delta_fen))} 元）"
                    f"批准前{gaps_zh}",
                )
            )
    line_reviews = state.reviews[state.reviews["adjustment_id"].isna()]
    # The reserve line is left out: its amount is set with the fiscal year (a reset
    # replaces it), and a reserve short of its share is reserve_below_share's finding.
    ordinary = state.lines[state.lines["approved_asof"] & ~state.lines["is_reserve"].astype(bool)]
    for line in ordinary.itertuples():
        mine = line_reviews[line_reviews["line_id"] == line.line_id]
        gaps, gaps_zh = _procedure_gaps(mine, line.approved_at, policy)
        if gaps:
            out.append(
                Finding(
                    "adjustment_without_procedure",
                    "budget_line",
                    line.code,
                    line.owner,
                    int(line.fiscal_year),
                    f"{line.code} approved with {'; '.join(gaps)}",
                    int(line.amount_asof),
                    {"gaps": gaps},
                    summary_zh=f"{line.code} 批准前{gaps_zh}",
                )
            )
            continue
        approvals = mine[
            mine["approved"].astype(bool)
            & mine["stage"].isin([ReviewStage.executive.value, ReviewStage.leadership.value])
        ]
        # What the approver approved, plus approved adjustments, must be the amount now.
        approved_amount = int(approvals.sort_values("at")["amount_fen"].iloc[-1])
        expected = approved_amount + int(line.adjusted_fen)
        if int(line.amount_asof) != expected:
            out.append(
                Finding(
                    "adjustment_without_procedure",
                    "budget_line",
                    f"{line.code}:amount",
                    line.owner,
                    int(line.fiscal_year),
                    f"{line.code}: amount is {_yuan(line.amount_asof)} CNY, but approvals and approved "
                    f"adjustments account for {_yuan(expected)} CNY",
                    abs(int(line.amount_asof) - expected),
                    {"amount_fen": int(line.amount_asof), "explained_fen": expected},
                    summary_zh=f"{line.code}：预算额为 {_yuan(line.amount_asof)} 元，但批准额与"
                    f"已批准调整合计为 {_yuan(expected)} 元",
                )
            )
    return out


def check_behind_schedule(state: _State, policy: Policy) -> list[Finding]:
    lines = state.lines[
        state.lines["approved_asof"]
        & ~state.lines["is_reserve"].astype(bool)
        & (state.lines["spent_fen"] < state.lines["scheduled_fen"])
    ]
    return [
        Finding(
            "behind_schedule",
            "budget_line",
            line.code,
            line.owner,
            int(line.fiscal_year),
            f"{line.code}: {_yuan(line.spent_fen)} CNY disbursed of {_yuan(line.scheduled_fen)} CNY "
            f"scheduled by the end of the week, {_yuan(line.scheduled_fen - line.spent_fen)} CNY behind",
            int(line.scheduled_fen - line.spent_fen),
            {"spent_fen": int(line.spent_fen), "scheduled_fen": int(line.scheduled_fen)},
            summary_zh=f"{line.code}：截至本周末计划拨付 {_yuan(line.scheduled_fen)} 元，"
            f"实际拨付 {_yuan(line.spent_fen)} 元，滞后 "
            f"{_yuan(line.scheduled_fen - line.spent_fen)} 元",
        )
        for line in lines.itertuples()
    ]


def check_reserve_without_emergency(state: _State, policy: Policy) -> list[Finding]:
    tz = ZoneInfo(policy.timezone)
    reserve_ids = set(state.lines.loc[state.lines["is_reserve"].astype(bool), "line_id"])
    draws = state.entries[
        state.entries["line_id"].isin(reserve_ids)
        | state.entries["kind"].map(lambda k: LedgerKind(k) == LedgerKind.reserve_draw)
    ]
    out = []
    for entry in draws.itertuples():
        if entry.emergency_id is None or pd.isna(entry.emergency_id):
            why, why_zh = "no emergency named", "未关联应急事件"
        elif bool(entry.emergency_is_drill):
            why = f"emergency {int(entry.emergency_id)} is a drill"
            why_zh = f"应急事件 {int(entry.emergency_id)} 为演练"
        elif entry.emergency_opened_at.astimezone(tz).date() > entry.entry_date:
            why = f"emergency {int(entry.emergency_id)} opened after the draw"
            why_zh = f"应急事件 {int(entry.emergency_id)} 启动晚于动用日期"
        else:
            continue
        out.append(
            Finding(
                "reserve_without_emergency",
                "ledger_entry",
                str(entry.entry_id),
                GroupKind.executive.value,
                int(entry.fiscal_year),
                f"{_named(entry, 'reserve draw', '应急预留动用')[0]} of {entry.entry_date}: "
                f"{_yuan(entry.amount_fen)} CNY, {why}",
                int(entry.amount_fen),
                {"external_ref": entry.external_ref, "reason": why},
                summary_zh=f"{_named(entry, 'reserve draw', '应急预留动用')[1]}（{entry.entry_date}）："
                f"{_yuan(entry.amount_fen)} 元，{why_zh}",
            )
        )
    return out


def check_reserve_below_share(state: _State, policy: Policy) -> list[Finding]:
    out = []
    lines = state.lines
    for year in state.years.itertuples():
        mine = lines[lines["fiscal_year"] == year.year]
        reserve = int(mine.loc[mine["is_reserve"].astype(bool), "amount_asof"].sum())
        allocated = int(
            mine.loc[~mine["is_reserve"].astype(bool) & mine["approved_asof"], "amount_asof"].sum()
        )
        required = required_reserve_fen(int(year.total_fen), policy)
        available = min(reserve, int(year.total_fen) - allocated)
        if available < required:
            out.append(
                Finding(
                    "reserve_below_share",
                    "fiscal_year",
                    str(year.year),
                    GroupKind.leadership.value,
                    int(year.year),
                    f"{year.year}: the emergency reserve holds {_yuan(max(available, 0))} CNY, "
                    f"below the required {policy.budget.emergency_reserve_share:.0%} "
                    f"({_yuan(required)} CNY)",
                    required - available,
                    {"reserve_fen": reserve, "allocated_fen": allocated, "required_fen": required},
                    summary_zh=f"{year.year} 年度：应急预留可用 {_yuan(max(available, 0))} 元，"
                    f"低于年度预算 {policy.budget.emergency_reserve_share:.0%} 的规定"
                    f"（应为 {_yuan(required)} 元）",
                )
            )
    return out


CHECK_FUNCTIONS = {
    "unapproved_spending": check_unapproved_spending,
    "overspend": check_overspend,
    "approval_beyond_authority": check_approval_beyond_authority,
    "adjustment_without_procedure": check_adjustment_without_procedure,
    "behind_schedule": check_behind_schedule,
    "reserve_without_emergency": check_reserve_without_emergency,
    "reserve_below_share": check_reserve_below_share,
}


# --- the run -----------------------------------------------------------------


def run_audit(
    session: Session, ctx: Context, week: str, *, actor: str = "budget-audit"
) -> AuditResult:
    """Audit the ledger as of the end of `week`, record findings (idempotently), notify."""
    policy = ctx.policy
    period = within_recorded_years(session, started(iso_week(week), ctx.today(), "week"), "week")
    cutoff = ctx.end_of(period.end)
    data = _load(session, period, cutoff)
    state = _state(data, cutoff, policy)
    found: list[Finding] = []
    for name in CHECKS:
        found.extend(CHECK_FUNCTIONS[name](state, policy))
    classification = dict(zip(state.lines["code"], state.lines["classification"], strict=True))
    for f in found:
        code = f.detail.get("line") or (
            f.subject_id.split(":")[0] if f.subject_type == "budget_line" else None
        )
        if code in classification:
            f.classification = Classification(classification[code]).value
    findings, new_keys = _reconcile(session, policy, week, period, found, data["existing"])
    severe = [
        k
        for k in new_keys
        if SEVERITY_RANK[policy.budget.audit_severity[k.split(":", 1)[0]]]
        >= SEVERITY_RANK[policy.budget.severe_from]
    ]
    summary = _summary(week, period, state, findings, new_keys, severe)
    # A week still running (an operator may look mid-week; the schedule audits the last
    # finished one): the reports say the ledger is read as of now, and may still change.
    now = ctx.now()
    summary["in_progress"] = now < cutoff
    summary["as_of"] = (
        min(now, cutoff).astimezone(ZoneInfo(policy.timezone)).strftime("%Y-%m-%d %H:%M")
    )
    entry = events.record(
        session,
        policy,
        at=ctx.now(),
        actor=actor,
        action="budget.audit_run",
        subject_type="budget_audit",
        subject_id=week,
        payload={
            k: v for k, v in summary.items() if k in ("week", "open", "new", "resolved", "by_check")
        },
        notify="audit_finding" if new_keys else None,
        context={"week": week, "new": len(new_keys), "open": summary["open"]},
    )
    if severe:
        enqueue(
            session,
            event_kind="audit_finding_severe",
            key=f"trail:{entry.id}:audit_finding_severe",
            subject_type="budget_audit",
            subject_id=week,
            classification=entry.classification,
            context={"week": week, "severe": len(severe)},
            at=ctx.now(),
            routing=policy.notifications,
            trail_entry_id=entry.id,
        )
    lines = state.lines.assign(status=state.lines["status_asof"])[
        [
            "code",
            "fiscal_year",
            "is_reserve",
            "status",
            "owner",
            "amount_asof",
            "spent_fen",
            "scheduled_fen",
        ]
    ].rename(columns={"amount_asof": "amount_fen"})
    return AuditResult(
        week, period, findings, lines.sort_values("code").reset_index(drop=True), summary, new_keys
    )


def _reconcile(
    session: Session,
    policy: Policy,
    week: str,
    period: Period,
    found: list[Finding],
    existing: pd.DataFrame,
) -> tuple[pd.DataFrame, list[str]]:
    """Insert new findings, refresh seen ones, resolve the ones gone — two set-based writes."""
    current = {f.key: f for f in found}  # one finding per key, the last check wins
    known = {row.finding_key: row for row in existing.itertuples()}
    inserts, updates, rows, new_keys = [], [], [], []
    for key, f in current.items():
        severity = policy.budget.audit_severity[f.check]
        detail = {
            **f.detail,
            "fiscal_year": f.fiscal_year,
            "summary": f.summary,
            "summary_zh": f.summary_zh,
            "amount_fen": f.amount_fen,
            "classification": f.classification,
        }
        old = known.get(key)
        if old is None:
            inserts.append(
                {
                    "finding_key": key,
                    "check_name": f.check,
                    "severity": Severity(severity),
                    "owner": f.owner,
                    "subject_type": f.subject_type,
                    "subject_id": f.subject_id,
                    "detail": detail,
                    "first_seen_week": week,
                    "last_seen_week": week,
                    "resolved": False,
                    "resolved_week": None,
                }
            )
            new_keys.append(key)
            status, first, last, resolved_week = "new", week, week, None
        else:
            first, last = min(old.first_seen_week, week), max(old.last_seen_week, week)
            reopened = bool(old.resolved) and week >= (old.resolved_week or "")
            change = {"id": int(old.id), "first_seen_week": first, "last_seen_week": last}
            if week >= old.last_seen_week:  # the latest view of the finding wins
                change.update(severity=Severity(severity), owner=f.owner, detail=detail)
            if reopened:
                change.update(resolved=False, resolved_week=None)
                new_keys.append(key)
            updates.append(change)
            still_resolved = bool(old.resolved) and not reopened
            status = "reopened" if reopened else ("resolved" if still_resolved else "open")
            resolved_week = old.resolved_week if still_resolved else None
        rows.append(
            {
                "finding_key": key,
                "check": f.check,
                "severity": severity,
                "owner": f.owner,
                "subject_type": f.subject_type,
                "subject_id": f.subject_id,
                "fiscal_year": f.fiscal_year,
                "amount_fen": f.amount_fen,
                "summary": f.summary,
                "summary_zh": f.summary_zh,
                "classification": f.classification,
                "status": status,
                "first_seen_week": first,
                "last_seen_week": last,
                "resolved_week": resolved_week,
            }
        )
    years = set(period.fiscal_years)
    for old in existing.itertuples():
        if old.finding_key in current or (old.detail or {}).get("fiscal_year") not in years:
            continue
        if old.first_seen_week > week:
            continue  # found only after the audited week: not this week's business
        if not old.resolved and old.last_seen_week <= week:
            updates.append({"id": int(old.id), "resolved": True, "resolved_week": week})
            resolved_week = week
        elif old.resolved and old.resolved_week == week:
            resolved_week = week
        else:
            continue
        rows.append(
            {
                "finding_key": old.finding_key,
                "check": old.check,
                "severity": Severity(old.severity).value,
                "owner": old.owner,
                "subject_type": old.subject_type,
                "subject_id": old.subject_id,
                "fiscal_year": old.detail.get("fiscal_year"),
                "amount_fen": int(old.detail.get("amount_fen", 0)),
                "summary": old.detail.get("summary", ""),
                # Empty for a finding stored before the Chinese text existed: the zh-CN
                # report shows its English text instead.
                "summary_zh": old.detail.get("summary_zh", ""),
                "classification": old.detail.get("classification", Classification.internal.value),
                "status": "resolved",
                "first_seen_week": old.first_seen_week,
                "last_seen_week": old.last_seen_week,
                "resolved_week": resolved_week,
            }
        )
    if inserts:
        session.execute(insert(AuditFinding), inserts)
    # Bulk UPDATE by primary key, grouped by the set of columns changed (executemany each).
    by_shape: dict[tuple[str, ...], list[dict]] = {}
    for change in updates:
        by_shape.setdefault(tuple(sorted(change)), []).append(change)
    for batch in by_shape.values():
        session.execute(update(AuditFinding), batch)
    frame = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    if not frame.empty:
        frame["_rank"] = frame["severity"].map(SEVERITY_RANK)
        frame = frame.sort_values(["_rank", "check", "finding_key"], ascending=[False, True, True])
        frame = frame.drop(columns="_rank").reset_index(drop=True)
    return frame, new_keys


def _summary(
    week: str,
    period: Period,
    state: _State,
    findings: pd.DataFrame,
    new_keys: list[str],
    severe: list[str],
) -> dict[str, Any]:
    active = findings[findings["status"] != "resolved"] if not findings.empty else findings
    lines = state.lines
    ordinary = lines[~lines["is_reserve"].astype(bool)]
    return {
        "week": week,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "fiscal_years": period.fiscal_years,
        "open": len(active),
        "new": len(new_keys),
        "severe_new": len(severe),
        "resolved": int((findings["status"] == "resolved").sum()) if not findings.empty else 0,
        "by_check": {
            c: int((active["check"] == c).sum()) if not active.empty else 0 for c in CHECKS
        },
        "by_severity": {
            s.value: int((active["severity"] == s.value).sum()) if not active.empty else 0
            for s in Severity
        },
        "budget_fen": int(state.years["total_fen"].sum()) if not state.years.empty else 0,
        "allocated_fen": int(ordinary.loc[ordinary["approved_asof"], "amount_asof"].sum()),
        "spent_fen": int(ordinary["spent_fen"].sum())
        + int(state.entries.loc[state.entries["line_id"].isna(), "amount_fen"].sum()),
        "reserve_fen": int(lines.loc[lines["is_reserve"].astype(bool), "amount_asof"].sum()),
        "reserve_drawn_fen": int(lines.loc[lines["is_reserve"].astype(bool), "spent_fen"].sum()),
        "ledger_total_fen": int(
            state.spending["amount_fen"].sum() if not state.spending.empty else 0
        )
        + int(state.entries.loc[state.entries["line_id"].isna(), "amount_fen"].sum()),
    }
