"""Joining Parley: registering (an account and its first workspace) and accepting an invitation.

Both make a membership, so they compose `auth` (the user, the token pair) with `tenants` (the
workspace, the membership) and live above both. The paths are the same as when they were
`auth`'s routes.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth import service as auth
from parley.auth.dependencies import PlatformSession, SignedInUser, limit_attempts
from parley.auth.schemas import RegisterRequest, RegisterResponse, TenantOut, UserOut
from parley.kit.db import UserId
from parley.kit.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    merge_responses,
)
from parley.kit.ids import new_id
from parley.kit.runtime import Runtime
from parley.tenants import service as tenants
from parley.tenants.schemas import MembershipCreated

log = structlog.get_logger(__name__)

router = APIRouter(tags=["auth"])


async def register_account(
    session: AsyncSession, runtime: Runtime, body: RegisterRequest
) -> RegisterResponse:
    user = await auth.create_user(session, runtime, email=str(body.email), password=body.password)
    tenant = await tenants.create_tenant(session, name=body.tenant_name, owner_id=UserId(user.id))
    pair = await auth.issue_tokens(session, runtime, UserId(user.id), new_id())
    log.info("auth.registered", user_id=str(user.id), tenant_id=str(tenant.id))
    return RegisterResponse(
        **pair.model_dump(),
        user=UserOut(id=user.id, email=user.email),
        tenant=TenantOut(id=tenant.id, name=tenant.name, slug=tenant.slug),
    )


@router.post(
    "/v1/auth/register",
    response_model=RegisterResponse,
    status_code=status.HTTP_201_CREATED,
    summary="Create an account and its first workspace",
    responses=merge_responses(Conflict, Unprocessable, TooManyRequests),
)
async def register(
    request: Request, session: PlatformSession, body: RegisterRequest
) -> RegisterResponse:
    runtime = await limit_attempts(request, "register")
    return await register_account(session, runtime, body)


@router.post(
    "/v1/invitations/{token}/accept",
    response_model=MembershipCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Accept an invitation as the signed-in user",
    responses=merge_responses(Unauthorized, NotFound, Forbidden, Conflict),
)
async def accept_invitation(user: SignedInUser, token: str) -> MembershipCreated:
    return await tenants.accept_invitation(user.session, user.user_id, token)
