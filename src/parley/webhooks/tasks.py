"""The delivery job. Its own retries are new jobs (see `delivery.py`); pgqueuer's retries only
cover infrastructure failures (the database away), after which the row's state decides."""

from __future__ import annotations

import uuid

from parley.conversations import repository as conv_repo
from parley.kit.jobs import REGISTRY, JobContext
from parley.webhooks import delivery, events, service
from parley.webhooks import repository as repo
from parley.webhooks.service import DELIVER_JOB

EMIT_MESSAGE_JOB = "webhooks.emit_message"  # the name the SQL send path enqueues (0010)


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


EMIT_EVENT_JOB = "webhooks.emit_event"  # enqueued by SQL functions with the event's data inline


@REGISTRY.job(EMIT_EVENT_JOB, max_attempts=10)
async def emit_event(ctx: JobContext) -> None:
    """An event whose `data` a SQL function wrote into the job in its own transaction (the
    operator reply, migration 0023): here it becomes deliveries and rule actions, once per
    (event, subject) however often the job runs."""
    event = str(ctx.payload["event"])
    subject_id = uuid.UUID(str(ctx.payload["subject_id"]))
    data = ctx.payload.get("data")
    if not isinstance(data, dict):
        return
    async with ctx.tenant_session() as session:
        if not await repo.mark_emitted(session, ctx.tenant_id, event, subject_id):
            return
        await service.emit(session, ctx.tenant_id, event, data)
