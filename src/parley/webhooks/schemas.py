"""Request and response bodies of the webhooks API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from parley.kit.event_names import EVENT_TYPES, EventType

DeliveryStatus = Literal["pending", "sending", "delivered", "dead"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookCreate(_Strict):
    url: str = Field(min_length=1, max_length=2_000)
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    description: str | None = Field(default=None, max_length=500)


class WebhookUpdate(_Strict):
    url: str | None = Field(default=None, min_length=1, max_length=2_000)
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=10)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class CircuitOut(BaseModel):
    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    open_until: datetime | None


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    circuit: CircuitOut
    rotation_ends_at: datetime | None = Field(
        description="While set, deliveries are signed with the previous secret too."
    )
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret (`whsec_…`); shown only once.")


class SecretRotated(BaseModel):
    id: uuid.UUID
    secret: str = Field(description="The new signing secret; shown only once.")
    rotation_ends_at: datetime | None


class AttemptOut(BaseModel):
    attempt: int
    status_code: int | None
    latency_ms: int | None
    error: str | None
    succeeded: bool
    created_at: datetime


class DeliveryOut(BaseModel):
    id: uuid.UUID = Field(description="Also the `webhook-id` header: receivers dedupe on it.")
    webhook_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    payload: dict[str, Any]
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None
    created_at: datetime
    attempts: list[AttemptOut]


class RetryOut(BaseModel):
    requeued: bool = Field(
        description="False when the delivery was already waiting to be sent (nothing added)."
    )
    delivery: DeliveryOut
