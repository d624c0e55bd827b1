"""Channel-neutral chat steps for channels whose users arrive without a widget session
(Telegram, webhook): the contact's conversation, the user message, and the bot's turn on the
same ledger the widget uses (`conversations.turn`), keyed by an operation id the caller chooses.

The operation id makes the turn idempotent: once its `llm_turns` row has succeeded, running it
again returns the stored reply without calling the provider.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.conversations import repository as conv_repo
from parley.conversations.schemas import message_json
from parley.conversations.started import start_conversation
from parley.conversations.turn import PreparedTurn, TurnInput, TurnOutcome, prepare_turn, run_turn
from parley.kit.db import TenantId
from parley.kit.ids import new_id
from parley.kit.runtime import Runtime
from parley.kit.security import digest
from parley.models import Message, Visitor
from parley.webhooks import events as webhook_events
from parley.webhooks import service as webhooks


async def contact_conversation(
    session: AsyncSession,
    tenant_id: TenantId,
    channel_id: uuid.UUID,
    bot_id: uuid.UUID,
    contact: str,
) -> uuid.UUID:
    """The open conversation of external user `contact` on this channel, created on first
    contact. The contact's visitor row is locked first, so two messages of one user processed
    at once still share one conversation."""
    token_hash = digest(f"contact:{channel_id}:{contact}")
    await session.execute(
        insert(Visitor)
        .values(tenant_id=tenant_id, id=new_id(), channel_id=channel_id, token_hash=token_hash)
        .on_conflict_do_nothing(index_elements=["tenant_id", "token_hash"])
    )
    visitor = (
        await session.execute(
            select(Visitor)
            .where(Visitor.tenant_id == tenant_id, Visitor.token_hash == token_hash)
            # FOR NO KEY UPDATE: a turn finishing in this visitor's conversation checks its
            # foreign key with FOR KEY SHARE, which this must not block (decision 0038).
            .with_for_update(key_share=True)
        )
    ).scalar_one()
    visitor.last_seen_at = datetime.now(UTC)
    visitor.external_id = contact[:255]
    conversation = await conv_repo.latest_open_conversation(session, tenant_id, visitor.id)
    if conversation is None or conversation.bot_id != bot_id:
        conversation = await start_conversation(
            session, tenant_id, bot_id=bot_id, channel_id=channel_id, visitor_id=visitor.id
        )
    return conversation.id


async def add_user_message(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    text: str,
    *,
    spoken: bool = False,
) -> Message:
    # The conversation first, as every writer of it does (decision 0038): the insert's
    # triggers then take the usage rows in the same order everywhere.
    await conv_repo.conversation_with_channel(session, tenant_id, conversation_id, lock=True)
    message = Message(
        tenant_id=tenant_id,
        id=new_id(),
        conversation_id=conversation_id,
        role="user",
        content=text.strip(),
        citations=[],
        created_at=datetime.now(UTC),
        spoken=spoken,
    )
    session.add(message)
    await session.flush()
    await webhooks.emit(
        session, tenant_id, "message.created", webhook_events.message_created(message)
    )
    return message


async def prepare_channel_turn(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    bot_id: uuid.UUID,
    user_message: Message,
    operation_id: uuid.UUID,
    scope: str,
) -> tuple[TurnInput, PreparedTurn]:
    """Claim the turn ledger row for `operation_id` and read what the turn needs, in the
    caller's transaction. There is no idempotency key: the caller's own record (the inbound
    event) is the request ledger, so the key updates in `conversations.turn` find nothing to
    update."""
    turn = TurnInput(
        tenant_id=tenant_id,
        conversation_id=user_message.conversation_id,
        bot_id=bot_id,
        user_message_id=user_message.id,
        user_text=user_message.content,
        operation_id=operation_id,
        idem_scope=scope,
        idem_key=str(operation_id),
        user_message=message_json(user_message),
    )
    return turn, await prepare_turn(session, runtime, turn)


async def _discard(_chunk: str) -> None:
    return None


async def run_channel_turn(
    runtime: Runtime, turn: TurnInput, prepared: PreparedTurn
) -> TurnOutcome:
    """Run the turn without streaming (channels get the whole reply); never raises."""
    return await run_turn(runtime, turn, prepared, _discard)


async def handling_after_message(
    session: AsyncSession,
    tenant_id: TenantId,
    conversation_id: uuid.UUID,
    bot_id: uuid.UUID,
    message: Message,
    *,
    new: bool,
) -> str:
    """Who answers a channel message: `bot`, `waiting`/`assigned` (a person holds the
    conversation; no turn), or `requested` (a new message matched a handoff phrase). The same
    database rule the widget's send function applies (migration 0019)."""
    if new:
        return await conv_repo.user_message_handling(
            session, tenant_id, conversation_id, bot_id, message.content
        )
    conversation = await conv_repo.conversation(session, tenant_id, conversation_id)
    status = conversation.handoff_status if conversation is not None else "bot"
    return "bot" if status == "resolved" else status
