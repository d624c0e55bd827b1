"""The widget's use cases: sessions, history, live events, feedback, and the SSE framing of a
send. Sending itself (for the widget, the compat API and voice alike) is
`parley.conversations.send`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from sqlalchemy import select

from parley.bots import repository as bots_repo
from parley.bots.schemas import BotConfig, Theme
from parley.conversations import handoff
from parley.conversations import repository as conv_repo
from parley.conversations.events import Pending, inbox_topic, topic
from parley.conversations.schemas import (
    HandoffOutcome,
    MessageOut,
    message_json,
)
from parley.conversations.send import (
    ConversationNotFound,
    Held,
    Replayed,
    Started,
    raise_if_not_live,
)
from parley.conversations.started import start_conversation
from parley.kit.db import request_transaction, tenant_session
from parley.kit.errors import InvalidToken, NotFound, TenantSuspended, TooManyRequests
from parley.kit.ids import new_id
from parley.kit.metrics import SSE_CONNECTIONS
from parley.kit.origins import is_allowed
from parley.kit.pagination import Page
from parley.kit.pubsub import RESYNC
from parley.kit.ratelimit import enforce
from parley.kit.runtime import Runtime
from parley.kit.security import digest, new_secret
from parley.kit.sse import sse_comment, sse_event
from parley.models import Channel, Visitor
from parley.widget.auth import (
    OriginNotAllowed,
    WidgetCaller,
    bind_widget_tenant,
    issue_widget_token,
)
from parley.widget.schemas import (
    BotInfo,
    FeedbackResponse,
    SessionRequest,
    SessionResponse,
    WhoAmI,
)

log = structlog.get_logger(__name__)

TOKEN_TTL = 15 * 60


class WidgetNotFound(NotFound):
    code = "widget_not_found"
    title = "No widget with this key"


class MessageNotFound(NotFound):
    code = "message_not_found"
    title = "Message not found"


class TooManyStreams(TooManyRequests):
    code = "too_many_streams"
    title = "This widget session has too many open event streams"


# --- liveness: a token is only as good as its workspace, channel and allowlist ----------------


async def require_live(runtime: Runtime, caller: WidgetCaller) -> None:
    """The routes whose own statement does not check the token (whoami, events, feedback)
    check it here: one round trip."""
    try:
        await conv_repo.widget_live(
            runtime.db, caller.tenant_id, caller.conversation_id, caller.epoch
        )
    except asyncpg.PostgresError as exc:
        raise_if_not_live(exc)
        raise


async def whoami(runtime: Runtime, caller: WidgetCaller) -> WhoAmI:
    await require_live(runtime, caller)
    return WhoAmI(
        visitor_id=caller.visitor_id,
        conversation_id=caller.conversation_id,
        channel_id=caller.channel_id,
        bot_id=caller.bot_id,
        origin=caller.origin,
        expires_at=datetime.fromtimestamp(caller.expires_at, UTC),
    )


# --- session ------------------------------------------------------------------------------


async def create_session(
    runtime: Runtime, body: SessionRequest, origin: str | None, client_ip: str
) -> SessionResponse:
    settings = runtime.settings
    if settings.parley_rate_limits == "on":
        await enforce(
            runtime.limiter,
            f"widget-session:{client_ip}",
            settings.parley_widget_sessions_per_minute,
            60,
        )
    async with request_transaction(runtime.db) as session:
        tenant_id = await bind_widget_tenant(session, body.widget_key)
        if tenant_id is None:
            raise WidgetNotFound()
        channel = (
            await session.execute(
                select(Channel).where(
                    Channel.tenant_id == tenant_id, Channel.widget_key == body.widget_key
                )
            )
        ).scalar_one_or_none()
        if channel is None:
            raise WidgetNotFound()
        if await conv_repo.tenant_status(session, tenant_id) != "active":
            raise TenantSuspended()
        if origin is None or not is_allowed(origin, list(channel.allowed_origins)):
            raise OriginNotAllowed()
        found = await bots_repo.published(session, tenant_id, channel.bot_id)
        if found is None:
            raise WidgetNotFound("This widget's bot no longer exists.")
        bot, version = found
        config = BotConfig.model_validate(version.config)

        visitor_token: str | None = None
        visitor = None
        if body.visitor_token:
            visitor = await conv_repo.visitor_by_token(
                session, tenant_id, channel.id, digest(body.visitor_token)
            )
            if visitor is not None:
                visitor_token = body.visitor_token
                visitor.last_seen_at = datetime.now(UTC)
                if body.page_url:
                    visitor.page_url = body.page_url
        if visitor is None:
            visitor_token = "vt_" + new_secret(24)
            visitor = Visitor(
                tenant_id=tenant_id,
                id=new_id(),
                channel_id=channel.id,
                token_hash=digest(visitor_token),
                page_url=body.page_url,
            )
            session.add(visitor)
            await session.flush()

        conversation = None
        if body.conversation_id is not None:
            candidate = await conv_repo.conversation(session, tenant_id, body.conversation_id)
            if candidate is not None and candidate.visitor_id == visitor.id:
                conversation = candidate
        if conversation is None:
            conversation = await conv_repo.latest_open_conversation(session, tenant_id, visitor.id)
        if conversation is None or conversation.bot_id != channel.bot_id:
            conversation = await start_conversation(
                session,
                tenant_id,
                bot_id=channel.bot_id,
                channel_id=channel.id,
                visitor_id=visitor.id,
            )

        token, exp = issue_widget_token(
            runtime,
            tenant_id=tenant_id,
            channel_id=channel.id,
            bot_id=channel.bot_id,
            conversation_id=conversation.id,
            visitor_id=visitor.id,
            origin=origin,
            ttl_seconds=TOKEN_TTL,
            epoch=channel.token_epoch,
        )
        theme = Theme.model_validate(
            {**config.theme.model_dump(exclude_none=True), **(channel.theme or {})}
        )
        greeting = theme.greeting or config.greeting
        assert visitor_token is not None
        return SessionResponse(
            token=token,
            expires_at=datetime.fromtimestamp(exp, UTC),
            conversation_id=conversation.id,
            visitor_token=visitor_token,
            bot=BotInfo(
                name=bot.name,
                greeting=greeting,
                theme=theme,
                voice=bool((channel.config or {}).get("voice")),
            ),
            handoff_status=conversation.handoff_status,
        )


# --- sending: the send path is `parley.conversations.send`; here is the widget's SSE framing


async def stream_send(outcome: Started | Replayed | Held) -> AsyncIterator[bytes]:
    SSE_CONNECTIONS.labels("reply").inc()
    try:
        if isinstance(outcome, Held):
            yield sse_event("message.created", outcome.user_message, outcome.user_message["id"])
            said = outcome.handoff.message
            if said is not None:
                reply = said.model_dump(mode="json")
                yield sse_event("reply.completed", reply, reply["id"])
            yield sse_event(
                "conversation.status",
                {
                    "handoff_status": outcome.handoff.handoff_status,
                    "ask_email": outcome.handoff.ask_email,
                },
            )
            return
        if isinstance(outcome, Replayed):
            yield sse_event("message.created", outcome.user_message, outcome.user_message["id"])
            yield sse_event("reply.completed", outcome.reply, outcome.reply["id"])
            return
        yield sse_event("message.created", outcome.user_message, outcome.user_message["id"])
        while True:
            chunk = await outcome.deltas.get()
            if chunk is None:
                break
            yield sse_event("reply.delta", {"text": chunk})
        result = await asyncio.shield(outcome.task)  # a disconnect must not cancel the turn
        if result.reply is not None:
            yield sse_event("reply.completed", result.reply, result.reply["id"])
        else:
            yield sse_event("error", result.error)
    finally:
        SSE_CONNECTIONS.labels("reply").dec()


# --- history, events, feedback ------------------------------------------------------------


def _own_conversation(caller: WidgetCaller, conversation_id: uuid.UUID) -> None:
    if conversation_id != caller.conversation_id:
        raise ConversationNotFound()


async def history(
    runtime: Runtime,
    caller: WidgetCaller,
    conversation_id: uuid.UUID,
    before: uuid.UUID | None,
    limit: int,
) -> Page[MessageOut]:
    _own_conversation(caller, conversation_id)
    try:
        rows = await conv_repo.chat_history(
            runtime.db, caller.tenant_id, conversation_id, before, limit + 1, caller.epoch
        )
    except asyncpg.PostgresError as exc:
        raise_if_not_live(exc)
        raise
    more = len(rows) > limit
    items = [MessageOut.model_validate(m) for m in reversed(rows[:limit])]
    return Page[MessageOut](items=items, next_cursor=str(items[0].id) if more and items else None)


async def events(
    runtime: Runtime,
    caller: WidgetCaller,
    conversation_id: uuid.UUID,
    last_event_id: uuid.UUID | None,
    disconnected: Any,
) -> AsyncIterator[bytes]:
    _own_conversation(caller, conversation_id)
    await require_live(runtime, caller)
    slots = runtime.client("widget.event_streams", StreamSlots)
    if not slots.acquire(caller, runtime.settings.parley_widget_streams_per_token):
        raise TooManyStreams(
            f"At most {runtime.settings.parley_widget_streams_per_token} event streams per "
            "widget session; close one first.",
            headers={"Retry-After": "5"},
        )
    return _event_stream(runtime, caller, last_event_id, disconnected, slots)


class StreamSlots:
    """Open event streams per widget token, in this process: one token may not hold more
    than a few (each is a connection and a subscription)."""

    def __init__(self) -> None:
        self.open: dict[str, tuple[int, int]] = {}  # token id -> (streams, token expiry)

    def acquire(self, caller: WidgetCaller, limit: int) -> bool:
        now = int(datetime.now(UTC).timestamp())
        for token_id, (_, exp) in list(self.open.items()):  # streams never outlive tokens
            if exp < now - 60:
                del self.open[token_id]
        count, _ = self.open.get(caller.token_id, (0, caller.expires_at))
        if count >= limit:
            return False
        self.open[caller.token_id] = (count + 1, caller.expires_at)
        return True

    def release(self, caller: WidgetCaller) -> None:
        count, exp = self.open.get(caller.token_id, (1, caller.expires_at))
        if count <= 1:
            self.open.pop(caller.token_id, None)
        else:
            self.open[caller.token_id] = (count - 1, exp)


async def _still_live(runtime: Runtime, caller: WidgetCaller) -> bool:
    try:
        await require_live(runtime, caller)
    except (TenantSuspended, ConversationNotFound, InvalidToken):
        return False
    return True


KEEP_ALIVE = 15.0  # seconds between `: keep-alive` comments on a quiet stream


async def _event_stream(
    runtime: Runtime,
    caller: WidgetCaller,
    last_event_id: uuid.UUID | None,
    disconnected: Any,
    slots: StreamSlots,
) -> AsyncIterator[bytes]:
    SSE_CONNECTIONS.labels("events").inc()
    sent: set[str] = set()
    last = last_event_id
    loop = asyncio.get_running_loop()
    recheck = runtime.settings.parley_widget_stream_recheck_seconds
    try:
        async with runtime.broker.subscribe(
            topic(caller.tenant_id, caller.conversation_id)
        ) as queue:
            yield sse_comment("connected")
            if last is not None:  # catch up on what the client missed
                async with tenant_session(runtime.db, caller.tenant_id) as session:
                    missed = await conv_repo.messages_after(
                        session, caller.tenant_id, caller.conversation_id, last, 200
                    )
                for m in missed:
                    sent.add(str(m.id))
                    yield sse_event("message.created", message_json(m), str(m.id))
            next_check = loop.time() + recheck
            quiet_since = loop.time()
            while True:
                if datetime.now(UTC).timestamp() >= caller.expires_at or await disconnected():
                    return
                if loop.time() >= next_check:
                    # A suspension, a deleted channel or a removed origin ends the stream.
                    if not await _still_live(runtime, caller):
                        return
                    next_check = loop.time() + recheck
                wait = max(0.01, min(next_check, quiet_since + KEEP_ALIVE) - loop.time())
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=wait)
                except TimeoutError:
                    if loop.time() - quiet_since >= KEEP_ALIVE:
                        quiet_since = loop.time()
                        yield sse_comment()
                    continue
                quiet_since = loop.time()
                if event.get("type") == RESYNC:  # Redis was away: the client resumes from
                    return  # its Last-Event-ID, which replays what it missed
                if event.get("type") in ("typing", "conversation.status"):  # not stored
                    yield sse_event(str(event["type"]), event.get("data") or {})
                    continue
                if event.get("type") == "reply.failed":  # an asynchronous send's turn failed
                    yield sse_event(
                        "reply.failed",
                        {"operation_id": event["operation_id"], "error": event["error"]},
                    )
                    continue
                message = event.get("message") or {}
                mid = str(message.get("id", ""))
                if not mid or mid in sent:
                    continue
                sent.add(mid)
                yield sse_event("message.created", message, mid)
    finally:
        slots.release(caller)
        SSE_CONNECTIONS.labels("events").dec()


async def feedback(
    runtime: Runtime, caller: WidgetCaller, message_id: uuid.UUID, rating: str, comment: str | None
) -> FeedbackResponse:
    await require_live(runtime, caller)
    pending = Pending()
    async with tenant_session(runtime.db, caller.tenant_id) as session:
        msg = await conv_repo.message_in_conversation(
            session, caller.tenant_id, caller.conversation_id, message_id
        )
        if msg is None or msg.role != "assistant":
            raise MessageNotFound()
        await conv_repo.upsert_feedback(session, caller.tenant_id, message_id, rating, comment)
        found = await bots_repo.published(session, caller.tenant_id, caller.bot_id)
        await handoff.on_feedback(
            session,
            caller.tenant_id,
            caller.conversation_id,
            rating,
            found[1].config if found is not None else None,
            pending,
        )
    await pending.flush(runtime)
    return FeedbackResponse.model_validate({"message_id": message_id, "rating": rating})


# --- handoff, contact, typing -------------------------------------------------------------


async def request_handoff(runtime: Runtime, caller: WidgetCaller) -> HandoffOutcome:
    """The "Talk to a person" button (a channel may hide it: `theme.handoff_button`)."""
    async with tenant_session(runtime.db, caller.tenant_id) as session:
        found = await bots_repo.published(session, caller.tenant_id, caller.bot_id)
    config = found[1].config if found is not None else None
    return await handoff.visitor_request(runtime, caller.tenant_id, caller.conversation_id, config)


async def leave_contact(runtime: Runtime, caller: WidgetCaller, email: str) -> None:
    """The email a visitor leaves when nobody can take the conversation now."""
    async with tenant_session(runtime.db, caller.tenant_id) as session:
        await conv_repo.set_visitor_email(session, caller.tenant_id, caller.visitor_id, email)
    await runtime.broker.publish(
        inbox_topic(caller.tenant_id),
        {
            "type": "contact.updated",
            "id": None,
            "data": {"conversation_id": str(caller.conversation_id), "email": email},
        },
    )


async def visitor_typing(runtime: Runtime, caller: WidgetCaller) -> None:
    """Tell the staff stream the visitor is typing (not stored)."""
    await runtime.broker.publish(
        inbox_topic(caller.tenant_id),
        {
            "type": "typing",
            "id": None,
            "data": {"conversation_id": str(caller.conversation_id), "who": "visitor"},
        },
    )
