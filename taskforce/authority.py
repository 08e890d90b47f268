"""Who may decide what (SPEC §1, seed §2.3 分级授权) and the leadership vote (§3.1).

Counting conventions (Civil Code art. 1259): 以上/以下/以内 include the number
itself. So the executive group may approve exactly the executive maximum, and
exactly two thirds of all leadership members passes a vote.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from taskforce.policy.schema import Authority, GroupKind, Vote


class Approver(StrEnum):
    executive = "executive"
    leadership = "leadership"


@dataclass(frozen=True)
class Routing:
    group: Approver
    rule: str  # the rule that decided it, for errors and the decision trail
    rule_zh: str  # the same rule for Chinese reports (the budget audit's 说明)


@dataclass(frozen=True)
class AuthorityCheck:
    allowed: bool
    required: Approver
    rule: str


def route_amount(
    amount_fen: int, authority: Authority, *, cross_department: bool = False
) -> Routing:
    """The lowest group whose authority covers an amount (in fen)."""
    if amount_fen < 0:
        raise ValueError("amount must not be negative")
    exec_max = int(authority.executive_approval_max * 100)
    lead_min = int(authority.leadership_cross_department_min * 100)
    if cross_department and amount_fen >= lead_min:
        return Routing(
            Approver.leadership,
            f"cross-department allocation of {authority.leadership_cross_department_min} CNY or more "
            "(以上) is reserved to the leadership group",
            f"跨部门资金调配 {authority.leadership_cross_department_min:,} 元以上（含本数）"
            "须由领导小组审批",
        )
    if amount_fen <= exec_max:
        return Routing(
            Approver.executive,
            f"the executive group approves up to and including {authority.executive_approval_max} CNY (以下)",
            f"该事项应由执行小组审批（{authority.executive_approval_max:,} 元以下，含本数）",
        )
    return Routing(
        Approver.leadership,
        f"amounts above {authority.executive_approval_max} CNY exceed the executive group's authority "
        "and escalate to the leadership group",
        f"金额超过 {authority.executive_approval_max:,} 元，超出执行小组审批权限，须报领导小组审批",
    )


def may_approve(
    group: GroupKind | str, amount_fen: int, authority: Authority, *, cross_department: bool = False
) -> AuthorityCheck:
    """May `group` approve this amount? Only executive and leadership approve budgets."""
    routing = route_amount(amount_fen, authority, cross_department=cross_department)
    group = GroupKind(group)
    if group == GroupKind.leadership:
        return AuthorityCheck(True, routing.group, routing.rule)
    if group == GroupKind.executive:
        return AuthorityCheck(routing.group == Approver.executive, routing.group, routing.rule)
    return AuthorityCheck(
        False, routing.group, f"the {group.value} group has no approval authority; {routing.rule}"
    )


def is_major_matter(
    amount_fen: int,
    regions: set[str],
    authority: Authority,
    *,
    flagged: bool = False,
    cross_department: bool = False,
) -> tuple[bool, list[str]]:
    """SPEC §2.2: beyond the executive's authority, more than one region, or flagged."""
    reasons = []
    routing = route_amount(amount_fen, authority, cross_department=cross_department)
    if routing.group == Approver.leadership:
        reasons.append(routing.rule)
    if len(regions) > 1:
        reasons.append(f"involves more than one region ({', '.join(sorted(regions))})")
    if flagged:
        reasons.append("flagged as major by the executive director")
    return bool(reasons), reasons


@dataclass(frozen=True)
class VoteTally:
    yes: int
    no: int
    abstain: int
    absent: int
    members: int
    required: int
    passed: bool


def tally_vote(yes: int, no: int, abstain: int, members: int, vote: Vote) -> VoteTally:
    """Passes only with yes >= numerator/denominator of ALL members, in integers."""
    if min(yes, no, abstain) < 0 or members <= 0:
        raise ValueError("vote counts must be >= 0 and the group must have members")
    if yes + no + abstain > members:
        raise ValueError(f"{yes + no + abstain} ballots for {members} members")
    required = -(-vote.pass_numerator * members // vote.pass_denominator)  # ceiling, integers only
    return VoteTally(
        yes=yes,
        no=no,
        abstain=abstain,
        absent=members - yes - no - abstain,
        members=members,
        required=required,
        passed=yes * vote.pass_denominator >= vote.pass_numerator * members,
    )
