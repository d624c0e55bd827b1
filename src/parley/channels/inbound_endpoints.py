"""`/v1/channels/{channel_id}/telegram` and `/v1/channels/{channel_id}/inbound`: public routes
on the explicit public list (ARCHITECTURE rule 11), each with its own check — Telegram's secret
token header, or the Standard Webhooks signature."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request

from parley.channels import ingress
from parley.channels.schemas import InboundAccepted
from parley.channels.service import ChannelNotFound
from parley.kit.errors import TenantSuspended, merge_responses
from parley.kit.runtime import get_runtime

router = APIRouter(prefix="/v1/channels", tags=["channel ingress"])


@router.post(
    "/{channel_id}/telegram",
    response_model=InboundAccepted,
    summary="Telegram webhook (Bot API updates; X-Telegram-Bot-Api-Secret-Token checked)",
    responses=merge_responses(
        ingress.InvalidSecretToken,
        ChannelNotFound,
        ingress.InboundTooLarge,
        ingress.InvalidEvent,
        TenantSuspended,
    ),
)
async def telegram_update(
    request: Request,
    channel_id: uuid.UUID,
    secret_token: Annotated[
        str | None, Header(alias="X-Telegram-Bot-Api-Secret-Token", max_length=256)
    ] = None,
) -> InboundAccepted:
    body = await request.body()
    outcome = await ingress.receive_telegram(get_runtime(request), channel_id, secret_token, body)
    return InboundAccepted(status=outcome)


@router.post(
    "/{channel_id}/inbound",
    response_model=InboundAccepted,
    summary="Webhook channel delivery (Standard Webhooks signature, 5-minute window; a "
    "repeated webhook-id answers 200 and does nothing)",
    responses=merge_responses(
        ingress.InvalidSignature,
        ChannelNotFound,
        ingress.InboundTooLarge,
        ingress.InvalidEvent,
        TenantSuspended,
    ),
)
async def webhook_delivery(
    request: Request,
    channel_id: uuid.UUID,
    webhook_id: Annotated[str | None, Header(alias="webhook-id", max_length=255)] = None,
    webhook_timestamp: Annotated[
        str | None, Header(alias="webhook-timestamp", max_length=20)
    ] = None,
    webhook_signature: Annotated[
        str | None, Header(alias="webhook-signature", max_length=2000)
    ] = None,
) -> InboundAccepted:
    body = await request.body()
    outcome = await ingress.receive_webhook(
        get_runtime(request), channel_id, webhook_id, webhook_timestamp, webhook_signature, body
    )
    return InboundAccepted(status=outcome)
