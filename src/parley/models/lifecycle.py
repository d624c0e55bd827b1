"""Workspace exports requested through the API: one row per request, its state and, once
built, where the archive is kept (in the workspace's own storage prefix, so the workspace's
deletion removes it and its verification counts it)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parley.models.base import Base, TenantScoped, utcnow_column


class WorkspaceExport(TenantScoped, Base):
    __tablename__ = "workspace_exports"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'ready', 'failed')", name="status"),
        Index("ix_workspace_exports_created", "tenant_id", "created_at"),
    )

    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[uuid.UUID | None] = mapped_column()
    storage_key: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
