"""`/v1/tenants/{tenant_id}/bots`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from parley.auth.dependencies import TenantScope, tenant_access
from parley.bots import service, versions
from parley.bots.schemas import (
    BotCreate,
    BotOut,
    BotUpdate,
    ConfigChanges,
    VersionDiff,
    VersionOut,
)
from parley.kit.errors import Conflict, Forbidden, NotFound, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from parley.kit.runtime import get_runtime

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/bots",
    tags=["bots"],
    responses=merge_responses(NotFound, Forbidden),
)

Reader = Annotated[TenantScope, tenant_access("viewer", "bots:read")]
Writer = Annotated[TenantScope, tenant_access("editor", "bots:write")]


@router.post("", response_model=BotOut, status_code=status.HTTP_201_CREATED, summary="Create a bot")
async def create_bot(scope: Writer, body: BotCreate) -> BotOut:
    return await service.create_bot(scope.session, scope.tenant_id, scope.principal, body)


@router.get("", response_model=Page[BotOut], summary="List bots")
async def list_bots(
    scope: Reader,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[BotOut]:
    return await service.list_bots(scope.session, scope.tenant_id, cursor, limit)


@router.get("/{bot_id}", response_model=BotOut, summary="Get a bot and its published configuration")
async def get_bot(scope: Reader, bot_id: uuid.UUID) -> BotOut:
    return await service.get_bot(scope.session, scope.tenant_id, bot_id)


@router.patch(
    "/{bot_id}",
    response_model=BotOut,
    summary="Update a bot (publishes a new version)",
    responses=merge_responses(Conflict),
)
async def update_bot(scope: Writer, bot_id: uuid.UUID, body: BotUpdate) -> BotOut:
    return await service.update_bot(scope.session, scope.tenant_id, scope.principal, bot_id, body)


@router.delete("/{bot_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a bot")
async def delete_bot(scope: Writer, bot_id: uuid.UUID) -> Response:
    await service.delete_bot(scope.session, scope.tenant_id, scope.principal, bot_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- versions ---------------------------------------------------------------------------------


@router.post(
    "/{bot_id}/versions",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a draft from the published version, with the given changes",
)
async def create_version(scope: Writer, bot_id: uuid.UUID, body: ConfigChanges) -> VersionOut:
    return await versions.create_draft(
        scope.session, scope.tenant_id, scope.principal, bot_id, body
    )


@router.get("/{bot_id}/versions", response_model=Page[VersionOut], summary="List a bot's versions")
async def list_versions(
    scope: Reader,
    bot_id: uuid.UUID,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[VersionOut]:
    return await versions.list_versions(scope.session, scope.tenant_id, bot_id, cursor, limit)


@router.get("/{bot_id}/versions/{version_id}", response_model=VersionOut, summary="Get a version")
async def get_version(scope: Reader, bot_id: uuid.UUID, version_id: uuid.UUID) -> VersionOut:
    return await versions.get_version(scope.session, scope.tenant_id, bot_id, version_id)


@router.patch(
    "/{bot_id}/versions/{version_id}",
    response_model=VersionOut,
    summary="Edit a draft",
    responses=merge_responses(Conflict),
)
async def edit_version(
    scope: Writer, bot_id: uuid.UUID, version_id: uuid.UUID, body: ConfigChanges
) -> VersionOut:
    return await versions.edit_draft(
        scope.session, scope.tenant_id, scope.principal, bot_id, version_id, body
    )


@router.get(
    "/{bot_id}/versions/{version_id}/diff",
    response_model=VersionDiff,
    summary="Field-level diff and instructions line diff against another version",
)
async def diff_version(
    scope: Reader, bot_id: uuid.UUID, version_id: uuid.UUID, against: uuid.UUID
) -> VersionDiff:
    return await versions.diff(scope.session, scope.tenant_id, bot_id, version_id, against)


@router.post(
    "/{bot_id}/versions/{version_id}/chat",
    response_model=versions.PreviewReply,
    summary="Try a version (typically a draft) without storing a conversation",
)
async def preview_chat(
    request: Request,
    scope: Writer,
    bot_id: uuid.UUID,
    version_id: uuid.UUID,
    body: versions.PreviewChat,
) -> versions.PreviewReply:
    return await versions.preview(
        scope.session,
        get_runtime(request),
        scope.tenant_id,
        bot_id,
        version_id,
        body,
        actor=scope.principal.actor,
    )
