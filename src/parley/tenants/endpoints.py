"""`/v1/tenants/{tenant_id}`: the workspace, its members, invitations and API keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import Conflict, Forbidden, NotFound, Unprocessable, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from parley.kit.runtime import get_runtime
from parley.tenants import service
from parley.tenants.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
    MemberOut,
    MemberUpdate,
    TenantDetail,
    TenantUpdate,
)

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}",
    tags=["tenants"],
    responses=merge_responses(NotFound, Forbidden),
)

# API keys: reading the workspace needs `bots:read`; its members (emails) need `admin`. A
# `chat` key reads nothing here (docs/auth.md, "What each scope can read and write").
Viewer = Annotated[TenantScope, tenant_access("viewer", "bots:read")]
MemberReader = Annotated[TenantScope, tenant_access("viewer", "admin")]
Admin = Annotated[TenantScope, tenant_access("admin", "admin")]
Cursor = Annotated[str | None, Query(max_length=512, description="From `next_cursor`.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.get("", response_model=TenantDetail, summary="Get the workspace")
async def get_tenant(scope: Viewer) -> TenantDetail:
    return await service.get_tenant(scope.session, scope.tenant_id)


@router.patch("", response_model=TenantDetail, summary="Rename the workspace")
async def update_tenant(scope: Admin, body: TenantUpdate) -> TenantDetail:
    return await service.rename_tenant(
        scope.session, scope.tenant_id, body.name, actor=scope.principal.actor
    )


@router.get("/members", response_model=Page[MemberOut], summary="List members")
async def list_members(
    scope: MemberReader, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> Page[MemberOut]:
    return await service.list_members(scope.session, scope.tenant_id, cursor, limit)


@router.patch(
    "/members/{user_id}",
    response_model=MemberOut,
    summary="Change a member's role",
    responses=merge_responses(Conflict),
)
async def update_member(scope: Admin, user_id: uuid.UUID, body: MemberUpdate) -> MemberOut:
    return await service.change_role(
        scope.session, scope.tenant_id, scope.principal, scope.caller.role, user_id, body.role
    )


@router.delete(
    "/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member (or leave the workspace); their sessions and API keys end",
    responses=merge_responses(Conflict, Unprocessable),
)
async def remove_member(
    scope: Annotated[TenantScope, tenant_access("viewer", "admin")],
    user_id: uuid.UUID,
    api_keys: Annotated[
        service.KeyHandling,
        Query(
            description="The API keys the member created: `revoke` them (default) or "
            "`hand_over` them to you (each recorded in the audit log)."
        ),
    ] = "revoke",
) -> Response:
    await service.remove_member(
        scope.session, scope.tenant_id, scope.principal, scope.caller.role, user_id, api_keys
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/invitations",
    response_model=InvitationCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Invite someone by email",
)
async def create_invitation(
    request: Request, scope: Admin, body: InvitationCreate
) -> InvitationCreated:
    ttl = get_runtime(request).settings.parley_invitation_ttl_seconds
    return await service.invite(scope.session, scope.tenant_id, scope.principal, body, ttl)


@router.get("/invitations", response_model=Page[InvitationOut], summary="List open invitations")
async def list_invitations(
    scope: Admin, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> Page[InvitationOut]:
    return await service.list_invitations(scope.session, scope.tenant_id, cursor, limit)


@router.delete(
    "/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an invitation",
)
async def revoke_invitation(scope: Admin, invitation_id: uuid.UUID) -> Response:
    await service.revoke_invitation(
        scope.session, scope.tenant_id, invitation_id, actor=scope.principal.actor
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (the key is shown once)",
    responses=merge_responses(Unprocessable),
)
async def create_api_key(scope: Admin, body: ApiKeyCreate) -> ApiKeyCreated:
    return await service.create_api_key(scope.session, scope.tenant_id, scope.principal, body)


@router.get("/api-keys", response_model=Page[ApiKeyOut], summary="List active API keys")
async def list_api_keys(
    scope: Admin, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> Page[ApiKeyOut]:
    return await service.list_api_keys(scope.session, scope.tenant_id, cursor, limit)


@router.delete(
    "/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key"
)
async def revoke_api_key(scope: Admin, key_id: uuid.UUID) -> Response:
    await service.revoke_api_key(
        scope.session, scope.tenant_id, key_id, actor=scope.principal.actor
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
