"""Plain factories for analytics rows, through the product's tenant door."""

from __future__ import annotations

import uuid
from typing import Any

from parley.kit.db import TenantId, tenant_session
from parley.kit.ids import new_id
from parley.models import Conversation, LlmTurn, Message, Visitor


async def failed_question(
    db: Any, tenant_id: str, bot_id: str, channel_id: str, question: str
) -> uuid.UUID:
    """A conversation where the bot gave its fallback answer to `question` (a knowledge gap);
    returns the question's message id."""
    tid = TenantId(uuid.UUID(tenant_id))
    async with tenant_session(db, tid) as session:
        visitor = Visitor(
            tenant_id=tid, id=new_id(), channel_id=uuid.UUID(channel_id), token_hash=new_id().hex
        )
        session.add(visitor)
        await session.flush()
        conv = Conversation(
            tenant_id=tid,
            id=new_id(),
            bot_id=uuid.UUID(bot_id),
            channel_id=uuid.UUID(channel_id),
            visitor_id=visitor.id,
        )
        session.add(conv)
        await session.flush()
        asked = Message(
            tenant_id=tid, id=new_id(), conversation_id=conv.id, role="user", content=question
        )
        session.add(asked)
        await session.flush()
        reply = Message(
            tenant_id=tid, id=new_id(), conversation_id=conv.id, role="assistant", content="?"
        )
        session.add(reply)
        await session.flush()
        session.add(
            LlmTurn(
                tenant_id=tid,
                id=new_id(),
                operation_id=new_id(),
                conversation_id=conv.id,
                provider="openai",
                model="m",
                status="succeeded",
                fallback=True,
                reply_message_id=reply.id,
            )
        )
    return asked.id
