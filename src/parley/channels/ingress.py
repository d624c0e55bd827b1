"""Channel ingress: verify → store the raw event (deduplicated per channel) → enqueue its
processing job, all in one transaction, then answer 200 at once.

Nothing is written before the delivery is verified: Telegram's secret-token header, or the
Standard Webhooks signature (timestamp checked first, before any database work). A redelivery
(same `update_id` / `webhook-id`) finds its row and answers 200 without enqueueing anything.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.channels import signatures, telegram
from parley.channels.door import bind_channel_tenant
from parley.channels.service import ChannelNotFound
from parley.kit import jobs
from parley.kit.db import TenantId, request_transaction
from parley.kit.errors import ParleyError, TenantSuspended, Unauthorized, Unprocessable
from parley.kit.metrics import INBOUND_RECEIVED
from parley.kit.runtime import Runtime
from parley.kit.security import constant_time_equals
from parley.models import Channel, InboundEvent, Tenant

log = structlog.get_logger(__name__)

PROCESS_JOB = "channels.process_inbound"
Outcome = Literal["accepted", "duplicate", "ignored"]


class InvalidSecretToken(Unauthorized):
    code = "invalid_secret_token"
    title = "The X-Telegram-Bot-Api-Secret-Token header is missing or wrong"


class InvalidSignature(Unauthorized):
    code = "invalid_signature"
    title = "The webhook signature is missing, wrong or outside its time window"


class InboundTooLarge(ParleyError):
    status = 413
    code = "payload_too_large"
    title = "The delivery is larger than allowed"


class InvalidEvent(Unprocessable):
    code = "invalid_event"
    title = "The delivery's body is not a valid event"


class WebhookMessage(BaseModel):
    """What a webhook channel receives: one user's message."""

    model_config = ConfigDict(extra="forbid", strict=True)
    external_user_id: str = Field(min_length=1, max_length=255)
    text: str = Field(min_length=1, max_length=4000)
    metadata: dict[str, Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value)) > 4096:
            raise ValueError("metadata is limited to 4096 bytes of JSON")
        return value

    @field_validator("text", "external_user_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class SecretCache:
    """Decrypted channel secrets by ciphertext, so a delivery costs no Fernet decryption after
    the first. Keyed by ciphertext: a rotated secret is a new entry. Process memory only."""

    def __init__(self, size: int = 10_000) -> None:
        self._items: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def get(self, runtime: Runtime, ciphertext: str) -> str:
        plain = self._items.get(ciphertext)
        if plain is None:
            plain = runtime.keyring.decrypt(ciphertext)
            self._items[ciphertext] = plain
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return plain

    async def aclose(self) -> None:
        self._items.clear()


def _cache(runtime: Runtime) -> SecretCache:
    cache = runtime.clients.get("channel_secrets")
    if not isinstance(cache, SecretCache):
        cache = SecretCache()
        runtime.clients["channel_secrets"] = cache
    return cache


@dataclass(frozen=True)
class _Bound:
    tenant_id: TenantId
    secret: str


async def _bind(
    session: AsyncSession, runtime: Runtime, channel_id: uuid.UUID, kind: str
) -> _Bound:
    tenant_id = await bind_channel_tenant(session, channel_id, kind)
    if tenant_id is None:
        raise ChannelNotFound()
    row = (
        await session.execute(
            select(Channel.secret_encrypted, Tenant.status)
            .join(Tenant, Tenant.id == Channel.tenant_id)
            .where(Channel.tenant_id == tenant_id, Channel.id == channel_id)
        )
    ).first()
    if row is None or row[0] is None:
        raise ChannelNotFound()
    if row[1] != "active":
        raise TenantSuspended()
    return _Bound(tenant_id, _cache(runtime).get(runtime, row[0]))


async def _store(
    session: AsyncSession,
    tenant_id: TenantId,
    channel_id: uuid.UUID,
    dedupe_key: str,
    external_user_id: str,
    text: str,
    payload: dict[str, Any],
) -> bool:
    """Insert the event and enqueue its job in this transaction; False for a redelivery."""
    from parley.kit.ids import new_id

    event_id = new_id()
    inserted = await session.execute(
        insert(InboundEvent)
        .values(
            tenant_id=tenant_id,
            id=event_id,
            channel_id=channel_id,
            dedupe_key=dedupe_key,
            external_user_id=external_user_id,
            text=text,
            payload=payload,
            status="received",
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "channel_id", "dedupe_key"])
        .returning(InboundEvent.id)
    )
    if inserted.scalar_one_or_none() is None:
        return False
    await jobs.enqueue(
        session, PROCESS_JOB, {"tenant_id": str(tenant_id), "event_id": str(event_id)}
    )
    return True


def _check_size(runtime: Runtime, body: bytes) -> None:
    limit = runtime.settings.parley_inbound_max_body_bytes
    if len(body) > limit:
        raise InboundTooLarge(f"The delivery is {len(body)} bytes; the limit is {limit}.")


async def receive_telegram(
    runtime: Runtime, channel_id: uuid.UUID, secret_token: str | None, body: bytes
) -> Outcome:
    _check_size(runtime, body)
    try:
        async with request_transaction(runtime.db) as session:
            bound = await _bind(session, runtime, channel_id, "telegram")
            if not secret_token or not constant_time_equals(secret_token, bound.secret):
                raise InvalidSecretToken()
            update = telegram.parse_update(body)
            if update is None:
                raise InvalidEvent("The body is not a Telegram update.")
            if update.chat_id is None or update.text is None:
                outcome: Outcome = "ignored"  # not a text message: acknowledged, not stored
            else:
                stored = await _store(
                    session,
                    bound.tenant_id,
                    channel_id,
                    str(update.update_id),
                    str(update.chat_id),
                    update.text,
                    json.loads(body),
                )
                outcome = "accepted" if stored else "duplicate"
    except ParleyError:
        INBOUND_RECEIVED.labels("telegram", "refused").inc()
        raise
    INBOUND_RECEIVED.labels("telegram", outcome).inc()
    return outcome


async def receive_webhook(
    runtime: Runtime,
    channel_id: uuid.UUID,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
) -> Outcome:
    try:
        _check_size(runtime, body)
        if not msg_id or len(msg_id) > 255 or not signature or len(signature) > 2000:
            raise InvalidSignature("The webhook-id and webhook-signature headers are required.")
        try:
            ts = signatures.check_timestamp(timestamp, time.time())
        except signatures.SignatureError as exc:
            raise InvalidSignature(
                "The webhook-timestamp header is missing or more than 5 minutes off."
            ) from exc
        async with request_transaction(runtime.db) as session:
            bound = await _bind(session, runtime, channel_id, "webhook")
            try:
                signatures.verify(bound.secret, msg_id, ts, body, signature)
            except signatures.SignatureError as exc:
                raise InvalidSignature() from exc
            message = _parse_webhook(body)
            stored = await _store(
                session,
                bound.tenant_id,
                channel_id,
                msg_id,
                message.external_user_id,
                message.text,
                message.model_dump(exclude_none=True),
            )
            outcome: Outcome = "accepted" if stored else "duplicate"
    except ParleyError:
        INBOUND_RECEIVED.labels("webhook", "refused").inc()
        raise
    INBOUND_RECEIVED.labels("webhook", outcome).inc()
    return outcome


def _parse_webhook(body: bytes) -> WebhookMessage:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InvalidEvent("The body is not JSON.") from exc
    try:
        return WebhookMessage.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()[:20]
        ]
        names = ", ".join(".".join(e["loc"]) for e in errors[:5]) or "body"
        raise InvalidEvent(f"Invalid fields: {names}", extra={"errors": errors}) from exc
