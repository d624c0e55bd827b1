"""`/v1/channels/{channel_id}/telegram` and `/v1/channels/{channel_id}/inbound`: public routes
on the explicit public list (ARCHITECTURE rule 11), each with its own check — Telegram's secret
token header, or the Standard Webhooks signature.

They are the ingress hot path (SPEC P7): the headers are read from the request rather than
declared as parameters (documented in `openapi_extra` instead), and the answer is one of three
fixed JSON bodies, so FastAPI neither solves header parameters nor serialises a model."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from parley.channels import ingress
from parley.channels.ingress_fastpath import ANSWERS
from parley.channels.schemas import InboundAccepted
from parley.channels.service import ChannelNotFound
from parley.kit.errors import TenantSuspended, merge_responses
from parley.kit.runtime import get_runtime

router = APIRouter(prefix="/v1/channels", tags=["channel ingress"])


def _answer(outcome: ingress.Outcome) -> Response:
    return Response(ANSWERS[outcome], media_type="application/json")


def _headers(*specs: tuple[str, int, str]) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": limit},
                "description": description,
            }
            for name, limit, description in specs
        ]
    }


def _header(request: Request, name: str, limit: int) -> str | None:
    """A header value, or None when it is absent or longer than `limit` (then the delivery
    fails its check like a missing header)."""
    value = request.headers.get(name)
    return value if value is not None and len(value) <= limit else None


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
        ingress.ChannelChanged,
    ),
    openapi_extra=_headers(
        ("X-Telegram-Bot-Api-Secret-Token", 256, "The secret token set with setWebhook"),
    ),
)
async def telegram_update(request: Request, channel_id: uuid.UUID) -> Response:
    body = await request.body()
    secret_token = _header(request, "x-telegram-bot-api-secret-token", 256)
    outcome = await ingress.receive_telegram(get_runtime(request), channel_id, secret_token, body)
    return _answer(outcome)


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
        ingress.ChannelChanged,
    ),
    openapi_extra=_headers(
        ("webhook-id", 255, "A unique id for this message; reuse it when retrying"),
        ("webhook-timestamp", 20, "Unix time in seconds (5 minutes of tolerance)"),
        ("webhook-signature", 2000, "`v1,<base64 HMAC-SHA256>`, space-separated"),
    ),
)
async def webhook_delivery(request: Request, channel_id: uuid.UUID) -> Response:
    body = await request.body()
    outcome = await ingress.receive_webhook(
        get_runtime(request),
        channel_id,
        _header(request, "webhook-id", 255),
        _header(request, "webhook-timestamp", 20),
        _header(request, "webhook-signature", 2000),
        body,
    )
    return _answer(outcome)
