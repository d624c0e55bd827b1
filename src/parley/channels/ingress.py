"""Channel ingress: verify → store the raw event (deduplicated per channel) → enqueue its
processing job, all in one transaction (one statement, `parley_inbound_receive`), then answer
200 at once.

Nothing is written before the delivery is verified: Telegram's secret-token header, or the
Standard Webhooks signature (timestamp checked first, before any database work), against the
channel's secret as the door remembers it; the storing statement refuses a secret that is no
longer the channel's (decision 0008). A redelivery (same `update_id` / `webhook-id`) finds its
row and answers 200 without enqueueing anything.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, cast

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from parley.channels import signatures, telegram
from parley.channels.door import RECHECK_SECONDS, ChannelKey, channel_key, channel_keys
from parley.channels.service import ChannelNotFound
from parley.kit import jsonbody
from parley.kit.db import driver_statement
from parley.kit.errors import ParleyError, TenantSuspended, Unauthorized, Unprocessable
from parley.kit.ids import new_id
from parley.kit.jobs import worker_nudge
from parley.kit.metrics import INBOUND_RECEIVED
from parley.kit.runtime import Runtime
from parley.kit.security import constant_time_equals

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


class ChannelChanged(ParleyError):
    status = 503
    code = "channel_changed"
    title = "The channel's secret changed while the delivery was checked; send it again"


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


_RECEIVE = "SELECT parley_inbound_receive($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10)"
_DATA_EXCEPTION = "22"  # SQLSTATE class: a value PostgreSQL cannot store (NUL, bad escapes)


async def _receive(
    runtime: Runtime,
    key: ChannelKey,
    channel_id: uuid.UUID,
    kind: str,
    stored: tuple[str, str, str, str] | None,
) -> str:
    """One round trip: check the secret is still current and the workspace active, then
    store the event and enqueue its job (`stored` = dedupe key, external user id, text, JSON
    payload; None for a verified delivery with nothing to store). Returns accepted,
    duplicate, ignored, stale, suspended or not_found."""
    dedupe_key, external_user_id, message_text, payload = stored or (None, None, None, None)
    try:
        async with driver_statement(runtime.db) as conn:
            outcome = await conn.fetchval(
                _RECEIVE,
                key.tenant_id,
                channel_id,
                kind,
                key.secret_encrypted,
                new_id(),
                dedupe_key,
                external_user_id,
                message_text,
                payload,
                PROCESS_JOB,
            )
            return str(outcome)
    except asyncpg.PostgresError as exc:
        state = str(exc.sqlstate or "")
        if state.startswith(_DATA_EXCEPTION):
            raise InvalidEvent("The delivery holds characters that cannot be stored.") from exc
        if state == "23503":  # the channel was deleted while the delivery was stored
            return "not_found"
        raise


async def _verified_key(
    runtime: Runtime,
    channel_id: uuid.UUID,
    kind: str,
    verify: Callable[[str], None],
    *,
    fresh: bool,
) -> ChannelKey:
    """The channel's key once `verify` accepts the delivery with its secret. A remembered key
    that fails is looked up again if it is older than RECHECK_SECONDS (a secret replaced in
    another process), so a flood of forged deliveries costs at most one lookup per interval."""
    key = await channel_key(runtime, channel_id, kind, fresh=fresh)
    if key is None:
        raise ChannelNotFound()
    try:
        _verify_any(key, verify)
    except ParleyError:
        if fresh or time.monotonic() - key.loaded_at < RECHECK_SECONDS:
            raise
        key = await channel_key(runtime, channel_id, kind, fresh=True)
        if key is None:
            raise ChannelNotFound() from None
        _verify_any(key, verify)
    return key


def _verify_any(key: ChannelKey, verify: Callable[[str], None]) -> None:
    """Accept the delivery if one of the channel's live secrets verifies it (during a
    rotation's grace period, the previous one too); the last failure is raised."""
    *earlier, last = key.secrets()
    for secret in earlier:
        try:
            verify(secret)
            return
        except ParleyError:
            continue
    verify(last)


async def _deliver(
    runtime: Runtime,
    channel_id: uuid.UUID,
    kind: str,
    verify: Callable[[str], None],
    parse: Callable[[], tuple[str, str, str, str] | None],
) -> Outcome:
    """Look the channel up (from memory when it can), `verify` the delivery with its secret,
    `parse` it, store it. A secret that changed since it was remembered is reloaded and the
    delivery verified again."""
    key = await _verified_key(runtime, channel_id, kind, verify, fresh=False)
    parsed = parse()
    for _ in range(2):
        outcome = await _receive(runtime, key, channel_id, kind, parsed)
        if outcome == "accepted":
            worker_nudge(runtime).poke()  # its job was enqueued without a NOTIFY
        if outcome in ("accepted", "duplicate", "ignored"):
            return cast(Outcome, outcome)
        if outcome == "suspended":
            raise TenantSuspended()
        if outcome == "not_found":
            channel_keys(runtime).forget(channel_id, kind)
            raise ChannelNotFound()
        key = await _verified_key(runtime, channel_id, kind, verify, fresh=True)  # stale
    channel_keys(runtime).forget(channel_id, kind)
    raise ChannelChanged()


def _check_size(runtime: Runtime, body: bytes) -> None:
    limit = runtime.settings.parley_inbound_max_body_bytes
    if len(body) > limit:
        raise InboundTooLarge(f"The delivery is {len(body)} bytes; the limit is {limit}.")


async def receive_telegram(
    runtime: Runtime, channel_id: uuid.UUID, secret_token: str | None, body: bytes
) -> Outcome:
    def verify(secret: str) -> None:
        if not secret_token or not constant_time_equals(secret_token, secret):
            raise InvalidSecretToken()

    def parse() -> tuple[str, str, str, str] | None:
        update = telegram.parse_update(body)
        if update is None:
            raise InvalidEvent("The body is not a Telegram update.")
        if update.chat_id is None or (update.text is None and update.voice_file_id is None):
            return None  # not a text or voice message: acknowledged, not stored
        payload = json.dumps(jsonbody.loads(body))
        # A voice message is stored without text; processing transcribes it (telegram_voice.py).
        return str(update.update_id), str(update.chat_id), update.text or "", payload

    try:
        _check_size(runtime, body)
        outcome = await _deliver(runtime, channel_id, "telegram", verify, parse)
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

        def verify(secret: str) -> None:
            try:
                signatures.verify(secret, msg_id, ts, body, signature)
            except signatures.SignatureError as exc:
                raise InvalidSignature() from exc

        def parse() -> tuple[str, str, str, str]:
            message = _parse_webhook(body)
            payload = json.dumps(message.model_dump(exclude_none=True))
            return msg_id, message.external_user_id, message.text, payload

        outcome = await _deliver(runtime, channel_id, "webhook", verify, parse)
    except ParleyError:
        INBOUND_RECEIVED.labels("webhook", "refused").inc()
        raise
    INBOUND_RECEIVED.labels("webhook", outcome).inc()
    return outcome


def _parse_webhook(body: bytes) -> WebhookMessage:
    try:
        data = jsonbody.loads(body)
    except ValueError as exc:
        raise InvalidEvent(
            "The body is not JSON (or nests too deep, or has a non-finite number)."
        ) from exc
    try:
        return WebhookMessage.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()[:20]
        ]
        names = ", ".join(".".join(e["loc"]) for e in errors[:5]) or "body"
        raise InvalidEvent(f"Invalid fields: {names}", extra={"errors": errors}) from exc
