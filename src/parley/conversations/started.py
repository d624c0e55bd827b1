"""Starting a conversation, the one way every channel does it: the row, the
`conversation.started` event, and a `usage.threshold` check (a plan counts conversations)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.kit.ids import new_id
from parley.models import Conversation
from parley.usage import repository as usage_repo
from parley.webhooks import events as webhook_events
from parley.webhooks import service as webhooks


async def start_conversation(
    session: AsyncSession,
    tenant_id: TenantId,
    *,
    bot_id: uuid.UUID,
    channel_id: uuid.UUID,
    visitor_id: uuid.UUID,
) -> Conversation:
    """A new open conversation, stored in the caller's transaction with its event; the usage
    check is queued only for a workspace listening to `usage.threshold` (migration 0015)."""
    conversation = Conversation(
        tenant_id=tenant_id,
        id=new_id(),
        bot_id=bot_id,
        channel_id=channel_id,
        visitor_id=visitor_id,
        status="open",
    )
    session.add(conversation)
    await session.flush()
    await usage_repo.request_check(session, tenant_id)
    await webhooks.emit(
        session,
        tenant_id,
        "conversation.started",
        webhook_events.conversation_started(conversation),
    )
    return conversation
