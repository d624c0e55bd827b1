"""The console's doors: a signed-in user, and a member of a workspace with a role.

Both reuse the API's checks (`authorise_user`, `authorise_member`): the same session families,
the same tenant binding, the same roles, the same 404 for another workspace. The only
difference is where the credential comes from (the cookie) and the CSRF check in front of
every state-changing request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth.access import Access, Principal, TenantCaller, role_allows
from parley.auth.dependencies import TenantScope, authorise_member, authorise_user
from parley.console import session as cookie
from parley.kit.db import TenantId, UserId, request_transaction
from parley.kit.errors import InvalidToken, Unauthorized
from parley.kit.runtime import Runtime, get_runtime


class SignInRequired(Unauthorized):
    code = "sign_in_required"
    title = "Please sign in"


@dataclass
class Viewer:
    """Who is looking at a console page, and where."""

    request: Request
    runtime: Runtime
    session: AsyncSession
    user_id: UserId
    family: uuid.UUID
    is_platform_admin: bool
    caller: TenantCaller | None = None

    @property
    def tenant_id(self) -> TenantId:
        assert self.caller is not None, "a workspace page"
        return self.caller.tenant_id

    @property
    def principal(self) -> Principal:
        if self.caller is not None:
            return self.caller.principal
        return Principal(kind="user", user_id=self.user_id, session_family=self.family)

    @property
    def role(self) -> str | None:
        return self.caller.role if self.caller else None

    def can(self, role: str) -> bool:
        return role_allows(self.role, role)

    @property
    def scope(self) -> TenantScope:
        assert self.caller is not None
        return TenantScope(self.session, self.caller)

    @property
    def csrf(self) -> str:
        return cookie.csrf_token(self.runtime, cookie.csrf_secret(self.request))


def _session_or_sign_in(runtime: Runtime, request: Request) -> cookie.CookieSession:
    found = cookie.read(runtime, request)
    if found is None:
        raise SignInRequired()
    return found


def signed_in(*, platform_admin: bool = False) -> Any:
    async def dependency(request: Request) -> AsyncIterator[Viewer]:
        runtime = get_runtime(request)
        await cookie.check_csrf(runtime, request)
        found = _session_or_sign_in(runtime, request)
        async with request_transaction(runtime.db) as session:
            try:
                user = await authorise_user(
                    session, found.user_id, found.family, platform_admin=platform_admin
                )
            except InvalidToken as exc:
                raise SignInRequired() from exc
            yield Viewer(
                request, runtime, session, user.user_id, found.family, user.is_platform_admin
            )

    dependency.console_access = Access(  # type: ignore[attr-defined]
        role="platform_admin" if platform_admin else "user", scope=None
    )
    return Depends(dependency, scope="function")


def member(role: str = "viewer") -> Any:
    """A member of the workspace in the path with at least `role` (a viewer posting to an
    editor's form gets 403; another workspace's id gets 404, as in the API)."""
    access = Access(role=role, scope=None)

    async def dependency(request: Request, tenant_id: uuid.UUID) -> AsyncIterator[Viewer]:
        runtime = get_runtime(request)
        await cookie.check_csrf(runtime, request)
        found = _session_or_sign_in(runtime, request)
        async with request_transaction(runtime.db) as session:
            try:
                caller = await authorise_member(
                    session, found.user_id, found.family, tenant_id, access
                )
            except InvalidToken as exc:
                raise SignInRequired() from exc
            request.state.tenant_id = caller.tenant_id
            yield Viewer(
                request,
                runtime,
                session,
                found.user_id,
                found.family,
                caller.principal.is_platform_admin,
                caller,
            )

    dependency.console_access = access  # type: ignore[attr-defined]
    return Depends(dependency, scope="function")


async def anonymous(request: Request) -> AsyncIterator[tuple[Runtime, AsyncSession]]:
    """The sign-in and sign-up forms: CSRF-checked (login CSRF), no user yet."""
    runtime = get_runtime(request)
    await cookie.check_csrf(runtime, request)
    async with request_transaction(runtime.db) as session:
        yield runtime, session
