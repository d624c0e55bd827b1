"""Handing a conversation to a person: the triggers that live in Python (the visitor's
button, negative feedback) and what the visitor is told.

The other triggers are in the database, where the send path already is (migration 0019):
the bot's handoff phrases (`parley_inbox_user_message`, run by the chat send function and by
the channels' jobs), N fallbacks in a row (`parley_inbox_after_reply`, run when a reply is
stored), and the automation action `request_handoff`. Every one moves the conversation from
`bot` to `waiting`; the timeline trigger records who and why.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from parley.conversations import repository as repo
from parley.conversations.events import Pending, inbox_topic, staff_event, topic
from parley.conversations.schemas import (
    HandoffOutcome,
    InboxSettings,
    MessageOut,
    WeeklyHours,
    message_json,
)
from parley.kit.db import TenantId, tenant_session
from parley.kit.ids import new_id
from parley.kit.runtime import Runtime
from parley.models import Message
from parley.webhooks import service as webhooks

DEFAULT_HANDOFF_MESSAGE = "I'm connecting you with a member of our team."
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def within_hours(hours: WeeklyHours | None, now: datetime) -> bool:
    """True when `now` falls in an open span of the week (always, when no hours are set)."""
    if hours is None:
        return True
    try:
        local = now.astimezone(ZoneInfo(hours.timezone))
    except (ZoneInfoNotFoundError, ValueError):
        local = now.astimezone(UTC)
    spans = hours.days.get(_DAYS[local.weekday()], [])  # type: ignore[call-overload]
    clock = local.time()
    for span in spans:
        try:
            start, end = (time.fromisoformat(part.strip()) for part in span.split("-", 1))
        except ValueError:
            continue
        if start <= clock < end:
            return True
    return False


@dataclass(frozen=True)
class Availability:
    staffed: bool
    settings: InboxSettings


async def availability(session: AsyncSession, tenant_id: TenantId) -> Availability:
    """Someone can take it: an agent's inbox stream is open (presence) and it is within the
    workspace's hours."""
    settings = InboxSettings.model_validate(await repo.inbox_settings(session, tenant_id))
    staffed = within_hours(settings.hours, datetime.now(UTC)) and await repo.agents_online(
        session, tenant_id
    )
    return Availability(staffed, settings)


def status_event(conversation_id: uuid.UUID, status: str, ask_email: bool) -> dict[str, Any]:
    """What the widget's events stream tells the visitor about who answers now."""
    return {
        "type": "conversation.status",
        "data": {
            "conversation_id": str(conversation_id),
            "handoff_status": status,
            "ask_email": ask_email,
        },
    }


async def announce(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    bot_config: dict[str, Any] | None,
    pending: Pending,
) -> HandoffOutcome:
    """Tell the visitor a handoff was requested: the bot's handoff message when someone can
    take it, else the workspace's offline message (and the widget offers an email field).
    Stored as an assistant message, so it is in history and reaches every channel."""
    found = await availability(session, tenant_id)
    handoff = (bot_config or {}).get("handoff") or {}
    text = (
        str(handoff.get("message") or DEFAULT_HANDOFF_MESSAGE)
        if found.staffed
        else found.settings.offline_message
    )
    message = Message(
        tenant_id=tenant_id,
        id=new_id(),
        conversation_id=conversation_id,
        role="assistant",
        content=text,
        citations=[],
        created_at=datetime.now(UTC),
    )
    session.add(message)
    await session.flush()
    data = message_json(message)
    pending.add(topic(tenant_id, conversation_id), {"type": "message.created", "message": data})
    pending.add(
        topic(tenant_id, conversation_id),
        status_event(conversation_id, "waiting", not found.staffed),
    )
    pending.add(inbox_topic(tenant_id), staff_event("message.created", message.id, data))
    return HandoffOutcome(
        handoff_status="waiting",
        message=MessageOut.model_validate(data),
        ask_email=not found.staffed,
    )


async def requested(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    reason: str,
    pending: Pending,
) -> None:
    """After a conversation moved to `waiting`: the `handoff.requested` event and the staff
    stream's update."""
    await webhooks.emit(
        session,
        tenant_id,
        "handoff.requested",
        {"conversation_id": str(conversation_id), "reason": reason},
    )
    pending.add(
        inbox_topic(tenant_id),
        staff_event(
            "conversation.updated",
            None,
            {"conversation_id": str(conversation_id), "handoff_status": "waiting"},
        ),
    )


async def request(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    *,
    reason: str,
    actor: str,
    bot_config: dict[str, Any] | None,
    pending: Pending,
) -> HandoffOutcome:
    """Move a conversation the bot handles (or a resolved one) to the queue and tell the
    visitor; a conversation already waiting or assigned stays as it is."""
    found = await repo.conversation_with_channel(session, tenant_id, conversation_id, lock=True)
    if found is None:
        raise LookupError(conversation_id)
    conversation, _ = found
    if conversation.handoff_status in ("waiting", "assigned"):
        return HandoffOutcome.model_validate({"handoff_status": conversation.handoff_status})
    await repo.set_handling(
        session,
        tenant_id,
        conversation_id,
        actor=actor,
        reason=reason,
        handoff_status="waiting",
    )
    await requested(session, tenant_id, conversation_id, reason, pending)
    return await announce(session, tenant_id, conversation_id, bot_config, pending)


async def on_feedback(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    rating: str,
    bot_config: dict[str, Any] | None,
    pending: Pending,
) -> HandoffOutcome | None:
    """Keep the conversation's last feedback; a thumbs-down hands over when the bot's rules
    say so (`handoff.on_negative_feedback`)."""
    await repo.note_feedback(session, tenant_id, conversation_id, rating)
    handoff = (bot_config or {}).get("handoff") or {}
    if rating != "down" or not handoff.get("on_negative_feedback"):
        return None
    return await request(
        session,
        tenant_id,
        conversation_id,
        reason="negative_feedback",
        actor="visitor",
        bot_config=bot_config,
        pending=pending,
    )


async def announce_requested(
    runtime: Runtime,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    bot_config: dict[str, Any] | None,
    reason: str,
) -> HandoffOutcome:
    """After the send path moved a conversation to the queue (a handoff phrase): the event,
    the staff update and the visitor's announcement, in a transaction of their own."""
    pending = Pending()
    async with tenant_session(runtime.db, tenant_id) as session:
        await requested(session, tenant_id, conversation_id, reason, pending)
        out = await announce(session, tenant_id, conversation_id, bot_config, pending)
    await pending.flush(runtime)
    return out


async def visitor_request(
    runtime: Runtime,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    bot_config: dict[str, Any] | None,
) -> HandoffOutcome:
    """The widget's "Talk to a person" button."""
    pending = Pending()
    async with tenant_session(runtime.db, tenant_id) as session:
        out = await request(
            session,
            tenant_id,
            conversation_id,
            reason="visitor",
            actor="visitor",
            bot_config=bot_config,
            pending=pending,
        )
    await pending.flush(runtime)
    return out


async def announce_in(
    session: AsyncSession, tenant_id: TenantId, conversation_id: uuid.UUID, pending: Pending
) -> HandoffOutcome:
    """`announce_requested` inside the caller's transaction (a channel job, which sends the
    announcement as its reply); reads the bot's published configuration itself."""
    config = await repo.published_config(session, tenant_id, conversation_id)
    await requested(session, tenant_id, conversation_id, "phrase", pending)
    return await announce(session, tenant_id, conversation_id, config, pending)
