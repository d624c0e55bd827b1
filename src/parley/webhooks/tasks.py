"""The delivery job. Its own retries are new jobs (see `delivery.py`); pgqueuer's retries only
cover infrastructure failures (the database away), after which the row's state decides.
(`message.created` for a message the SQL send path stored is `conversations.tasks`' job.)"""

from __future__ import annotations

import uuid

from parley.kit import sqlnames
from parley.kit.jobs import REGISTRY, JobContext
from parley.webhooks import delivery, service
from parley.webhooks import repository as repo
from parley.webhooks.service import DELIVER_JOB


@REGISTRY.job(DELIVER_JOB, max_attempts=10)
async def deliver(ctx: JobContext) -> None:
    await delivery.run(ctx)


EMIT_EVENT_JOB = sqlnames.EMIT_EVENT_JOB  # enqueued by SQL functions with the event's data inline


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
