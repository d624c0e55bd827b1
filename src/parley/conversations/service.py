"""The staff side of conversations (SPEC C8, docs/inbox.md): list and search, a conversation's
page, status and ownership, operator replies, notes and tags.

Every change publishes its live events through `Pending` after the commit; operator replies
reach the visitor's channel (the widget's events stream, or a job that sends through
Telegram or the webhook channel's signed callback).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.auth.access import Principal
from parley.conversations import repository as repo
from parley.conversations.events import Pending, inbox_topic, staff_event, topic
from parley.conversations.handoff import status_event
from parley.conversations.schemas import (
    Contact,
    ConversationDetail,
    ConversationSummary,
    FeedbackOut,
    InboxSettings,
    MessageOut,
    NoteOut,
    RetrievalTrace,
    ServiceFigures,
    TimelineEntry,
    TranscriptMessage,
    TurnLedger,
    message_json,
)
from parley.kit import sqlnames
from parley.kit.db import TenantId
from parley.kit.errors import Conflict, NotFound, Unprocessable
from parley.kit.ids import new_id
from parley.kit.pagination import Page, after_id, page_by_id
from parley.models import Conversation, ConversationNote, Message
from parley.webhooks import service as webhooks

DELIVER_JOB = sqlnames.DELIVER_OPERATOR_JOB  # handled by the channels package
MAX_TAGS = 50


class ConversationNotFound(NotFound):
    code = "conversation_not_found"
    title = "Conversation not found"


class NoteNotFound(NotFound):
    code = "note_not_found"
    title = "Note not found"


class TagNotFound(NotFound):
    code = "tag_not_found"
    title = "The conversation has no such tag"


class AssigneeNotMember(Unprocessable):
    code = "assignee_not_member"
    title = "The assignee is not a member of this workspace"


class InvalidTransition(Conflict):
    code = "invalid_status_transition"
    title = "The conversation cannot move to that status from its current one"


class TooManyTags(Unprocessable):
    code = "too_many_tags"
    title = "A conversation has at most 50 tags"


# --- reading -------------------------------------------------------------------------------


def summary_of(c: Conversation, channel_type: str) -> ConversationSummary:
    return ConversationSummary(
        id=c.id,
        bot_id=c.bot_id,
        channel_id=c.channel_id,
        channel_type=channel_type,
        visitor_id=c.visitor_id,
        status=c.status,
        handoff_status=c.handoff_status,
        assignee_id=c.assignee_id,
        tags=list(c.tags or []),
        created_at=c.created_at,
        last_message_at=c.last_message_at,
        handoff_requested_at=c.handoff_requested_at,
        fallback_count=c.fallback_count,
        last_feedback=c.last_feedback,
        figures=ServiceFigures(
            first_bot_reply_ms=c.first_bot_reply_ms,
            first_human_reply_ms=c.first_human_reply_ms,
            resolution_ms=c.resolution_ms,
        ),
    )


async def list_conversations(
    session: AsyncSession,
    tenant_id: TenantId,
    filters: repo.ConversationFilters,
    cursor: str | None,
    limit: int,
) -> Page[ConversationSummary]:
    rows = await repo.list_conversations(session, tenant_id, filters, after_id(cursor), limit + 1)
    return page_by_id(rows, limit, lambda row: summary_of(*row), lambda item: item.id)


PREVIEW_CHARS = 120
"""How much of a conversation's newest message the inbox list shows under its line."""


async def previews(
    session: AsyncSession, tenant_id: TenantId, conversation_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """(who, the start of the text) of each conversation's newest message, for the inbox list:
    an agent picks the next conversation by what was said, as in every inbox."""
    who = {"user": "Visitor", "assistant": "Bot", "operator": "Agent"}  # as the transcript says
    latest = await repo.latest_messages(session, tenant_id, conversation_ids)
    out = {}
    for cid, (role, content) in latest.items():
        text = " ".join(content.split())
        if len(text) > PREVIEW_CHARS:
            text = text[: PREVIEW_CHARS - 1].rstrip() + "…"
        out[cid] = (who.get(role, role), text)
    return out


async def _conversation(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID, *, lock: bool = False
) -> tuple[Conversation, str]:
    found = await repo.conversation_with_channel(session, tenant_id, conversation_id, lock=lock)
    if found is None:
        raise ConversationNotFound()
    return found


def _note_out(n: ConversationNote) -> NoteOut:
    return NoteOut(
        id=n.id,
        conversation_id=n.conversation_id,
        author_id=n.author_id,
        body=n.body,
        created_at=n.created_at,
    )


async def get_conversation(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID
) -> ConversationDetail:
    conversation, channel_type = await _conversation(session, tenant_id, conversation_id)
    visitor = await repo.visitor(session, tenant_id, conversation.visitor_id)
    feedback = await repo.conversation_feedback(session, tenant_id, conversation_id)
    timeline = await repo.timeline(session, tenant_id, conversation_id)
    return ConversationDetail(
        **summary_of(conversation, channel_type).model_dump(),
        contact=Contact(
            visitor_id=visitor.id,
            channel_type=channel_type,
            external_id=visitor.external_id,
            email=visitor.email,
            page_url=visitor.page_url,
            first_seen_at=visitor.created_at,
            last_seen_at=visitor.last_seen_at,
        ),
        notes=[_note_out(n) for n in await repo.notes(session, tenant_id, conversation_id)],
        feedback=[
            FeedbackOut(message_id=f.message_id, rating=f.rating, comment=f.comment)
            for f in feedback
        ],
        timeline=[
            TimelineEntry(
                id=e.id,
                kind=e.kind,
                actor=e.actor,
                from_status=e.from_status,
                to_status=e.to_status,
                assignee_id=e.assignee_id,
                reason=e.reason,
                created_at=e.created_at,
            )
            for e in timeline
        ],
    )


async def transcript(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    cursor: str | None,
    limit: int,
) -> Page[TranscriptMessage]:
    """Oldest first, keyset-paged forwards; each answer with its citations, feedback, turn
    ledger and the retrieval behind it."""
    await _conversation(session, tenant_id, conversation_id)
    after = after_id(cursor) or uuid.UUID(int=0)
    rows = await repo.messages_after(session, tenant_id, conversation_id, after, limit + 1)
    shown = rows[:limit]
    answers = [m.id for m in shown if m.role == "assistant"]
    turns = {
        t.reply_message_id: t for t in await repo.turns_for_replies(session, tenant_id, answers)
    }
    traces: dict[uuid.UUID, list[RetrievalTrace]] = {}
    for log in await repo.retrievals_for_operations(
        session, tenant_id, [t.operation_id for t in turns.values()]
    ):
        if log.operation_id is not None:
            traces.setdefault(log.operation_id, []).append(
                RetrievalTrace(
                    query=log.query,
                    mode=log.mode,
                    chunk_ids=list(log.chunk_ids),
                    scores=list(log.scores),
                    latency_ms=log.latency_ms,
                )
            )
    feedback = {
        f.message_id: FeedbackOut(message_id=f.message_id, rating=f.rating, comment=f.comment)
        for f in await repo.feedback_of(session, tenant_id, answers)
    }

    def item(m: Message) -> TranscriptMessage:
        turn = turns.get(m.id)
        return TranscriptMessage(
            **MessageOut.model_validate(message_json(m)).model_dump(),
            author_id=m.author_id,
            feedback=feedback.get(m.id),
            turn=TurnLedger(
                provider=turn.provider,
                model=turn.model,
                status=turn.status,
                prompt_tokens=turn.prompt_tokens,
                completion_tokens=turn.completion_tokens,
                cost_usd=float(turn.cost_usd),
                latency_ms=turn.latency_ms,
                ttft_ms=turn.ttft_ms,
                fallback=turn.fallback,
                error=turn.error,
            )
            if turn is not None
            else None,
            retrieval=traces.get(turn.operation_id, []) if turn is not None else [],
        )

    return page_by_id(rows, limit, item, lambda m: m.id)


# --- status and ownership ------------------------------------------------------------------


def _updated(
    pending: Pending, tenant_id: TenantId, c: Conversation, status: str, assignee: Any
) -> None:
    data = {
        "conversation_id": str(c.id),
        "handoff_status": status,
        "assignee_id": str(assignee) if assignee else None,
    }
    pending.add(inbox_topic(tenant_id), staff_event("conversation.updated", None, data))
    pending.add(topic(tenant_id, c.id), status_event(c.id, status, False))


async def _change(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    conversation_id: uuid.UUID,
    *,
    status: str,
    assignee: uuid.UUID | None,
    allowed_from: tuple[str, ...],
    reason: str,
    pending: Pending,
) -> ConversationSummary:
    conversation, channel_type = await _conversation(session, tenant_id, conversation_id, lock=True)
    if conversation.handoff_status not in allowed_from:
        raise InvalidTransition(
            f"It is {conversation.handoff_status}; this needs one of {', '.join(allowed_from)}."
        )
    before = {
        "handoff_status": conversation.handoff_status,
        "assignee_id": conversation.assignee_id,
    }
    await repo.set_handling(
        session,
        tenant_id,
        conversation_id,
        actor=principal.actor,
        reason=reason,
        handoff_status=status,
        assignee_id=assignee,
    )
    await session.refresh(conversation)
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action=f"conversation.{reason}",
        target_type="conversation",
        target_id=conversation_id,
        before=before,
        after={"handoff_status": status, "assignee_id": assignee},
    )
    event = {"assigned": "conversation.assigned", "resolved": "conversation.resolved"}.get(status)
    if event is not None:
        await webhooks.emit(
            session,
            tenant_id,
            event,
            {
                "conversation_id": str(conversation_id),
                "assignee_id": str(assignee) if assignee else None,
                "actor": principal.actor,
            },
        )
    _updated(pending, tenant_id, conversation, status, assignee)
    return summary_of(conversation, channel_type)


async def assign(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID | None,
    pending: Pending,
) -> ConversationSummary:
    """Take (no user: the caller), assign or reassign. An API key must name the member."""
    assignee = user_id or principal.user_id
    if assignee is None or not await repo.is_member(session, tenant_id, assignee):
        raise AssigneeNotMember()
    return await _change(
        session,
        tenant_id,
        principal,
        conversation_id,
        status="assigned",
        assignee=assignee,
        allowed_from=("bot", "waiting", "assigned", "resolved"),
        reason="assign",
        pending=pending,
    )


# The moves a person makes besides assigning: (target status, allowed from, audit reason).
TRANSITIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    # Back to the queue: the bot stays silent, another person may take it.
    "unassign": ("waiting", ("assigned",), "unassign"),
    "handback": ("bot", ("waiting", "assigned"), "hand_back"),
    "resolve": ("resolved", ("bot", "waiting", "assigned"), "resolve"),
    # A resolved conversation goes back to the bot (assign it to take it yourself).
    "reopen": ("bot", ("resolved",), "reopen"),
}


async def transition(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    conversation_id: uuid.UUID,
    name: str,
    pending: Pending,
) -> ConversationSummary:
    """Unassign, hand back, resolve or reopen (`TRANSITIONS`); resolving keeps the assignee."""
    status, allowed_from, reason = TRANSITIONS[name]
    assignee = None
    if status == "resolved":
        conversation, _ = await _conversation(session, tenant_id, conversation_id)
        assignee = conversation.assignee_id
    return await _change(
        session,
        tenant_id,
        principal,
        conversation_id,
        status=status,
        assignee=assignee,
        allowed_from=allowed_from,
        reason=reason,
        pending=pending,
    )


# --- operator replies ---------------------------------------------------------------------


def operator_typing(tenant_id: TenantId, conversation_id: uuid.UUID, pending: Pending) -> None:
    pending.add(
        topic(tenant_id, conversation_id),
        {"type": "typing", "data": {"conversation_id": str(conversation_id), "who": "operator"}},
    )


async def check_conversation(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID
) -> None:
    await _conversation(session, tenant_id, conversation_id)


# --- notes and tags -----------------------------------------------------------------------


async def add_note(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    conversation_id: uuid.UUID,
    body: str,
) -> NoteOut:
    await _conversation(session, tenant_id, conversation_id)
    note = ConversationNote(
        tenant_id=tenant_id,
        id=new_id(),
        conversation_id=conversation_id,
        author_id=principal.user_id,
        body=body.strip(),
        created_at=datetime.now(UTC),
    )
    session.add(note)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="conversation.note",
        target_type="note",
        target_id=note.id,
        after={"conversation_id": str(conversation_id), "chars": len(note.body)},
    )
    return _note_out(note)


async def delete_note(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    conversation_id: uuid.UUID,
    note_id: uuid.UUID,
) -> None:
    note = await repo.note(session, tenant_id, conversation_id, note_id)
    if note is None:
        raise NoteNotFound()
    await session.delete(note)
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="conversation.note_deleted",
        target_type="note",
        target_id=note_id,
        before={"conversation_id": str(conversation_id)},
    )


async def _set_tags(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    conversation: Conversation,
    tags: list[str],
    action: str,
) -> list[str]:
    before = list(conversation.tags or [])
    conversation.tags = tags
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action=action,
        target_type="conversation",
        target_id=conversation.id,
        before={"tags": before},
        after={"tags": tags},
    )
    return tags


async def add_tag(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    conversation_id: uuid.UUID,
    tag: str,
) -> list[str]:
    conversation, _ = await _conversation(session, tenant_id, conversation_id, lock=True)
    tags = list(conversation.tags or [])
    if len(tags) >= MAX_TAGS and tag not in tags:
        raise TooManyTags()
    new = tags if tag in tags else [*tags, tag]
    return await _set_tags(session, tenant_id, principal, conversation, new, "conversation.tag")


async def remove_tag(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    conversation_id: uuid.UUID,
    tag: str,
) -> list[str]:
    conversation, _ = await _conversation(session, tenant_id, conversation_id, lock=True)
    tags = list(conversation.tags or [])
    if tag not in tags:
        raise TagNotFound()
    new = [t for t in tags if t != tag]
    return await _set_tags(session, tenant_id, principal, conversation, new, "conversation.untag")


# --- workspace settings -------------------------------------------------------------------


async def get_settings(session: AsyncSession, tenant_id: TenantId) -> InboxSettings:
    return InboxSettings.model_validate(await repo.inbox_settings(session, tenant_id))


async def put_settings(
    session: AsyncSession, tenant_id: TenantId, principal: Principal, body: InboxSettings
) -> InboxSettings:
    before = await repo.inbox_settings(session, tenant_id)
    after = body.model_dump(mode="json")
    await repo.save_inbox_settings(session, tenant_id, after)
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="inbox.settings_updated",
        target_type="tenant",
        target_id=tenant_id,
        before=before,
        after=after,
    )
    return body
