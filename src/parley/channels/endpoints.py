"""`/v1/tenants/{tenant_id}/channels`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from parley.auth.dependencies import TenantScope, tenant_access
from parley.channels import service
from parley.channels.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelOut,
    ChannelSecretRotate,
    ChannelSecretRotated,
    ChannelUpdate,
    InboundEventOut,
)
from parley.kit.errors import Forbidden, NotFound, Unprocessable, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from parley.kit.runtime import get_runtime

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/channels",
    tags=["channels"],
    responses=merge_responses(NotFound, Forbidden),
)

Reader = Annotated[TenantScope, tenant_access("viewer", "bots:read")]
Writer = Annotated[TenantScope, tenant_access("editor", "bots:write")]


@router.post(
    "",
    response_model=ChannelCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a channel: widget (returns widget_key), telegram or webhook (return "
    "their inbound_path and, once, webhook_secret)",
    responses=merge_responses(Unprocessable, service.TelegramRejected, service.TelegramUnavailable),
)
async def create_channel(scope: Writer, request: Request, body: ChannelCreate) -> ChannelCreated:
    return await service.create_channel(
        scope.session,
        get_runtime(request),
        scope.tenant_id,
        body,
        actor=scope.principal.actor,
        request_base_url=str(request.base_url),
    )


@router.get("", response_model=Page[ChannelOut], summary="List channels")
async def list_channels(
    scope: Reader,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[ChannelOut]:
    return await service.list_channels(scope.session, scope.tenant_id, cursor, limit)


@router.get("/{channel_id}", response_model=ChannelOut, summary="Get a channel")
async def get_channel(scope: Reader, channel_id: uuid.UUID) -> ChannelOut:
    return await service.get_channel(scope.session, scope.tenant_id, channel_id)


@router.get(
    "/{channel_id}/events",
    response_model=Page[InboundEventOut],
    summary="List a Telegram or webhook channel's inbound deliveries and their processing",
)
async def list_channel_events(
    scope: Reader,
    channel_id: uuid.UUID,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Page[InboundEventOut]:
    return await service.list_events(scope.session, scope.tenant_id, channel_id, cursor, limit)


@router.patch("/{channel_id}", response_model=ChannelOut, summary="Update a channel")
async def update_channel(scope: Writer, channel_id: uuid.UUID, body: ChannelUpdate) -> ChannelOut:
    return await service.update_channel(
        scope.session, scope.tenant_id, channel_id, body, actor=scope.principal.actor
    )


@router.post(
    "/{channel_id}/rotate-secret",
    response_model=ChannelSecretRotated,
    summary="Rotate a webhook channel's inbound secret: the new one is returned once, the "
    "previous one keeps verifying for the grace period",
    responses=merge_responses(Unprocessable, service.SecretNotRotatable),
)
async def rotate_secret(
    scope: Writer,
    request: Request,
    channel_id: uuid.UUID,
    body: ChannelSecretRotate | None = None,
) -> ChannelSecretRotated:
    return await service.rotate_secret(
        scope.session,
        get_runtime(request),
        scope.tenant_id,
        channel_id,
        body or ChannelSecretRotate(),
        actor=scope.principal.actor,
    )


@router.delete("/{channel_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a channel")
async def delete_channel(scope: Writer, request: Request, channel_id: uuid.UUID) -> Response:
    await service.delete_channel(
        scope.session,
        scope.tenant_id,
        channel_id,
        actor=scope.principal.actor,
        runtime=get_runtime(request),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
