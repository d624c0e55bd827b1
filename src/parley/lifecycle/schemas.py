"""Request and response shapes of the data lifecycle routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class VisitorSelector(BaseModel):
    """Name the visitor one way: by id, by channel identity, or by an email they wrote."""

    model_config = ConfigDict(extra="forbid")

    visitor_id: uuid.UUID | None = None
    channel_id: uuid.UUID | None = None
    external_user_id: str | None = Field(default=None, min_length=1, max_length=255)
    email: str | None = Field(
        default=None, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> VisitorSelector:
        ways = [
            self.visitor_id is not None,
            self.channel_id is not None or self.external_user_id is not None,
            self.email is not None,
        ]
        if sum(ways) != 1:
            raise ValueError("give exactly one of visitor_id, channel_id+external_user_id, email")
        if (self.channel_id is None) != (self.external_user_id is None):
            raise ValueError("channel_id and external_user_id go together")
        return self


class VisitorExport(BaseModel):
    visitor_ids: list[uuid.UUID]
    data: dict[str, Any]


class VisitorErasure(BaseModel):
    visitor_ids: list[uuid.UUID]
    erased: dict[str, int] = Field(description="Rows removed, by table.")
    audit_seq: int = Field(description="The audit log's tombstone entry (no personal data).")


class DeletionState(BaseModel):
    scheduled: bool
    requested_at: datetime | None
    due_at: datetime | None


class RetentionSettings(BaseModel):
    """Days kept; null means the platform default (shown in `effective`); 0 there is forever."""

    model_config = ConfigDict(extra="forbid")

    conversations_days: int | None = Field(default=None, ge=1, le=36500)
    files_days: int | None = Field(default=None, ge=1, le=36500)
    logs_days: int | None = Field(default=None, ge=1, le=36500)


class RetentionOut(RetentionSettings):
    effective: dict[str, int]


class WorkspaceExportOut(BaseModel):
    """One requested export; `download_url` once its archive is built."""

    id: uuid.UUID
    status: str = Field(description="queued, running, ready or failed")
    created_at: datetime
    finished_at: datetime | None
    size_bytes: int | None
    sha256: str | None = Field(description="SHA-256 of the archive, hex")
    error: str | None
    download_url: str | None


class WorkspaceExportList(BaseModel):
    items: list[WorkspaceExportOut]
