"""Processing one inbound event, in a job: conversation → user message → the bot's turn →
reply sent → done. Every step records its result on the event row before the next starts,
so a retried job or one re-run after its worker was killed picks up where it stopped:

- the user message is stored once (its id is kept on the event, in the same transaction);
- the turn's operation id is the event id: once the turn's ledger row has succeeded, a re-run
  gets the stored reply and never calls the provider again;
- the reply is sent only while the event has no `reply_sent_at`, which is set in the
  transaction right after the send succeeds.

The one window left is a crash between the channel accepting the send and that transaction
committing: the reply is then sent again (at least once). Webhook receivers can drop the repeat:
it carries the same `webhook-id`. Telegram has no such key, so a repeat there is possible, only
in that window. Two live runs of one event never overlap (see `process_event`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import select, text, update

from parley.channels import signatures, telegram
from parley.channels import telegram_voice as voice_telegram
from parley.conversations import chat, handoff
from parley.conversations import repository as conv_repo
from parley.conversations.events import Pending, publish_visitor_message
from parley.conversations.schemas import message_json
from parley.kit.db import TenantId, platform_session, tenant_session
from parley.kit.errors import sql_problem
from parley.kit.http import OutboundFailed, OutboundTooLarge, fetch
from parley.kit.metrics import CHANNEL_SENDS
from parley.kit.runtime import Runtime
from parley.kit.ssrf import UnsafeUrl
from parley.models import Channel, InboundEvent

log = structlog.get_logger(__name__)


class RetryLater(Exception):
    """A step failed in a way that may pass (provider down, receiver down): the job system
    retries with backoff; everything done so far is kept."""


@dataclass(frozen=True)
class _Target:
    type: str
    config: dict[str, Any]
    token_encrypted: str | None
    secret_encrypted: str | None
    tenant_id: TenantId | None = None
    bot_id: uuid.UUID | None = None
    payload: dict[str, Any] = field(default_factory=dict)  # the update (a voice message?)
    # During a secret rotation's grace period replies carry a signature with each secret.
    previous_secret_encrypted: str | None = None


def _live_previous(ch: Channel) -> str | None:
    end = ch.previous_secret_expires_at
    if ch.previous_secret_encrypted is None or end is None or end <= datetime.now(UTC):
        return None
    return ch.previous_secret_encrypted


async def _note_error(
    runtime: Runtime, tenant_id: TenantId, event_id: uuid.UUID, error: str
) -> None:
    async with tenant_session(runtime.db, tenant_id) as session:
        await session.execute(
            update(InboundEvent)
            .where(InboundEvent.tenant_id == tenant_id, InboundEvent.id == event_id)
            .values(error=error[:200])
        )


_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


async def process_event(runtime: Runtime, tenant_id: TenantId, event_id: uuid.UUID) -> str:
    """Run the event to its end; returns its final status. Raises RetryLater (or any error)
    to have the job retried.

    A transaction-scoped advisory lock on the event is held while it is processed: should the
    queue ever hand the same event to two live runs (a worker whose heartbeat went stale while
    it was still working), the second finds it taken and retries later. PostgreSQL releases
    the lock when its holder's connection dies, so a killed worker never leaves it behind."""
    key = int.from_bytes(event_id.bytes[8:], "big", signed=True)
    async with platform_session(runtime.db) as guard:
        if not await guard.scalar(_TRY_LOCK, {"key": key}):
            raise RetryLater("busy")
        return await _process(runtime, tenant_id, event_id)


class _Untranscribed(Exception):
    """A Telegram voice message without its transcript yet (the event's text is empty)."""


async def _process(runtime: Runtime, tenant_id: TenantId, event_id: uuid.UUID) -> str:
    try:
        return await _process_transcribed(runtime, tenant_id, event_id)
    except Exception as exc:
        refused = sql_problem(exc)
        if refused is None:
            raise
        return await _over_limit(runtime, tenant_id, event_id, refused)


async def _over_limit(
    runtime: Runtime, tenant_id: TenantId, event_id: uuid.UUID, refused: dict[str, Any]
) -> str:
    """The workspace is over a plan limit or the contact over their daily budget (migration
    0025): nothing of the message was stored. The event fails for good with the problem's
    code, and the contact is told the workspace's message, best effort (no retry)."""
    code = str(refused["code"])
    async with tenant_session(runtime.db, tenant_id) as session:
        ev = await session.scalar(
            select(InboundEvent).where(
                InboundEvent.tenant_id == tenant_id, InboundEvent.id == event_id
            )
        )
        ch = None
        if ev is not None:
            ch = await session.scalar(
                select(Channel).where(Channel.tenant_id == tenant_id, Channel.id == ev.channel_id)
            )
        if ev is None or ch is None:
            return "gone"
        ev.status, ev.error, ev.processed_at = "failed", code, datetime.now(UTC)
        target = _Target(
            ch.type,
            dict(ch.config or {}),
            ch.token_encrypted,
            ch.secret_encrypted,
            None,  # no voice note for a notice
            ch.bot_id,
            dict(ev.payload or {}),
        )
        conversation_id, contact = ev.conversation_id, ev.external_user_id
    text_ = refused["extra"].get("message") or OVER_LIMIT_TEXT
    notice: dict[str, Any] = {"id": f"limit-{event_id}", "content": text_, "citations": []}
    try:
        await _send(runtime, target, conversation_id, contact, notice)
    except (RetryLater, _Refused) as exc:
        log.warning("channels.limit_notice_failed", tenant_id=str(tenant_id), reason=str(exc))
    log.info("channels.over_limit", tenant_id=str(tenant_id), event_id=str(event_id), code=code)
    return "failed"


OVER_LIMIT_TEXT = "We can't take more messages right now. Please try again later."


async def _process_transcribed(runtime: Runtime, tenant_id: TenantId, event_id: uuid.UUID) -> str:
    try:
        return await _process_once(runtime, tenant_id, event_id)
    except _Untranscribed:
        pass
    try:  # the voice message gets its text (channels/telegram_voice.py), then goes on as a text one
        if await voice_telegram.transcribe_event(runtime, tenant_id, event_id) != "ready":
            return "failed"
    except voice_telegram.VoiceRetryLater as exc:
        await _note_error(runtime, tenant_id, event_id, str(exc))
        raise RetryLater(str(exc)) from exc
    return await _process_once(runtime, tenant_id, event_id)


async def _process_once(runtime: Runtime, tenant_id: TenantId, event_id: uuid.UUID) -> str:
    turn = prepared = None
    held = False
    fresh_message: dict[str, Any] | None = None
    pending = Pending()
    async with tenant_session(runtime.db, tenant_id) as session:
        ev = (
            await session.execute(
                select(InboundEvent)
                .where(InboundEvent.tenant_id == tenant_id, InboundEvent.id == event_id)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if ev is None or ev.status in ("done", "ignored", "failed"):
            return ev.status if ev is not None else "gone"
        ch = (
            await session.execute(
                select(Channel).where(Channel.tenant_id == tenant_id, Channel.id == ev.channel_id)
            )
        ).scalar_one_or_none()
        if ch is None:
            return "gone"
        if not ev.text and ev.user_message_id is None:
            raise _Untranscribed()  # rolls this transaction back: nothing was written yet
        ev.attempts += 1
        ev.status = "processing"
        reply = None
        if ev.reply_message_id is not None:
            reply = await conv_repo.get_message(session, tenant_id, ev.reply_message_id)
        if reply is None:
            if ev.conversation_id is None:
                ev.conversation_id = await chat.contact_conversation(
                    session, tenant_id, ch.id, ch.bot_id, ev.external_user_id
                )
            message = None
            if ev.user_message_id is not None:
                message = await conv_repo.get_message(session, tenant_id, ev.user_message_id)
            new = message is None
            if message is None:
                message = await chat.add_user_message(
                    session,
                    tenant_id,
                    ev.conversation_id,
                    ev.text,
                    spoken=telegram.voice_file_id(dict(ev.payload or {})) is not None,
                )
                ev.user_message_id = message.id
                fresh_message = message_json(message)
            handling = await chat.handling_after_message(
                session, tenant_id, ev.conversation_id, ch.bot_id, message, new=new
            )
            if handling == "requested":  # a handoff phrase: the announcement is the reply
                said = await handoff.announce_in(session, tenant_id, ev.conversation_id, pending)
                if said.message is not None:
                    reply = await conv_repo.get_message(session, tenant_id, said.message.id)
                    ev.reply_message_id = said.message.id
            elif handling in ("waiting", "assigned"):
                held = True
            else:
                turn, prepared = await chat.prepare_channel_turn(
                    session, runtime, tenant_id, ch.bot_id, message, ev.id, f"inbound:{ch.id}"
                )
        target = _Target(
            ch.type,
            dict(ch.config or {}),
            ch.token_encrypted,
            ch.secret_encrypted,
            tenant_id,
            ch.bot_id,
            dict(ev.payload or {}),
            _live_previous(ch),
        )
        conversation_id, contact = ev.conversation_id, ev.external_user_id
        already_sent = ev.reply_sent_at is not None
        if held:  # a person holds the conversation: stored, no turn, nothing to send
            ev.status = "done"
            ev.processed_at = datetime.now(UTC)

    await pending.flush(runtime)
    if fresh_message is not None:
        await publish_visitor_message(runtime, tenant_id, fresh_message)
    if held:
        return "done"
    if reply is not None:
        reply_json = message_json(reply)
    else:
        assert turn is not None
        assert prepared is not None
        outcome = await chat.run_channel_turn(runtime, turn, prepared)
        if outcome.reply is None:
            code = str((outcome.error or {}).get("code", "turn_failed"))
            await _note_error(runtime, tenant_id, event_id, code)
            raise RetryLater(code)
        reply_json = outcome.reply
        async with tenant_session(runtime.db, tenant_id) as session:
            await session.execute(
                update(InboundEvent)
                .where(
                    InboundEvent.tenant_id == tenant_id,
                    InboundEvent.id == event_id,
                    InboundEvent.reply_message_id.is_(None),
                )
                .values(reply_message_id=uuid.UUID(str(reply_json["id"])))
            )

    status, error = "done", None
    if not already_sent:
        try:
            await _send(runtime, target, conversation_id, contact, reply_json)
            CHANNEL_SENDS.labels(target.type, "sent").inc()
        except _Refused as exc:
            CHANNEL_SENDS.labels(target.type, "refused").inc()
            log.warning("channels.reply_refused", tenant_id=str(tenant_id), event_id=str(event_id))
            status, error = "failed", exc.reason[:200]
        except RetryLater as exc:
            CHANNEL_SENDS.labels(target.type, "retry").inc()
            await _note_error(runtime, tenant_id, event_id, str(exc))
            raise
    async with tenant_session(runtime.db, tenant_id) as session:
        now = datetime.now(UTC)
        await session.execute(
            update(InboundEvent)
            .where(InboundEvent.tenant_id == tenant_id, InboundEvent.id == event_id)
            .values(
                status=status,
                error=error,
                reply_sent_at=now if status == "done" else None,
                processed_at=now,
            )
        )
    return status


class _Refused(Exception):
    """The channel refused the reply for good (Telegram: bot blocked, chat not found)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _send(
    runtime: Runtime,
    target: _Target,
    conversation_id: uuid.UUID | None,
    contact: str,
    reply: dict[str, Any],
) -> None:
    if target.type == "telegram":
        if target.token_encrypted is None:
            raise _Refused("no_bot_token")
        token = runtime.keyring.decrypt(target.token_encrypted)
        base = telegram.base_url(runtime, target.config)
        try:
            await telegram.send_message(runtime, base, token, int(contact), reply["content"])
        except telegram.TelegramError as exc:
            if exc.retryable:
                raise RetryLater(f"telegram_{exc.status or 'unreachable'}") from exc
            if exc.status is None:  # the SSRF guard refused the channel's Bot API base
                raise _Refused("telegram_api_base_refused") from exc
            raise _Refused(f"telegram_{exc.status}: {exc.description}") from exc
        if target.tenant_id is not None and target.bot_id is not None:
            try:  # the voice note follows the text, best effort: the answer is already there
                await voice_telegram.send_voice_reply(
                    runtime,
                    target.tenant_id,
                    target.bot_id,
                    target.payload,
                    base,
                    token,
                    int(contact),
                    reply,
                )
            except telegram.TelegramError as exc:
                log.warning("channels.voice_reply_failed", reason=exc.description[:80])
        return
    if target.type == "webhook":
        if target.secret_encrypted is None:
            raise _Refused("no_secret")
        await send_callback(
            runtime,
            str(target.config.get("callback_url", "")),
            runtime.keyring.decrypt(target.secret_encrypted),
            {
                "type": "message.created",
                "data": {
                    "conversation_id": str(conversation_id),
                    "external_user_id": contact,
                    "message_id": str(reply["id"]),
                    "text": reply["content"],
                    "citations": reply.get("citations") or [],
                },
            },
            msg_id=f"msg_{reply['id']}",
            also_signed_with=[
                runtime.keyring.decrypt(x) for x in [target.previous_secret_encrypted] if x
            ],
        )
        return
    raise _Refused(f"unsupported_channel_type_{target.type}")


async def send_callback(
    runtime: Runtime,
    url: str,
    secret: str,
    payload: dict[str, Any],
    *,
    msg_id: str,
    also_signed_with: Sequence[str] = (),
) -> None:
    """POST the payload, signed (Standard Webhooks). Redirects are not followed; anything but
    a 2xx within the short timeout is a failure the job retries — except a destination the
    SSRF guard refuses, which fails the event for good (`callback_url_refused`). The message
    id is stable across retries, so the receiver can drop a repeat."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    timeout = runtime.settings.parley_channel_send_timeout_seconds
    headers = {
        "Content-Type": "application/json",
        **signatures.headers(secret, msg_id, body, also=also_signed_with),
    }
    try:
        response = await fetch(
            runtime,
            "POST",
            url,
            headers=headers,
            content=body,
            max_bytes=64_000,
            http_timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        )
    except UnsafeUrl as exc:  # the guard refused the destination: retrying cannot help
        raise _Refused("callback_url_refused") from exc
    except (OutboundFailed, OutboundTooLarge) as exc:
        raise RetryLater(f"callback_{exc.code}") from exc
    if not 200 <= response.status_code < 300:
        raise RetryLater(f"callback_http_{response.status_code}")


async def deliver_message(runtime: Runtime, tenant_id: TenantId, message_id: uuid.UUID) -> str:
    """Send a person's reply (`conversations.operator_reply`) to the contact on a
    Telegram or webhook channel. A job: a failure that may pass is retried (RetryLater); the
    webhook callback's `webhook-id` is the message id, so a receiver drops a repeat."""
    async with tenant_session(runtime.db, tenant_id) as session:
        message = await conv_repo.get_message(session, tenant_id, message_id)
        if message is None:
            return "gone"
        conversation = await conv_repo.conversation(session, tenant_id, message.conversation_id)
        if conversation is None:
            return "gone"
        ch = (
            await session.execute(
                select(Channel).where(
                    Channel.tenant_id == tenant_id, Channel.id == conversation.channel_id
                )
            )
        ).scalar_one_or_none()
        visitor = await conv_repo.visitor(session, tenant_id, conversation.visitor_id)
        if ch is None or not visitor.external_id:
            return "gone"
        target = _Target(
            ch.type,
            dict(ch.config or {}),
            ch.token_encrypted,
            ch.secret_encrypted,
            previous_secret_encrypted=_live_previous(ch),
        )
        contact, payload = visitor.external_id, message_json(message)
    try:
        await _send(runtime, target, conversation.id, contact, payload)
    except _Refused as exc:
        CHANNEL_SENDS.labels(target.type, "refused").inc()
        log.warning(
            "channels.operator_reply_refused",
            tenant_id=str(tenant_id),
            message_id=str(message_id),
            reason=exc.reason[:100],
        )
        return "refused"
    CHANNEL_SENDS.labels(target.type, "sent").inc()
    return "sent"
