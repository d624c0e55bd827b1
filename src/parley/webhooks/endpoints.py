"""`/v1/tenants/{tenant_id}/webhooks`: endpoints, their deliveries, the dead-letter queue."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from parley.auth.dependencies import TenantScope, tenant_access
from parley.kit.errors import Conflict, Forbidden, NotFound, Unprocessable, merge_responses
from parley.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from parley.kit.runtime import get_runtime
from parley.webhooks import service
from parley.webhooks.schemas import (
    DeliveryOut,
    DeliveryStatus,
    RetryOut,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/webhooks",
    tags=["webhooks"],
    responses=merge_responses(NotFound, Forbidden),
)

Reader = Annotated[TenantScope, tenant_access("viewer", "bots:read")]
Writer = Annotated[TenantScope, tenant_access("editor", "bots:write")]
Cursor = Annotated[str | None, Query(max_length=512)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.post(
    "",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a URL to events (the signing secret is returned once)",
    responses=merge_responses(Unprocessable),
)
async def create_webhook(request: Request, scope: Writer, body: WebhookCreate) -> WebhookCreated:
    return await service.create(
        scope.session, get_runtime(request), scope.tenant_id, body, actor=scope.principal.actor
    )


@router.get("", response_model=Page[WebhookOut], summary="List webhooks")
async def list_webhooks(
    scope: Reader, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> Page[WebhookOut]:
    return await service.list_webhooks(scope.session, scope.tenant_id, cursor, limit)


# Declared before `/{webhook_id}` so the literal path wins.
@router.get(
    "/dead-letters",
    response_model=Page[DeliveryOut],
    summary="The dead-letter queue: deliveries that failed every attempt, all endpoints",
)
async def dead_letters(
    scope: Reader, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> Page[DeliveryOut]:
    return await service.dead_letters(scope.session, scope.tenant_id, cursor, limit)


@router.get("/{webhook_id}", response_model=WebhookOut, summary="Get a webhook")
async def get_webhook(scope: Reader, webhook_id: uuid.UUID) -> WebhookOut:
    return await service.get(scope.session, scope.tenant_id, webhook_id)


@router.patch(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="Change a webhook's URL, events or enabled flag",
    responses=merge_responses(Unprocessable),
)
async def update_webhook(
    request: Request, scope: Writer, webhook_id: uuid.UUID, body: WebhookUpdate
) -> WebhookOut:
    return await service.update(
        scope.session,
        get_runtime(request),
        scope.tenant_id,
        webhook_id,
        body,
        actor=scope.principal.actor,
    )


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook (and its delivery log)",
)
async def delete_webhook(scope: Writer, webhook_id: uuid.UUID) -> Response:
    await service.delete(scope.session, scope.tenant_id, webhook_id, actor=scope.principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=SecretRotated,
    summary="New signing secret (returned once); the old one signs too during the window",
)
async def rotate_secret(request: Request, scope: Writer, webhook_id: uuid.UUID) -> SecretRotated:
    return await service.rotate_secret(
        scope.session,
        get_runtime(request),
        scope.tenant_id,
        webhook_id,
        actor=scope.principal.actor,
    )


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="A webhook's deliveries, newest first, each with its attempts",
)
async def list_deliveries(
    scope: Reader,
    webhook_id: uuid.UUID,
    status: DeliveryStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[DeliveryOut]:
    return await service.list_deliveries(
        scope.session, scope.tenant_id, webhook_id, status, cursor, limit
    )


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    summary="One delivery with its attempts",
)
async def get_delivery(scope: Reader, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> DeliveryOut:
    return await service.get_delivery(scope.session, scope.tenant_id, webhook_id, delivery_id)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    response_model=RetryOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Re-run a dead delivery once (idempotent while it waits to be sent)",
    responses=merge_responses(Conflict),
)
async def retry_delivery(scope: Writer, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> RetryOut:
    return await service.retry(
        scope.session, scope.tenant_id, webhook_id, delivery_id, actor=scope.principal.actor
    )
