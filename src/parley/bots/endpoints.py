"""`/v1/tenants/{tenant_id}/bots`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from parley.auth.dependencies import TenantScope, tenant_access
from parley.bots import service
from parley.bots.schemas import BotCreate, BotOut, BotUpdate
from parley.kit.errors import Forbidden, NotFound, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

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


@router.patch("/{bot_id}", response_model=BotOut, summary="Update a bot (publishes a new version)")
async def update_bot(scope: Writer, bot_id: uuid.UUID, body: BotUpdate) -> BotOut:
    return await service.update_bot(scope.session, scope.tenant_id, scope.principal, bot_id, body)


@router.delete("/{bot_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a bot")
async def delete_bot(scope: Writer, bot_id: uuid.UUID) -> Response:
    await service.delete_bot(scope.session, scope.tenant_id, bot_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
