"""Typed models of config/taskforce.yaml and config/org.yaml.

Every model forbids unknown keys, so a typo in a config file is an error,
not a silently ignored setting.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
Share = Annotated[Decimal, Field(ge=0, le=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroupKind(StrEnum):
    leadership = "leadership"
    executive = "executive"
    working_group = "working_group"
    compliance = "compliance"
    evaluator = "evaluator"
    expert = "expert"


class Classification(StrEnum):
    """SPEC §7: every record has one. Ordered: public < internal < secret."""

    public = "public"
    internal = "internal"
    secret = "secret"

    @property
    def rank(self) -> int:
        return _CLASSIFICATION_RANK[self]

    def readable_by(self, clearance: Classification) -> bool:
        return clearance.rank >= self.rank

    @staticmethod
    def highest(*levels: Classification | str) -> Classification:
        """The strictest of these: where text of several records meets (SPEC §7)."""
        return max((Classification(level) for level in levels), key=lambda c: c.rank)


_CLASSIFICATION_RANK = {
    Classification.public: 0,
    Classification.internal: 1,
    Classification.secret: 2,
}

ChainStep = Literal["working_group", "executive", "leadership"]


class Authority(Strict):
    executive_approval_max: Money
    leadership_cross_department_min: Money

    @model_validator(mode="after")
    def _ordered(self) -> Authority:
        if self.leadership_cross_department_min < self.executive_approval_max:
            raise ValueError("leadership_cross_department_min must be >= executive_approval_max")
        return self


class Vote(Strict):
    pass_numerator: PositiveInt
    pass_denominator: PositiveInt

    @model_validator(mode="after")
    def _fraction(self) -> Vote:
        if self.pass_numerator > self.pass_denominator:
            raise ValueError("pass_numerator must not exceed pass_denominator")
        return self


class Loop(Strict):
    coordination_deadline_working_days: PositiveInt
    plan_deadline_working_days: PositiveInt
    evaluation_deadline_working_days: PositiveInt
    returns_before_warning: PositiveInt
    duplicate_title_similarity: Annotated[float, Field(gt=0, le=1)]
    # The latest deadline a coordination may set, in years from today (not a SPEC number:
    # a bound on typing slips such as 9999-12-31).
    deadline_horizon_years: Annotated[int, Field(ge=1, le=100)] = 10


class Progress(Strict):
    yellow_due_within_days: NonNegativeInt
    yellow_behind_expected_points: Annotated[int, Field(ge=0, le=100)]
    red_escalation_days: NonNegativeInt


class EmergencyLevelPolicy(Strict):
    name_zh: str
    leading_group: ChainStep
    deadlines_hours: dict[str, PositiveInt]
    # Told when an emergency of this level opens, though not paged (SPEC §5, level III:
    # "the working group itself; executive tracks"): routing `emergency_tracked`.
    tracked: bool = False


LevelName = Literal["I", "II", "III"]
WorkingGroupCode = Annotated[str, Field(pattern=r"^wg:[a-z0-9-]+$")]


class FollowUpPolicy(Strict):
    reporting_unit: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    category: str = Field(min_length=1, max_length=64)


class DrillPolicy(Strict):
    source: str = Field(min_length=1, max_length=64)
    level: LevelName
    working_group: WorkingGroupCode
    title: str = Field(min_length=2, max_length=300)
    wait_minutes: NonNegativeInt
    poll_seconds: PositiveInt


class EmergencyPolicy(Strict):
    levels: dict[LevelName, EmergencyLevelPolicy]
    acknowledge_within_minutes: PositiveInt
    escalation_repeat_limit: PositiveInt
    escalation_chain: list[ChainStep] = Field(min_length=1)
    deadlines_met_by_page: dict[str, ChainStep] = {}
    unpaged_grace_seconds: PositiveInt
    sweep_dispatch_seconds: PositiveInt
    response_runs_at_once: PositiveInt
    page_priority: int
    follow_up: FollowUpPolicy
    drill: DrillPolicy

    @model_validator(mode="after")
    def _leading_groups_on_chain(self) -> EmergencyPolicy:
        for level, rule in self.levels.items():
            if rule.leading_group not in self.escalation_chain:
                raise ValueError(
                    f"levels.{level}.leading_group {rule.leading_group!r} is not on escalation_chain"
                )
        named = {name for rule in self.levels.values() for name in rule.deadlines_hours}
        for name in self.deadlines_met_by_page:
            if name not in named:
                raise ValueError(f"deadlines_met_by_page.{name}: no level has this deadline")
        return self

    @field_validator("levels")
    @classmethod
    def _all_levels(cls, v: dict) -> dict:
        missing = {"I", "II", "III"} - set(v)
        if missing:
            raise ValueError(f"missing levels: {', '.join(sorted(missing))}")
        return v


# --- the webhook gateway (issue 5) ------------------------------------------

SourceName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]


class NativeSourcePolicy(Strict):
    default_working_group: WorkingGroupCode | None = None


class NativeGatewayPolicy(Strict):
    secret_env_prefix: str = Field(min_length=1)
    sources: dict[SourceName, NativeSourcePolicy] = Field(min_length=1)


class AlertmanagerPolicy(Strict):
    token_env: str = Field(min_length=1)
    source: SourceName
    level_label: str = Field(min_length=1)
    working_group_label: str = Field(min_length=1)
    default_working_group: WorkingGroupCode | None = None
    levels: dict[str, LevelName] = Field(min_length=1)


class PagerDutyPolicy(Strict):
    routing_key_env: str = Field(min_length=1)
    source: SourceName
    default_working_group: WorkingGroupCode | None = None
    levels: dict[Literal["critical", "error", "warning", "info"], LevelName]

    @field_validator("levels")
    @classmethod
    def _every_severity(cls, v: dict) -> dict:
        missing = {"critical", "error", "warning", "info"} - set(v)
        if missing:
            raise ValueError(f"missing severities: {', '.join(sorted(missing))}")
        return v


class GatewayPolicy(Strict):
    host: str = Field(min_length=1)
    port: Annotated[int, Field(gt=0, lt=65536)]
    max_body_bytes: PositiveInt
    keep_alive_seconds: PositiveInt
    replay_window_seconds: PositiveInt
    dispatch_timeout_seconds: PositiveInt
    dispatch_connect_retries: NonNegativeInt
    deployment: Annotated[str, Field(pattern=r"^[^/]+/[^/]+$")]
    # The production gateway's writing and paging in a child process (intake_process.py).
    intake_process: bool = True
    # How long that child may hold a burst's pages while webhooks keep coming.
    paging_hold_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    native: NativeGatewayPolicy
    alertmanager: AlertmanagerPolicy
    pagerduty: PagerDutyPolicy


class WarningPolicy(Strict):
    name_zh: str
    handled_by: Literal["executive", "leadership", "command"]
    deadline_hours: PositiveInt
    # The groups whose members may mark it handled (stopping its escalation).
    may_handle: list[Literal["executive", "leadership"]] = Field(min_length=1)


class Warnings(Strict):
    yellow: WarningPolicy
    orange: WarningPolicy
    red: WarningPolicy


AuditSeverity = Literal["low", "medium", "high", "critical"]
AuditCheck = Literal[
    "unapproved_spending",
    "overspend",
    "approval_beyond_authority",
    "adjustment_without_procedure",
    "behind_schedule",
    "reserve_without_emergency",
    "reserve_below_share",
]


class BudgetPolicy(Strict):
    emergency_reserve_share: Share
    # 三审 in order; the last is the approval, `leadership`: the leadership group, or the
    # executive group for an amount within its authority (SPEC §1; budget/service.py
    # required_stages).
    reviews: list[Literal["compliance", "evaluator", "leadership"]] = Field(min_length=1)
    # Weekly compliance audit (issue 7): severity of each check's findings, and the
    # lowest severity that also notifies the leadership group.
    audit_severity: dict[AuditCheck, AuditSeverity]
    severe_from: AuditSeverity

    @field_validator("reviews")
    @classmethod
    def _approval_last(cls, v: list[str]) -> list[str]:
        if v[-1] != "leadership" or v.count("leadership") != 1 or len(set(v)) != len(v):
            raise ValueError(
                "each review once, the approval (leadership) last, e.g. "
                "[compliance, evaluator, leadership]"
            )
        return v

    @field_validator("audit_severity")
    @classmethod
    def _every_check(cls, v: dict) -> dict:
        missing = set(AuditCheck.__args__) - set(v)
        if missing:
            raise ValueError(f"missing checks: {', '.join(sorted(missing))}")
        return v


# A risk matrix a review can still draw with a code in each cell.
MAX_MATRIX_SIZE = 10


class RiskPolicy(Strict):
    matrix_size: int = Field(ge=2, le=MAX_MATRIX_SIZE)
    warning_thresholds: dict[Literal["yellow", "orange", "red"], PositiveInt]

    @model_validator(mode="after")
    def _within_matrix(self) -> RiskPolicy:
        top = self.matrix_size * self.matrix_size
        for colour, score in self.warning_thresholds.items():
            if score > top:
                raise ValueError(f"warning_thresholds.{colour}={score} exceeds {top}")
        return self


class KpiTargets(Strict):
    resolution_rate: Share
    on_time_rate: Share
    duration_ratio_baseline: Annotated[Decimal, Field(gt=0)]
    satisfaction: Annotated[int, Field(ge=0, le=100)]
    full_time_share_min: Share
    training_hours_per_year_min: NonNegativeInt


class Reviews(Strict):
    """The scheduled deployments' cron expressions (config `reviews`)."""

    dispatch_sweep: str
    weekly_dispatch_report: str
    notification_delivery: str
    emergency_sweep: str
    monthly_review: str
    quarterly_review: str
    semiannual_audit: str
    quarterly_drill: str
    weekly_budget_audit: str

    @field_validator("*")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"{v!r} is not a 5-field cron expression")
        return v


class Phases(Strict):
    startup: tuple[int, int]
    push: tuple[int, int]
    consolidation: tuple[int, int]


class CalendarPolicy(Strict):
    extra_holidays: list[dt.date] = []
    extra_workdays: list[dt.date] = []

    @model_validator(mode="after")
    def _disjoint(self) -> CalendarPolicy:
        both = set(self.extra_holidays) & set(self.extra_workdays)
        if both:
            raise ValueError(f"dates both holiday and workday: {sorted(both)}")
        return self


class Notifications(Strict):
    routing: dict[str, list[str]]
    max_attempts: PositiveInt
    backoff_base_seconds: PositiveInt
    backoff_max_seconds: PositiveInt
    body_max_chars: Annotated[int, Field(ge=70)]
    # --- delivery mechanics (issue 4, taskforce/notify/delivery.py) ---
    title_max_chars: Annotated[int, Field(ge=20)] = 100
    # A delivery run claims `limit` rows at a time until fewer are due, for this long at
    # most (the schedule starts the next run a minute later).
    drain_seconds: PositiveInt = 45
    overflow: Literal["truncate", "split"] = "truncate"
    send_timeout_seconds: PositiveInt = 30
    claim_lease_seconds: PositiveInt = 300
    max_parallel_sends: PositiveInt = 16
    # --- the dispatch sweep's red-item digests (taskforce/loop/red_digest.py) ---
    # Items a digest message names (titles shortened; the count comes first, so a message cut
    # at body_max_chars still says how many).
    digest_items: Annotated[int, Field(ge=0, le=10)] = 5

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> Notifications:
        if self.claim_lease_seconds <= self.send_timeout_seconds:
            raise ValueError("claim_lease_seconds must exceed send_timeout_seconds")
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_max_seconds must be >= backoff_base_seconds")
        return self


# --- reviews and reports (issue 6) ------------------------------------------


class ReviewPolicy(Strict):
    """How the PDCA reviews (SPEC §3) build their reports and act on them."""

    trend_periods: Annotated[int, Field(ge=2, le=24)] = 6
    output_dir: str = "reports/out"
    programme_start: dt.date = dt.date(2026, 1, 1)  # month 1 of the phases (§5.1)
    act_on: list[Literal["weekly", "monthly", "quarterly", "semiannual"]] = [
        "monthly",
        "quarterly",
        "semiannual",
    ]
    improvement_category: str = "improvement"
    lessons_shown: Annotated[int, Field(ge=0, le=100)] = 10
    # From this many task nodes the workbooks are written by a process of their own,
    # beside the KPI reads and charts (below it, starting a process costs more than it saves).
    workbook_process_from_nodes: NonNegativeInt = 200_000
    default_audience: Classification = Classification.internal
    # SPEC §3's "who" of each cadence: the groups whose review it is hear of its report
    # ("{conducted_by}" in notifications.routing.review_published). A group's code, or
    # `working_group` for every working group (the weekly dispatch is theirs with the
    # executive group's: an operator trial found them left out).
    conducted_by: dict[Literal["weekly", "monthly", "quarterly", "semiannual"], list[str]] = {
        "weekly": ["executive", "working_group"],
        "monthly": ["executive"],
        "quarterly": ["leadership"],
        "semiannual": ["evaluator"],
    }

    @field_validator("conducted_by", mode="before")
    @classmethod
    def _one_group_or_several(cls, value):
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value


class Policy(Strict):
    timezone: str
    locale: Literal["zh-CN", "en"]
    currency: Literal["CNY"]
    authority: Authority
    vote: Vote
    loop: Loop
    progress: Progress
    emergency: EmergencyPolicy
    gateway: GatewayPolicy
    warnings: Warnings
    budget: BudgetPolicy
    risk: RiskPolicy
    kpi_targets: KpiTargets
    reviews: Reviews
    phases: Phases
    calendar: CalendarPolicy = CalendarPolicy()
    notifications: Notifications
    review: ReviewPolicy = ReviewPolicy()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {v!r}") from exc
        return v


# --- config/org.yaml -------------------------------------------------------


class UnitSpec(Strict):
    code: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    name: str
    name_en: str
    region: str


class GroupSpec(Strict):
    code: Annotated[
        str, Field(pattern=r"^(leadership|executive|compliance|evaluator|expert|wg:[a-z0-9-]+)$")
    ]
    kind: GroupKind
    name: str
    name_en: str
    domain: str | None = None


class MemberSpec(Strict):
    code: str
    name: str
    group: str
    unit: str
    role: str
    full_time: bool = False
    on_call: bool = False
    director: bool = False
    backup: str | None = None
    training_hours: Annotated[int, Field(ge=0)] = 0
    clearance: Classification = Classification.internal
    contacts: list[str] = []


class Organisation(Strict):
    name: str
    name_en: str
    units: list[UnitSpec] = Field(min_length=1)
    groups: list[GroupSpec] = Field(min_length=1)
    members: list[MemberSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> Organisation:
        units = {u.code for u in self.units}
        groups = {g.code for g in self.groups}
        members = {m.code for m in self.members}
        for label, codes in (
            ("units", [u.code for u in self.units]),
            ("groups", [g.code for g in self.groups]),
            ("members", [m.code for m in self.members]),
        ):
            dupes = {c for c in codes if codes.count(c) > 1}
            if dupes:
                raise ValueError(f"{label}: duplicate codes {sorted(dupes)}")
        for m in self.members:
            if m.group not in groups:
                raise ValueError(f"members.{m.code}.group: unknown group {m.group!r}")
            if m.unit not in units:
                raise ValueError(f"members.{m.code}.unit: unknown unit {m.unit!r}")
            if m.backup is not None and m.backup not in members:
                raise ValueError(f"members.{m.code}.backup: unknown member {m.backup!r}")
        kinds = [g.kind for g in self.groups]
        for required in (GroupKind.leadership, GroupKind.executive):
            if kinds.count(required) != 1:
                raise ValueError(f"groups: exactly one {required.value} group is required")
        directors = [m for m in self.members if m.director]
        if len(directors) != 1:
            raise ValueError("members: exactly one member must be the executive director")
        if not any(m.group == "leadership" for m in self.members):
            raise ValueError("members: the leadership group has no members")
        return self
