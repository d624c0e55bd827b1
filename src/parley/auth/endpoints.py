"""`/v1/auth/*` and `/v1/me`. Registering and accepting an invitation also make a membership:
they are `tenants.joining`'s."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

from parley.auth import service
from parley.auth.dependencies import PlatformSession, SignedInUser, limit_attempts
from parley.auth.schemas import (
    LoginRequest,
    LogoutRequest,
    MeResponse,
    RefreshRequest,
    TokenPair,
)
from parley.kit.errors import (
    InvalidCredentials,
    InvalidToken,
    TooManyRequests,
    Unauthorized,
    merge_responses,
)
from parley.kit.runtime import get_runtime

router = APIRouter(tags=["auth"])


@router.post(
    "/v1/auth/login",
    response_model=TokenPair,
    summary="Sign in with email and password",
    responses=merge_responses(InvalidCredentials, TooManyRequests),
)
async def login(request: Request, session: PlatformSession, body: LoginRequest) -> TokenPair:
    runtime = await limit_attempts(request, "login")
    return await service.login(session, runtime, str(body.email), body.password)


@router.post(
    "/v1/auth/refresh",
    response_model=TokenPair,
    summary="Exchange a refresh token for new tokens (the old one stops working)",
    responses=merge_responses(InvalidToken),
)
async def refresh(request: Request, session: PlatformSession, body: RefreshRequest) -> TokenPair:
    return await service.refresh(session, get_runtime(request), body.refresh_token)


@router.post(
    "/v1/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End this session (its access and refresh tokens stop working)",
    responses=merge_responses(Unauthorized),
)
async def logout(
    user: SignedInUser, body: Annotated[LogoutRequest | None, Body()] = None
) -> Response:
    await service.logout(
        user.session, user.user_id, user.session_family, body.refresh_token if body else None
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/me",
    response_model=MeResponse,
    summary="The signed-in user and their workspaces",
    responses=merge_responses(Unauthorized),
)
async def me(user: SignedInUser) -> MeResponse:
    return await service.me(user.session, user.user_id)
