from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PlanUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")


class FailedJob(BaseModel):
    id: int
    entrypoint: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    error: str | None


class QueueState(BaseModel):
    queued: dict[str, int]
    running: dict[str, int]
    failed: dict[str, int]


class Requeued(BaseModel):
    requeued: int
