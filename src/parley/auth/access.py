"""Who may do what: role ranks, API key scopes, and the principal a request acts as."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from parley.kit.db import TenantId, UserId

# `agent` reads and answers conversations and changes no configuration (docs/auth.md).
ROLE_RANK = {"viewer": 1, "agent": 2, "editor": 3, "admin": 4, "owner": 5}
SCOPES = (
    "chat",
    "bots:read",
    "bots:write",
    "knowledge:write",
    "conversations:read",
    "conversations:write",
    "admin",
)

API_KEY_PREFIX = "prl_"
ACCESS_AUDIENCE = "parley:console"
ACCESS_TYPE = "access"


def role_allows(role: str | None, minimum: str) -> bool:
    return role is not None and ROLE_RANK.get(role, 0) >= ROLE_RANK[minimum]


def scopes_allow(scopes: frozenset[str], needed: str | None) -> bool:
    """`admin` implies every scope; `None` means any valid key of the tenant may call."""
    return needed is None or needed in scopes or "admin" in scopes


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "api_key"]
    user_id: UserId | None = None
    session_family: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    scopes: frozenset[str] = frozenset()
    is_platform_admin: bool = False

    @property
    def actor(self) -> str:
        return f"user:{self.user_id}" if self.kind == "user" else f"api_key:{self.api_key_id}"


@dataclass(frozen=True)
class Access:
    """What a tenant route declares it needs; read by the route-matrix tests."""

    role: str
    scope: str | None


@dataclass(frozen=True)
class TenantCaller:
    tenant_id: TenantId
    principal: Principal
    role: str | None  # the member's role; None for API keys
