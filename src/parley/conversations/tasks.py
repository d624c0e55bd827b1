"""Jobs of the conversations: the turn of an asynchronously sent message, the `message.created`
event of a message the SQL send path stored, and the nightly purge of idempotency keys past
their retention (workspace by workspace through the tenant door). Job names are stored in the
queue and named by SQL functions: they stay as they were when these jobs lived in `widget/`
and `webhooks/`."""

from __future__ import annotations

import uuid

import structlog

from parley.conversations import idempotency_keys
from parley.conversations import repository as conv_repo
from parley.conversations.events import topic
from parley.conversations.schemas import message_json
from parley.conversations.turn import TURN_JOB, TurnInput, prepare_turn, run_turn
from parley.kit import sqlnames
from parley.kit.db import all_tenant_ids, tenant_session
from parley.kit.jobs import REGISTRY, JobContext
from parley.kit.runtime import Runtime
from parley.webhooks import events
from parley.webhooks import repository as webhooks_repo
from parley.webhooks import service as webhooks

log = structlog.get_logger(__name__)

# The name `parley_enqueue_event` enqueues (the registry of names shared with SQL).
EMIT_MESSAGE_JOB = sqlnames.EMIT_MESSAGE_JOB


async def _no_stream(chunk: str) -> None:
    """An asynchronous send has nobody to stream to: the reply is published when stored."""


@REGISTRY.job(TURN_JOB, max_attempts=3)
async def run_queued_turn(ctx: JobContext) -> None:
    """Run the turn of a message sent with `Prefer: respond-async`. A retried job claims the
    same ledger row (keyed by the operation id): once the turn has succeeded, a retry gets the
    stored reply and the provider is never called again."""
    runtime: Runtime = ctx.runtime
    tenant_id, p = ctx.tenant_id, ctx.payload
    async with ctx.tenant_session() as session:
        message = await conv_repo.get_message(session, tenant_id, uuid.UUID(p["message_id"]))
        if message is None:  # the workspace or conversation was deleted meanwhile
            log.info("chat.turn_skipped", operation_id=p["operation_id"], reason="no message")
            return
        turn = TurnInput(
            tenant_id=tenant_id,
            conversation_id=uuid.UUID(p["conversation_id"]),
            bot_id=uuid.UUID(p["bot_id"]),
            user_message_id=message.id,
            user_text=message.content,
            operation_id=uuid.UUID(p["operation_id"]),
            idem_scope=p["scope"],
            idem_key=p["key"],
            user_message=message_json(message),
        )
        prepared = await prepare_turn(session, runtime, turn)
    if prepared.stored_reply is not None:  # a retry of a job whose turn already succeeded
        await runtime.broker.publish(
            topic(tenant_id, turn.conversation_id),
            {"type": "message.created", "message": prepared.stored_reply},
        )
        return
    outcome = await run_turn(runtime, turn, prepared, _no_stream)
    if outcome.error is not None:  # recorded, the key left retryable; tell the open widget
        await runtime.broker.publish(
            topic(tenant_id, turn.conversation_id),
            {"type": "reply.failed", "operation_id": p["operation_id"], "error": outcome.error},
        )


@REGISTRY.job("widget.purge_idempotency_keys", max_attempts=3)
async def purge_idempotency_keys(ctx: JobContext) -> None:
    removed = 0
    for tid in await all_tenant_ids(ctx.db):
        async with tenant_session(ctx.db, tid) as session:
            removed += await idempotency_keys.purge_expired(session, tid)
    log.info("widget.idempotency_keys_purged", count=removed)


REGISTRY.every("widget.purge_idempotency_keys", "37 3 * * *")


@REGISTRY.job(EMIT_MESSAGE_JOB, max_attempts=10)
async def emit_message(ctx: JobContext) -> None:
    """`message.created` for a message the chat send path stored: the SQL functions enqueue
    this in the message's own transaction (only when the workspace has a subscribed endpoint or
    a rule), so the event is never lost; here it becomes deliveries and rule actions."""
    message_id = uuid.UUID(str(ctx.payload["message_id"]))
    event = str(ctx.payload.get("event") or "message.created")
    async with ctx.tenant_session() as session:
        if not await webhooks_repo.mark_emitted(session, ctx.tenant_id, event, message_id):
            return  # a re-run after a crash between commit and acknowledgement
        message = await conv_repo.get_message(session, ctx.tenant_id, message_id)
        if message is None:
            return
        await webhooks.emit(
            session,
            ctx.tenant_id,
            event,
            events.message_created(message, fallback=bool(ctx.payload.get("fallback"))),
        )
