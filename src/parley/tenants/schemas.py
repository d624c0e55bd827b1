"""Request and response bodies of the tenant routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

Role = Literal["owner", "admin", "editor", "agent", "viewer"]
InvitableRole = Literal["admin", "editor", "agent", "viewer"]
Scope = Literal[
    "chat",
    "bots:read",
    "bots:write",
    "knowledge:write",
    "conversations:read",
    "conversations:write",
    "admin",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantDetail(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    status: str
    plan: str
    created_at: datetime


class TenantUpdate(_Strict):
    name: str = Field(min_length=1, max_length=120)


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    display_name: str | None
    role: Role
    joined_at: datetime


class MemberUpdate(_Strict):
    role: Role


class InvitationCreate(_Strict):
    email: EmailStr = Field(max_length=320)
    role: InvitableRole = "viewer"


class InvitationOut(BaseModel):
    id: uuid.UUID
    email: str
    role: InvitableRole
    created_at: datetime
    expires_at: datetime


class InvitationCreated(InvitationOut):
    token: str = Field(description="Shown once. Send it to the invitee.")


class ApiKeyCreate(_Strict):
    name: str = Field(min_length=1, max_length=120)
    scopes: list[Scope] = Field(min_length=1, max_length=6)
    expires_at: datetime | None = Field(
        default=None, description="Optional expiry (timezone-aware, in the future)."
    )


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_by: uuid.UUID | None = Field(
        description="The member who created the key, or who it was handed over to when they "
        "left; null for keys created by another key or whose creator's account is gone."
    )
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="Shown once; send it as `Authorization: Bearer <key>`.")


class MembershipCreated(BaseModel):
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: Role
