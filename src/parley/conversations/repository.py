"""Queries for visitors, conversations, messages and feedback."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import Database, TenantId, driver_statement
from parley.models import Conversation, Message, MessageFeedback, Visitor


async def visitor_by_token(
    session: AsyncSession, tenant_id: TenantId, channel_id: uuid.UUID, token_hash: str
) -> Visitor | None:
    result = await session.execute(
        select(Visitor).where(
            Visitor.tenant_id == tenant_id,
            Visitor.token_hash == token_hash,
            Visitor.channel_id == channel_id,
        )
    )
    return result.scalar_one_or_none()


async def conversation(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID
) -> Conversation | None:
    result = await session.execute(
        select(Conversation).where(
            Conversation.tenant_id == tenant_id, Conversation.id == conversation_id
        )
    )
    return result.scalar_one_or_none()


async def latest_open_conversation(
    session: AsyncSession, tenant_id: TenantId, visitor_id: uuid.UUID
) -> Conversation | None:
    result = await session.execute(
        select(Conversation)
        .where(
            Conversation.tenant_id == tenant_id,
            Conversation.visitor_id == visitor_id,
            Conversation.status == "open",
        )
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def messages_before(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    before: uuid.UUID | None,
    limit: int,
) -> list[Message]:
    """Newest first, older than `before`."""
    query = (
        select(Message)
        .where(Message.tenant_id == tenant_id, Message.conversation_id == conversation_id)
        .order_by(Message.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(Message.id < before)
    return list((await session.execute(query)).scalars())


async def unsummarised_turns(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    after: uuid.UUID | None,
    before: uuid.UUID,
    limit: int = 500,
) -> list[tuple[uuid.UUID, str, str]]:
    """(id, role, content) of the messages the rolling summary does not cover yet, oldest
    first (at most the newest `limit`)."""
    query = (
        select(Message.id, Message.role, Message.content)
        .where(
            Message.tenant_id == tenant_id,
            Message.conversation_id == conversation_id,
            Message.id < before,
        )
        .order_by(Message.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(Message.id > after)
    return [(i, str(r), str(c)) for i, r, c in reversed((await session.execute(query)).all())]


async def save_summary(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    summary: str,
    upto: uuid.UUID,
) -> None:
    await session.execute(
        update(Conversation)
        .where(Conversation.tenant_id == tenant_id, Conversation.id == conversation_id)
        .values(summary=summary, summary_upto=upto)
    )


async def messages_after(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    after: uuid.UUID,
    limit: int,
) -> list[Message]:
    result = await session.execute(
        select(Message)
        .where(
            Message.tenant_id == tenant_id,
            Message.conversation_id == conversation_id,
            Message.id > after,
        )
        .order_by(Message.id)
        .limit(limit)
    )
    return list(result.scalars())


async def message_in_conversation(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> Message | None:
    result = await session.execute(
        select(Message).where(
            Message.tenant_id == tenant_id,
            Message.conversation_id == conversation_id,
            Message.id == message_id,
        )
    )
    return result.scalar_one_or_none()


async def get_message(
    session: AsyncSession, tenant_id: TenantId, message_id: uuid.UUID
) -> Message | None:
    result = await session.execute(
        select(Message).where(Message.tenant_id == tenant_id, Message.id == message_id)
    )
    return result.scalar_one_or_none()


async def touch_conversation(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID
) -> None:
    await session.execute(
        update(Conversation)
        .where(Conversation.tenant_id == tenant_id, Conversation.id == conversation_id)
        .values(last_message_at=datetime.now(UTC))
    )


async def upsert_feedback(
    session: AsyncSession,
    tenant_id: TenantId,
    message_id: uuid.UUID,
    rating: str,
    comment: str | None,
) -> None:
    stmt = insert(MessageFeedback).values(
        tenant_id=tenant_id, message_id=message_id, rating=rating, comment=comment
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "message_id"],
        set_={"rating": rating, "comment": comment, "updated_at": text("now()")},
    )
    await session.execute(stmt)


async def tenant_status(session: AsyncSession, tenant_id: TenantId) -> str | None:
    result = await session.execute(
        text("SELECT status FROM tenants WHERE id = :t"), {"t": tenant_id}
    )
    value = result.scalar_one_or_none()
    return str(value) if value is not None else None


# --- the chat send path: one statement each (migration 0010_send_path) ----------------------

BOT_NOT_FOUND = "PA404"  # SQLSTATE parley_chat_send raises when the bot has no published version
# SQLSTATEs of `parley_widget_live` (migration 0018), raised by the send and history functions
# too: the workspace is suspended; the conversation (or its channel) is gone; the widget
# token's channel epoch is not the channel's any more (an origin was removed).
TENANT_SUSPENDED = "PA403"
CONVERSATION_GONE = "PA410"
TOKEN_REVOKED = "PA401"  # noqa: S105 (a SQLSTATE, not a secret)

_CHAT_SEND = (
    "SELECT parley_chat_send($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
)
_CHAT_FINISH = (
    "SELECT parley_chat_finish($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
    "$15, $16::jsonb, $17, $18, $19::jsonb, $20)"
)


async def chat_send(
    db: Database,
    tenant_id: TenantId,
    *,
    scope: str,
    key: str,
    request_hash: str,
    operation_id: uuid.UUID,
    message_id: uuid.UUID,
    turn_id: uuid.UUID,
    conversation_id: uuid.UUID,
    bot_id: uuid.UUID,
    content: str,
    now: datetime,
    lease: timedelta,
    retention: timedelta,
    history_limit: int,
    job: str | None,
    epoch: int | None,
) -> dict[str, Any]:
    """Claim the idempotency key, store the user message and either enqueue the turn (`job`)
    or claim its ledger row and read what the prompt needs — in one round trip. The result's
    `outcome` is new, takeover, replay, in_progress, stored_reply, reused or suspended."""
    async with driver_statement(db) as conn:
        result = await conn.fetchval(
            _CHAT_SEND,
            tenant_id,
            scope,
            key,
            request_hash,
            operation_id,
            message_id,
            turn_id,
            conversation_id,
            bot_id,
            content,
            now,
            lease,
            retention,
            history_limit,
            job,
            epoch,
        )
    found: dict[str, Any] = json.loads(result)
    return found


async def chat_finish(
    db: Database,
    tenant_id: TenantId,
    *,
    operation_id: uuid.UUID,
    scope: str,
    key: str,
    conversation_id: uuid.UUID,
    reply: dict[str, Any],
    version_id: uuid.UUID,
    now: datetime,
    model: str,
    cost_usd: Decimal,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: int,
    ttft_ms: int | None,
    response: dict[str, Any],
    summary: str | None = None,
    summary_upto: uuid.UUID | None = None,
    fallback: bool = False,
) -> None:
    """Store the reply (with its citations), close the ledger row and the idempotency key,
    touch the conversation (and keep the rolling summary the turn extended, if any), and hand
    `message.created` to webhooks when the workspace listens: one round trip."""
    async with driver_statement(db) as conn:
        await conn.execute(
            _CHAT_FINISH,
            tenant_id,
            operation_id,
            scope,
            key,
            conversation_id,
            uuid.UUID(reply["id"]),
            reply["content"],
            version_id,
            now,
            model,
            cost_usd,
            prompt_tokens,
            completion_tokens,
            latency_ms,
            ttft_ms,
            json.dumps(response),
            summary,
            summary_upto,
            json.dumps(reply.get("citations") or []),
            fallback,
        )


_CHAT_HISTORY = "SELECT parley_chat_history($1, $2, $3, $4, $5)"
_WIDGET_LIVE = "SELECT parley_widget_live($1, $2, $3)"


async def chat_history(
    db: Database,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    before: uuid.UUID | None,
    limit: int,
    epoch: int | None,
) -> list[dict[str, Any]]:
    """Message rows newest first, older than `before`, after the token's liveness check: one
    round trip."""
    async with driver_statement(db) as conn:
        result = await conn.fetchval(
            _CHAT_HISTORY, tenant_id, conversation_id, before, limit, epoch
        )
    rows: list[dict[str, Any]] = json.loads(result)
    return rows


async def widget_live(
    db: Database, tenant_id: TenantId, conversation_id: uuid.UUID, epoch: int | None
) -> None:
    """Raise (asyncpg, SQLSTATE above) unless the workspace is active, the conversation and its
    channel exist and the token's epoch is the channel's: one round trip."""
    async with driver_statement(db) as conn:
        await conn.execute(_WIDGET_LIVE, tenant_id, conversation_id, epoch)
