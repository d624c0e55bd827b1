"""The delivery job. Its own retries are new jobs (see `delivery.py`); pgqueuer's retries only
cover infrastructure failures (the database away), after which the row's state decides."""

from __future__ import annotations

import uuid

from parley.conversations import repository as conv_repo
from parley.kit import sqlnames
from parley.kit.jobs import REGISTRY, JobContext
from parley.webhooks import delivery, events, service
from parley.webhooks import repository as repo
from parley.webhooks.service import DELIVER_JOB

# The name `parley_enqueue_event` enqueues (the registry of names shared with SQL).
EMIT_MESSAGE_JOB = sqlnames.EMIT_MESSAGE_JOB


@REGISTRY.job(DELIVER_JOB, max_attempts=10)
async def deliver(ctx: JobContext) -> None:
    await delivery.run(ctx)


@REGISTRY.job(EMIT_MESSAGE_JOB, max_attempts=10)
async def emit_message(ctx: JobContext) -> None:
    """`message.created` for a message the chat send path stored: the SQL functions enqueue
    this in the message's own transaction (only when the workspace has a subscribed endpoint or
    a rule), so the event is never lost; here it becomes deliveries and rule actions."""
    message_id = uuid.UUID(str(ctx.payload["message_id"]))
    event = str(ctx.payload.get("event") or "message.created")
    async with ctx.tenant_session() as session:
        if not await repo.mark_emitted(session, ctx.tenant_id, event, message_id):
            return  # a re-run after a crash between commit and acknowledgement
        message = await conv_repo.get_message(session, ctx.tenant_id, message_id)
        if message is None:
            return
        await service.emit(
            session,
            ctx.tenant_id,
            event,
            events.message_created(message, fallback=bool(ctx.payload.get("fallback"))),
        )
