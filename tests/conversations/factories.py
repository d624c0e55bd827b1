"""Plain factories for inbox rows (where a test needs many conversations quickly, without the
widget's per-IP session limit)."""

from __future__ import annotations

import uuid

from parley.kit.db import Database, TenantId, tenant_session
from parley.kit.ids import new_id
from parley.models import Conversation, Visitor


async def create_conversation(db: Database, tenant_id: str, channel_id: str, bot_id: str) -> str:
    """A visitor of the channel and one open conversation the bot handles."""
    tid = TenantId(uuid.UUID(tenant_id))
    async with tenant_session(db, tid) as session:
        visitor = Visitor(
            tenant_id=tid,
            id=new_id(),
            channel_id=uuid.UUID(channel_id),
            token_hash=uuid.uuid4().hex,
        )
        session.add(visitor)
        await session.flush()
        conversation = Conversation(
            tenant_id=tid,
            id=new_id(),
            bot_id=uuid.UUID(bot_id),
            channel_id=uuid.UUID(channel_id),
            visitor_id=visitor.id,
            status="open",
        )
        session.add(conversation)
    return str(conversation.id)
