"""Request and response bodies of the gateway, for validation and the OpenAPI schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from taskforce.emergency.forms import DedupKey, EmergencyIntake
from taskforce.emergency.models import Level


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- native ----------------------------------------------------------------


# Validation context: the raw JSON was searched for NUL characters (with the sender's field
# path in the error) before the model saw it.
NUL_CHECKED = {"nul_checked": True}


class NativeTrigger(EmergencyIntake):
    """Open an emergency (or repeat an open one with the same dedup key)."""

    @model_validator(mode="after")
    def _no_nul(self, info: ValidationInfo) -> NativeTrigger:
        # Searching a JSON dump of the model again cost more than the rest of its validation;
        # without the gateway's context (any other caller) the full check runs.
        if info.context and info.context.get("nul_checked"):
            return self
        return EmergencyIntake._no_nul(self)

    dedup_key: DedupKey = Field(
        ..., description="The sender's identity of the incident; repeats attach while it is open."
    )
    drill: bool = Field(False, description="A drill (演练): marked as a drill everywhere.")


class NativeAction(Strict):
    """Acknowledge or resolve the open emergency of a dedup key."""

    dedup_key: DedupKey


# --- Prometheus Alertmanager (webhook payload version 4) --------------------


class AlertmanagerAlert(Strict):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: DedupKey


class AlertmanagerWebhook(Strict):
    version: Literal["4"]
    groupKey: str = ""
    truncatedAlerts: int = Field(0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AlertmanagerAlert] = Field(..., min_length=1, max_length=500)


# --- PagerDuty Events API v2 -------------------------------------------------


class PagerDutyPayload(Strict):
    summary: str = Field(..., min_length=1, max_length=1024)
    source: str = Field(..., min_length=1, max_length=255)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = Field(None, alias="class")
    custom_details: dict[str, Any] | str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PagerDutyEvent(Strict):
    routing_key: str = Field(..., min_length=1, max_length=64)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: DedupKey | None = Field(
        None, description="Required for acknowledge and resolve; generated for a trigger without."
    )
    payload: PagerDutyPayload | None = Field(None, description="Required for trigger.")
    client: str | None = None
    client_url: str | None = None
    links: list[dict[str, Any]] = Field(default_factory=list)
    images: list[dict[str, Any]] = Field(default_factory=list)


# --- responses ---------------------------------------------------------------


class Problem(BaseModel):
    field: str | None = None
    message: str


class Accepted(BaseModel):
    emergency_id: str = Field(..., description="The emergency's public id.")
    created: bool = Field(..., description="False when the request repeated an open emergency.")
    status: str = Field(..., description="pending_dispatch, dispatched, acknowledged, resolved…")
    level: Level
    dispatched: bool = Field(..., description="Whether a flow run moves it (else the sweep will).")
    is_drill: bool = False


class ActionResult(BaseModel):
    emergency_id: str
    status: str


class AlertResult(BaseModel):
    fingerprint: str
    emergency_id: str | None
    outcome: Literal["opened", "repeat", "resolved", "not_open", "refused"]
    status: str | None = None
    problems: list[Problem] = Field(
        default_factory=list,
        description="Why an alert was refused (the batch's other alerts are taken).",
    )


class AlertmanagerAccepted(BaseModel):
    results: list[AlertResult]


class PagerDutyAccepted(BaseModel):
    status: Literal["success"] = "success"
    message: str
    dedup_key: str
    emergency_id: str


class ErrorDetail(BaseModel):
    code: str = Field(..., description="A stable machine-readable code, e.g. bad_signature.")
    message: str
    field: str | None = None
    problems: list[Problem] = Field(default_factory=list)


class ErrorBody(BaseModel):
    error: ErrorDetail
