"""Tenants, users, sessions, memberships, invitations and API keys.

`tenants`, `users` and `auth_sessions` are platform tables (a user may belong to several
tenants; Citus would make them reference tables). Everything carrying `tenant_id` is
tenant-scoped and protected by row-level security.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from parley.kit.ids import new_id
from parley.models.base import Base, TenantScoped, utcnow_column

ROLES = ("owner", "admin", "editor", "agent", "viewer")


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended')", name="status"),
        CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name="slug_format"),
        *(
            CheckConstraint(
                f"retention_{kind}_days IS NULL OR retention_{kind}_days BETWEEN 1 AND 36500",
                name=f"retention_{kind}",
            )
            for kind in ("conversations", "files", "logs")
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    plan: Mapped[str] = mapped_column(String(40), server_default="free")
    created_at: Mapped[datetime] = utcnow_column()
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Which shard of `kb_vectors` holds this workspace's vectors (migration 0012): assigned
    # round robin at creation, so workspaces spread evenly over the shards.
    vector_shard: Mapped[int] = mapped_column(
        SmallInteger, server_default=text("(nextval('tenant_vector_shard_seq') % 16)")
    )
    # Keep visitors' voice recordings (voice_turns.audio); off: audio is never stored.
    voice_retention: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # What the widget and the channels show a visitor when the workspace is over a plan limit
    # or the visitor over their budget (migration 0025); NULL: a neutral default.
    quota_message: Mapped[str | None] = mapped_column(Text)
    # The inbox's workspace settings (hours, offline message; `conversations.schemas`).
    inbox_settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    # Data lifecycle (migration 0020): days kept (NULL: the platform default) and a pending
    # deletion's end of grace period (NULL: none pending).
    retention_conversations_days: Mapped[int | None] = mapped_column(Integer)
    retention_files_days: Mapped[int | None] = mapped_column(Integer)
    retention_logs_days: Mapped[int | None] = mapped_column(Integer)
    deletion_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deletion_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deletion_requested_by: Mapped[uuid.UUID | None] = mapped_column()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email_lower", text("lower(email)"), unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(String(120))
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, server_default="false")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = utcnow_column()
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuthSession(Base):
    """One refresh token. Rotation creates a new row in the same family and marks this one used;
    presenting a used token again revokes the whole family (token theft detection)."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_family_id", "family_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = utcnow_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = utcnow_column()
    # Staff presence: set while one of the member's inbox streams is open, and how many are
    # (`conversations.presence`, docs/inbox.md).
    inbox_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    inbox_connections: Mapped[int] = mapped_column(Integer, server_default="0")


class Invitation(TenantScoped, Base):
    __tablename__ = "invitations"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES[1:]!r}", name="role"),
        Index("ix_invitations_token_hash", "token_hash", unique=True),
    )

    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64))
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = utcnow_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(TenantScoped, Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_prefix", "prefix", unique=True),)

    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(24))
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = utcnow_column()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
