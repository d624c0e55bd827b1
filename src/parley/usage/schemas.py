"""Request and response bodies of the usage, plan and budget routes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LimitName = Literal[
    "monthly_conversations",
    "monthly_tokens",
    "messages_per_minute",
    "bots",
    "sources",
    "storage_bytes",
]
MeterType = Literal[
    "llm_tokens",
    "conversations_started",
    "messages_processed",
    "webhook_events",
    "integration_calls",
    "storage_bytes",
]
PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitReading(BaseModel):
    metric: LimitName
    limit: int | None = Field(description="The plan's limit plus live overages; null: unlimited")
    used: int
    percent: int | None
    reset_at: datetime | None = Field(description="When the count starts again; null: never")


class MeterTotal(BaseModel):
    type: MeterType
    quantity: int


class MeterDay(BaseModel):
    day: date
    type: MeterType
    quantity: int


class UsageReport(BaseModel):
    """A workspace's month: metered totals, per-day figures, and where it stands on limits."""

    tenant_id: uuid.UUID
    period: str
    plan: str
    totals: list[MeterTotal]
    days: list[MeterDay]
    limits: list[LimitReading]


class TenantUsageRow(BaseModel):
    tenant_id: uuid.UUID
    name: str
    plan: str
    status: str
    totals: dict[str, int]


class PlatformUsage(BaseModel):
    period: str
    items: list[TenantUsageRow]
    next_cursor: str | None


class QuotaSettings(_Strict):
    quota_message: str | None = Field(
        default=None,
        max_length=500,
        description="Shown to visitors instead of an error when a limit or budget is reached",
    )


class VisitorBudgetBody(_Strict):
    messages_per_day: int | None = Field(default=None, ge=1, le=1_000_000)
    tokens_per_day: int | None = Field(default=None, ge=1, le=1_000_000_000)


class VisitorBudgetOut(VisitorBudgetBody):
    model_config = ConfigDict(extra="ignore")
    channel_id: uuid.UUID


class OverageGrant(_Strict):
    metric: LimitName
    extra: int = Field(ge=1, le=10**15, description="Added to the plan's limit")
    expires_at: datetime = Field(description="When the overage stops counting (ISO 8601)")
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _aware(self) -> OverageGrant:
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a time zone offset")
        return self


class OverageOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    metric: LimitName
    extra: int
    reason: str
    expires_at: datetime
    granted_by: uuid.UUID | None
    created_at: datetime
    active: bool
