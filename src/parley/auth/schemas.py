"""Request and response bodies of the auth routes (shapes from SPEC "API essentials")."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Strict):
    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=256)
    tenant_name: str = Field(min_length=1, max_length=120)


class LoginRequest(_Strict):
    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(_Strict):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(_Strict):
    refresh_token: str | None = Field(default=None, max_length=512)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str


class TenantOut(BaseModel):
    id: uuid.UUID
    name: str
    slug: str


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Access token lifetime in seconds.")


class RegisterResponse(TokenPair):
    user: UserOut
    tenant: TenantOut


class MembershipOut(BaseModel):
    tenant: TenantOut
    role: str
    tenant_status: str


class MeResponse(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str | None
    is_platform_admin: bool
    memberships: list[MembershipOut]
