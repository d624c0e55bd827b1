"""The one door to tenant data (ARCHITECTURE rule 2).

`tenant_access(role, scope)` builds the dependency every tenant route uses: it resolves the
caller (console user token or API key), opens the request's transaction with the tenant
context set, checks membership/role or key/scope, and commits when the route returns (before
the response is sent). Another tenant's id is indistinguishable from a missing one: 404.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth import repository as auth_repo
from parley.auth.access import (
    ACCESS_AUDIENCE,
    ACCESS_TYPE,
    API_KEY_PREFIX,
    Access,
    Principal,
    TenantCaller,
    role_allows,
    scopes_allow,
)
from parley.kit.db import TenantId, UserId, bind_tenant, bind_user, request_transaction
from parley.kit.errors import Forbidden, InvalidToken, NotFound, TenantSuspended, Unauthorized
from parley.kit.ratelimit import enforce
from parley.kit.runtime import Runtime, get_runtime
from parley.kit.security import TokenError, constant_time_equals, digest

bearer = HTTPBearer(auto_error=False, description="A console access token or an API key.")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def limit_attempts(request: Request, action: str) -> Runtime:
    """The sign-in and sign-up rate limit per client address (`action` names the bucket), the
    same for the API and the console."""
    runtime = get_runtime(request)
    if runtime.settings.parley_rate_limits == "on" and runtime.limiter is not None:
        ip = request.client.host if request.client else "unknown"
        await enforce(
            runtime.limiter,
            f"{action}:{ip}",
            runtime.settings.parley_login_attempts_per_minute,
            60,
        )
    return runtime


class TenantNotFound(NotFound):
    code = "tenant_not_found"
    title = "Workspace not found"


def _bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized(headers={"WWW-Authenticate": "Bearer"})
    return credentials.credentials


def split_api_key(key: str) -> tuple[str, str] | None:
    if not key.startswith(API_KEY_PREFIX):
        return None
    parts = key.split("_", 2)
    if len(parts) != 3 or not parts[1] or not parts[2] or len(key) > 200:
        return None
    return parts[1], key


def _user_claims(runtime: Runtime, token: str) -> tuple[UserId, uuid.UUID]:
    try:
        claims = runtime.keyring.verify(token, audience=ACCESS_AUDIENCE, token_type=ACCESS_TYPE)
        return UserId(uuid.UUID(str(claims["sub"]))), uuid.UUID(str(claims["sid"]))
    except (TokenError, KeyError, ValueError) as exc:
        raise InvalidToken(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc


async def _authorise_user(
    session: AsyncSession,
    runtime: Runtime,
    token: str,
    tenant_id: uuid.UUID,
    access: Access,
) -> TenantCaller:
    user_id, family = _user_claims(runtime, token)
    return await authorise_member(session, user_id, family, tenant_id, access)


async def authorise_member(
    session: AsyncSession,
    user_id: UserId,
    family: uuid.UUID,
    tenant_id: uuid.UUID,
    access: Access,
) -> TenantCaller:
    """Bind the tenant and check that the user's session family is live and that they are a
    member with `access.role`: shared by bearer tokens and the console's cookie session."""
    tid = TenantId(tenant_id)
    await bind_tenant(session, tid)
    await bind_user(session, user_id)
    row = await auth_repo.access_for(session, user_id=user_id, family_id=family, tenant_id=tid)
    if row is None or not row.user_active or not row.session_live:
        raise InvalidToken(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if row.role is None or row.tenant_status is None:
        raise TenantNotFound()
    if row.tenant_status == "suspended":
        raise TenantSuspended()
    if not role_allows(row.role, access.role):
        raise Forbidden(f"This needs the {access.role} role or higher.")
    principal = Principal(
        kind="user", user_id=user_id, session_family=family, is_platform_admin=row.is_platform_admin
    )
    return TenantCaller(tenant_id=tid, principal=principal, role=row.role)


async def _authorise_api_key(
    session: AsyncSession, key: str, prefix: str, tenant_id: uuid.UUID | None, access: Access
) -> TenantCaller:
    """Verify an API key; `tenant_id` None means the key itself names the tenant (routes
    without a tenant in the path, such as the OpenAI-compatible API)."""
    key_tenant = await auth_repo.api_key_tenant(session, prefix)
    if key_tenant is None:
        raise InvalidToken()
    if tenant_id is not None and key_tenant != tenant_id:
        # A valid key of another tenant: the tenant in the path does not exist for it.
        raise TenantNotFound()
    tid = TenantId(key_tenant)
    await bind_tenant(session, tid)
    row = await auth_repo.api_key_by_prefix(session, tid, prefix)
    now = datetime.now(UTC)
    if (
        row is None
        or not constant_time_equals(row.key_hash, digest(key))
        or row.revoked_at is not None
        or (row.expires_at is not None and row.expires_at <= now)
    ):
        raise InvalidToken()
    tenant = await auth_repo.tenant_by_id(session, tid)
    if tenant is None:
        raise TenantNotFound()
    if tenant.status == "suspended":
        raise TenantSuspended()
    scopes = frozenset(row.scopes)
    if not scopes_allow(scopes, access.scope):
        raise Forbidden(f"This API key lacks the {access.scope} scope.")
    await auth_repo.touch_api_key(session, tid, row.id, now)
    principal = Principal(kind="api_key", api_key_id=row.id, scopes=scopes)
    return TenantCaller(tenant_id=tid, principal=principal, role=None)


class TenantScope:
    """A tenant route's view of the request: the caller and the tenant-bound session."""

    def __init__(self, session: AsyncSession, caller: TenantCaller) -> None:
        self.session = session
        self.caller = caller

    @property
    def tenant_id(self) -> TenantId:
        return self.caller.tenant_id

    @property
    def principal(self) -> Principal:
        return self.caller.principal


def tenant_access(role: str, scope: str) -> Any:
    """Dependency for `/v1/tenants/{tenant_id}/…` routes needing `role` (users) or `scope`
    (API keys; every route names one, so no route is open to any key, a `chat` key included).
    Commits the transaction when the route function returns."""
    access = Access(role=role, scope=scope)

    async def dependency(
        request: Request,
        tenant_id: uuid.UUID,
        credentials: BearerDep,
    ) -> AsyncIterator[TenantScope]:
        runtime = get_runtime(request)
        token = _bearer_token(credentials)
        async with request_transaction(runtime.db) as session:
            api_key = split_api_key(token)
            if api_key is not None:
                caller = await _authorise_api_key(session, token, api_key[0], tenant_id, access)
            else:
                caller = await _authorise_user(session, runtime, token, tenant_id, access)
            request.state.tenant_id = caller.tenant_id
            yield TenantScope(session, caller)

    dependency.parley_access = access  # type: ignore[attr-defined]
    return Depends(dependency, scope="function")


class CurrentUser:
    """A signed-in console user (no tenant context) and a session with the user bound."""

    def __init__(self, session: AsyncSession, user_id: UserId, family: uuid.UUID, admin: bool):
        self.session = session
        self.user_id = user_id
        self.session_family = family
        self.is_platform_admin = admin


async def authorise_user(
    session: AsyncSession, user_id: UserId, family: uuid.UUID, *, platform_admin: bool = False
) -> CurrentUser:
    """Check a user's session family is live (no tenant context): shared by bearer tokens and
    the console's cookie session."""
    await bind_user(session, user_id)
    row = await auth_repo.access_for(session, user_id=user_id, family_id=family, tenant_id=None)
    if row is None or not row.user_active or not row.session_live:
        raise InvalidToken(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if platform_admin and not row.is_platform_admin:
        raise Forbidden("This route is for platform administrators.")
    return CurrentUser(session, user_id, family, row.is_platform_admin)


def user_access(*, platform_admin: bool = False) -> Any:
    async def dependency(request: Request, credentials: BearerDep) -> AsyncIterator[CurrentUser]:
        runtime = get_runtime(request)
        token = _bearer_token(credentials)
        if split_api_key(token) is not None:
            raise InvalidToken(
                "API keys cannot be used here; this route needs a signed-in user.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        user_id, family = _user_claims(runtime, token)
        async with request_transaction(runtime.db) as session:
            yield await authorise_user(session, user_id, family, platform_admin=platform_admin)

    dependency.parley_access = Access(  # type: ignore[attr-defined]
        role="platform_admin" if platform_admin else "user", scope=None
    )
    return Depends(dependency, scope="function")


async def _platform_session(request: Request) -> AsyncIterator[AsyncSession]:
    runtime = get_runtime(request)
    async with request_transaction(runtime.db) as session:
        yield session


PlatformSession = Annotated[AsyncSession, Depends(_platform_session, scope="function")]
"""A transaction without tenant context, for the public auth routes (platform tables only)."""

SignedInUser = Annotated[CurrentUser, user_access()]
PlatformAdmin = Annotated[CurrentUser, user_access(platform_admin=True)]


def api_key_access(scope: str) -> Any:
    """Dependency for routes authenticated by an API key alone (the key names the tenant). It
    yields the caller only; the route opens the tenant's context through `tenant_session`."""
    access = Access(role="api_key", scope=scope)

    async def dependency(request: Request, credentials: BearerDep) -> TenantCaller:
        runtime = get_runtime(request)
        token = _bearer_token(credentials)
        api_key = split_api_key(token)
        if api_key is None:
            raise InvalidToken(
                "This API takes an API key (Authorization: Bearer prl_…).",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        # A short transaction: long-running routes (model calls) must not hold a connection.
        async with request_transaction(runtime.db) as session:
            caller = await _authorise_api_key(session, token, api_key[0], None, access)
        request.state.tenant_id = caller.tenant_id
        return caller

    dependency.parley_access = access  # type: ignore[attr-defined]
    return Depends(dependency)
