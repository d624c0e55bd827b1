"""Queries for visitors, conversations, messages and feedback."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.conversations.schemas import message_json
from parley.kit.db import Database, TenantId, driver_statement
from parley.kit.ids import id_floor
from parley.models import (
    Channel,
    Conversation,
    ConversationEvent,
    ConversationNote,
    ConversationTag,
    LlmTurn,
    Membership,
    Message,
    MessageFeedback,
    RetrievalLog,
    Tenant,
    Visitor,
)

ANSWERING_ROLES = ("owner", "admin", "editor", "agent")  # who counts as staff on line


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


async def mark_spoken(session: AsyncSession, tenant_id: TenantId, message_id: uuid.UUID) -> None:
    """A voice turn's transcript: the visitor said this message rather than typed it."""
    await session.execute(
        update(Message)
        .where(Message.tenant_id == tenant_id, Message.id == message_id)
        .values(spoken=True)
    )


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


# --- the staff inbox -----------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationFilters:
    """What the staff list filters on; every field optional (docs/inbox.md)."""

    channel_type: str | None = None
    channel_id: uuid.UUID | None = None
    bot_id: uuid.UUID | None = None
    handoff_status: str | None = None
    assignee_id: uuid.UUID | None = None
    unassigned: bool = False
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    feedback: str | None = None
    unanswered: bool = False
    q: str | None = None


def searchable(q: str) -> bool:
    """A query with at least one word (an empty tsquery would match the whole workspace)."""
    return any(ch.isalnum() for ch in q)


def conversations_query(
    tenant_id: TenantId, f: ConversationFilters, after: uuid.UUID | None, limit: int
) -> Select[Conversation, str]:
    """Newest first, keyset-paged on the id. A date range is an id range (UUIDv7 ids start
    with their creation time), so it rides the same `(tenant_id, …, id)` indexes."""
    query = (
        select(Conversation, Channel.type)
        .join(
            Channel,
            (Channel.tenant_id == Conversation.tenant_id) & (Channel.id == Conversation.channel_id),
        )
        .where(Conversation.tenant_id == tenant_id)
        .order_by(Conversation.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(Conversation.id < after)
    if f.channel_type is not None:
        query = query.where(Channel.type == f.channel_type)
    if f.channel_id is not None:
        query = query.where(Conversation.channel_id == f.channel_id)
    if f.bot_id is not None:
        query = query.where(Conversation.bot_id == f.bot_id)
    if f.handoff_status is not None:
        query = query.where(Conversation.handoff_status == f.handoff_status)
    if f.assignee_id is not None:
        query = query.where(Conversation.assignee_id == f.assignee_id)
    if f.unassigned:
        query = query.where(Conversation.assignee_id.is_(None))
    if f.tag is not None:
        # `conversation_tags` (decision 0039): its btree reads the tag's conversations newest
        # first; the cursor bound repeated inside lets it start at the page.
        tagged = select(ConversationTag.conversation_id).where(
            ConversationTag.tenant_id == tenant_id, ConversationTag.tag == f.tag
        )
        if after is not None:
            tagged = tagged.where(ConversationTag.conversation_id < after)
        query = query.where(Conversation.id.in_(tagged))
    if f.since is not None:
        query = query.where(Conversation.id >= id_floor(f.since))
    if f.until is not None:
        query = query.where(Conversation.id < id_floor(f.until))
    if f.feedback is not None:
        query = query.where(Conversation.last_feedback == f.feedback)
    if f.unanswered:
        query = query.where(Conversation.fallback_count > 0)
    return query


# Full-text search reads candidates in pages (decision 0032): the first batch is a little
# larger than the page the caller wants; when its other filters leave the page short, the next
# batch starts below the last candidate and doubles, up to the function's cap.
SEARCH_BATCH_MAX = 5000


async def search_candidates(
    session: AsyncSession, q: str, before: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """Ids of the bound workspace's conversations whose messages match `q`, newest first,
    below `before` (`parley_inbox_search_page`, decision 0039)."""
    rows = await session.execute(select(func.parley_inbox_search_page(q, before, limit)))
    return [uuid.UUID(str(r)) for r in rows.scalars()]


def _only_search(f: ConversationFilters) -> bool:
    """Whether `q` is the list's only filter (then every candidate is on the page)."""
    return f == ConversationFilters(q=f.q)


async def list_conversations(
    session: AsyncSession,
    tenant_id: TenantId,
    f: ConversationFilters,
    after: uuid.UUID | None,
    limit: int,
) -> list[tuple[Conversation, str]]:
    if f.q is None:
        rows = await session.execute(conversations_query(tenant_id, f, after, limit))
        return [(row[0], str(row[1])) for row in rows.all()]
    if not searchable(f.q):
        return []
    if _only_search(f):
        # One statement: the page is the candidates themselves (every one is a conversation
        # of the workspace), so a short page means the search is exhausted.
        candidates = select(func.parley_inbox_search_page(f.q, after, limit))
        query = conversations_query(tenant_id, f, None, limit)
        rows = await session.execute(query.where(Conversation.id.in_(candidates)))
        return [(row[0], str(row[1])) for row in rows.all()]
    out: list[tuple[Conversation, str]] = []
    before, batch = after, limit + 10
    while len(out) < limit:
        ids = await search_candidates(session, f.q, before, batch)
        if not ids:
            break
        query = conversations_query(tenant_id, f, None, limit - len(out))
        rows = await session.execute(query.where(Conversation.id.in_(ids)))
        out += [(row[0], str(row[1])) for row in rows.all()]
        if len(ids) < batch:
            break
        before, batch = ids[-1], min(batch * 2, SEARCH_BATCH_MAX)
    return out


async def latest_messages(
    session: AsyncSession, tenant_id: TenantId, conversation_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """Each listed conversation's newest message as (role, content): one statement for a page
    of the inbox (`ix_messages_conversation` reads each conversation's newest first)."""
    if not conversation_ids:
        return {}
    rows = await session.execute(
        select(Message.conversation_id, Message.role, Message.content)
        .where(Message.tenant_id == tenant_id, Message.conversation_id.in_(conversation_ids))
        .order_by(Message.conversation_id, Message.id.desc())
        .ext(distinct_on(Message.conversation_id))
    )
    return {row[0]: (str(row[1]), str(row[2])) for row in rows.all()}


async def conversation_with_channel(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID, *, lock: bool = False
) -> tuple[Conversation, str] | None:
    query = (
        select(Conversation, Channel.type)
        .join(
            Channel,
            (Channel.tenant_id == Conversation.tenant_id) & (Channel.id == Conversation.channel_id),
        )
        .where(Conversation.tenant_id == tenant_id, Conversation.id == conversation_id)
    )
    if lock:
        query = query.with_for_update(of=Conversation, key_share=True)  # decision 0038
    row = (await session.execute(query)).first()
    return (row[0], str(row[1])) if row is not None else None


async def visitor(session: AsyncSession, tenant_id: TenantId, visitor_id: uuid.UUID) -> Visitor:
    return (
        await session.execute(
            select(Visitor).where(Visitor.tenant_id == tenant_id, Visitor.id == visitor_id)
        )
    ).scalar_one()


async def notes(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID
) -> list[ConversationNote]:
    rows = await session.execute(
        select(ConversationNote)
        .where(
            ConversationNote.tenant_id == tenant_id,
            ConversationNote.conversation_id == conversation_id,
        )
        .order_by(ConversationNote.id)
        .limit(500)
    )
    return list(rows.scalars())


async def note(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID, note_id: uuid.UUID
) -> ConversationNote | None:
    return (
        await session.execute(
            select(ConversationNote).where(
                ConversationNote.tenant_id == tenant_id,
                ConversationNote.conversation_id == conversation_id,
                ConversationNote.id == note_id,
            )
        )
    ).scalar_one_or_none()


async def timeline(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID
) -> list[ConversationEvent]:
    rows = await session.execute(
        select(ConversationEvent)
        .where(
            ConversationEvent.tenant_id == tenant_id,
            ConversationEvent.conversation_id == conversation_id,
        )
        .order_by(ConversationEvent.id)
        .limit(500)
    )
    return list(rows.scalars())


async def feedback_of(
    session: AsyncSession, tenant_id: TenantId, message_ids: list[uuid.UUID]
) -> list[MessageFeedback]:
    if not message_ids:
        return []
    rows = await session.execute(
        select(MessageFeedback).where(
            MessageFeedback.tenant_id == tenant_id, MessageFeedback.message_id.in_(message_ids)
        )
    )
    return list(rows.scalars())


async def conversation_feedback(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID
) -> list[MessageFeedback]:
    rows = await session.execute(
        select(MessageFeedback)
        .join(
            Message,
            (Message.tenant_id == MessageFeedback.tenant_id)
            & (Message.id == MessageFeedback.message_id),
        )
        .where(MessageFeedback.tenant_id == tenant_id, Message.conversation_id == conversation_id)
        .order_by(MessageFeedback.message_id)
    )
    return list(rows.scalars())


async def turns_for_replies(
    session: AsyncSession, tenant_id: TenantId, reply_ids: list[uuid.UUID]
) -> list[LlmTurn]:
    if not reply_ids:
        return []
    rows = await session.execute(
        select(LlmTurn).where(
            LlmTurn.tenant_id == tenant_id, LlmTurn.reply_message_id.in_(reply_ids)
        )
    )
    return list(rows.scalars())


async def retrievals_for_operations(
    session: AsyncSession, tenant_id: TenantId, operation_ids: list[uuid.UUID]
) -> list[RetrievalLog]:
    if not operation_ids:
        return []
    rows = await session.execute(
        select(RetrievalLog)
        .where(RetrievalLog.tenant_id == tenant_id, RetrievalLog.operation_id.in_(operation_ids))
        .order_by(RetrievalLog.id)
    )
    return list(rows.scalars())


async def set_handling(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    *,
    actor: str,
    reason: str,
    **values: Any,
) -> None:
    """Change who handles the conversation; the trigger of migration 0019 writes the timeline
    row (with this actor and reason) and keeps the clocks."""
    await session.execute(
        text(
            "SELECT set_config('parley.actor', :actor, true), "
            "set_config('parley.handoff_reason', :reason, true)"
        ),
        {"actor": actor, "reason": reason},
    )
    await session.execute(
        update(Conversation)
        .where(Conversation.tenant_id == tenant_id, Conversation.id == conversation_id)
        .values(**values)
    )


async def user_message_handling(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    bot_id: uuid.UUID,
    content: str,
) -> str:
    """`parley_inbox_user_message` (migration 0019) for a message stored outside the chat
    send function (the channels' jobs): bot, waiting, assigned or requested."""
    result = await session.execute(
        text(
            "SELECT parley_inbox_user_message(:t, :c, :content, (SELECT config FROM bot_versions"
            " WHERE tenant_id = :t AND bot_id = :b AND status = 'published'))"
        ),
        {"t": tenant_id, "c": conversation_id, "content": content, "b": bot_id},
    )
    return str(result.scalar_one())


async def is_member(session: AsyncSession, tenant_id: TenantId, user_id: uuid.UUID) -> bool:
    found = await session.execute(
        select(Membership.user_id).where(
            Membership.tenant_id == tenant_id, Membership.user_id == user_id
        )
    )
    return found.first() is not None


PRESENCE_TTL = timedelta(seconds=45)  # three missed heartbeats of a staff stream


async def agents_online(session: AsyncSession, tenant_id: TenantId) -> bool:
    found = await session.execute(
        select(Membership.user_id)
        .where(
            Membership.tenant_id == tenant_id,
            Membership.role.in_(ANSWERING_ROLES),
            Membership.inbox_seen_at > func.now() - PRESENCE_TTL,
        )
        .limit(1)
    )
    return found.first() is not None


async def inbox_settings(session: AsyncSession, tenant_id: TenantId) -> dict[str, Any]:
    found = await session.execute(select(Tenant.inbox_settings).where(Tenant.id == tenant_id))
    value = found.scalar_one_or_none()
    return dict(value or {})


async def save_inbox_settings(
    session: AsyncSession, tenant_id: TenantId, settings: dict[str, Any]
) -> None:
    await session.execute(
        update(Tenant).where(Tenant.id == tenant_id).values(inbox_settings=settings)
    )


async def inbox_events_after(
    session: AsyncSession, tenant_id: TenantId, after: uuid.UUID, limit: int
) -> list[dict[str, Any]]:
    """What the staff stream replays: conversations started, messages and timeline rows with
    an id above `after`, in id order (three primary-key range reads)."""
    out: list[dict[str, Any]] = []
    for conv, channel_type in await session.execute(
        select(Conversation, Channel.type)
        .join(
            Channel,
            (Channel.tenant_id == Conversation.tenant_id) & (Channel.id == Conversation.channel_id),
        )
        .where(Conversation.tenant_id == tenant_id, Conversation.id > after)
        .order_by(Conversation.id)
        .limit(limit)
    ):
        out.append(
            {
                "type": "conversation.created",
                "id": str(conv.id),
                "data": {
                    "conversation_id": str(conv.id),
                    "channel_type": str(channel_type),
                    "bot_id": str(conv.bot_id),
                    "handoff_status": conv.handoff_status,
                },
            }
        )
    messages = await session.execute(
        select(Message)
        .where(Message.tenant_id == tenant_id, Message.id > after)
        .order_by(Message.id)
        .limit(limit)
    )
    for m in messages.scalars():
        data = message_json(m)
        data["author_id"] = str(m.author_id) if m.author_id else None
        out.append({"type": "message.created", "id": str(m.id), "data": data})
    changes = await session.execute(
        select(ConversationEvent)
        .where(ConversationEvent.tenant_id == tenant_id, ConversationEvent.id > after)
        .order_by(ConversationEvent.id)
        .limit(limit)
    )
    for e in changes.scalars():
        out.append({"type": "conversation.updated", "id": str(e.id), "data": timeline_json(e)})
    out.sort(key=lambda row: str(row["id"]))
    return out


def timeline_json(e: ConversationEvent) -> dict[str, Any]:
    return {
        "conversation_id": str(e.conversation_id),
        "handoff_status": e.to_status,
        "assignee_id": str(e.assignee_id) if e.assignee_id else None,
        "kind": e.kind,
        "actor": e.actor,
        "from_status": e.from_status,
        "reason": e.reason,
        "created_at": e.created_at.isoformat() if e.created_at else None,
    }


async def note_feedback(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID, rating: str
) -> None:
    await session.execute(
        update(Conversation)
        .where(Conversation.tenant_id == tenant_id, Conversation.id == conversation_id)
        .values(last_feedback=rating)
    )


async def set_visitor_email(
    session: AsyncSession, tenant_id: TenantId, visitor_id: uuid.UUID, email: str
) -> None:
    await session.execute(
        update(Visitor)
        .where(Visitor.tenant_id == tenant_id, Visitor.id == visitor_id)
        .values(email=email)
    )


async def published_config(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID
) -> dict[str, Any] | None:
    """The published configuration of the conversation's bot."""
    found = await session.execute(
        text(
            "SELECT v.config FROM conversations c JOIN bot_versions v"
            " ON v.tenant_id = c.tenant_id AND v.bot_id = c.bot_id AND v.status = 'published'"
            " WHERE c.tenant_id = :t AND c.id = :c"
        ),
        {"t": tenant_id, "c": conversation_id},
    )
    value = found.scalar_one_or_none()
    return dict(value) if value is not None else None


async def widget_live(
    db: Database, tenant_id: TenantId, conversation_id: uuid.UUID, epoch: int | None
) -> None:
    """Raise (asyncpg, SQLSTATE above) unless the workspace is active, the conversation and its
    channel exist and the token's epoch is the channel's: one round trip."""
    async with driver_statement(db) as conn:
        await conn.execute(_WIDGET_LIVE, tenant_id, conversation_id, epoch)
