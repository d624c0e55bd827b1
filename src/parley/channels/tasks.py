"""Channel jobs: processing inbound events, and the nightly purge of old dedupe records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete

from parley.channels.ingress import PROCESS_JOB
from parley.channels.processing import deliver_message, process_event
from parley.conversations.service import DELIVER_JOB
from parley.kit.db import all_tenant_ids, tenant_session
from parley.kit.jobs import REGISTRY, JobContext
from parley.models import InboundEvent

log = structlog.get_logger(__name__)


# Each run holds two pooled connections at most (the event's lock and one working session):
# the per-worker limit keeps a burst of events from draining the pool the API also uses.
@REGISTRY.job(PROCESS_JOB, max_attempts=10, concurrency_limit=8)
async def process_inbound(ctx: JobContext) -> None:
    if ctx.runtime is None:
        raise RuntimeError("channel jobs need a worker built with the runtime")
    status = await process_event(ctx.runtime, ctx.tenant_id, uuid.UUID(ctx.payload["event_id"]))
    log.debug("channels.event_processed", event_id=ctx.payload["event_id"], status=status)


@REGISTRY.job(DELIVER_JOB, max_attempts=10, concurrency_limit=8)
async def deliver_operator_message(ctx: JobContext) -> None:
    """A person's reply to a Telegram or webhook-channel contact."""
    if ctx.runtime is None:
        raise RuntimeError("channel jobs need a worker built with the runtime")
    status = await deliver_message(ctx.runtime, ctx.tenant_id, uuid.UUID(ctx.payload["message_id"]))
    log.debug("channels.operator_message", message_id=ctx.payload["message_id"], status=status)


@REGISTRY.job("channels.purge_inbound_events", max_attempts=3)
async def purge_inbound_events(ctx: JobContext) -> None:
    """Finished events older than the retention are removed. Their ids can no longer be
    replayed by then: a webhook delivery is refused after 5 minutes by its timestamp, and
    Telegram stops redelivering an update long before."""
    days = ctx.runtime.settings.parley_inbound_retention_days if ctx.runtime else 7
    cutoff = datetime.now(UTC) - timedelta(days=days)
    removed = 0
    for tid in await all_tenant_ids(ctx.db):
        async with tenant_session(ctx.db, tid) as session:
            result = await session.execute(
                delete(InboundEvent).where(
                    InboundEvent.tenant_id == tid,
                    InboundEvent.created_at < cutoff,
                    InboundEvent.status.in_(("done", "ignored", "failed")),
                )
            )
            removed += int(getattr(result, "rowcount", 0) or 0)
    log.info("channels.inbound_events_purged", count=removed)


REGISTRY.every("channels.purge_inbound_events", "53 3 * * *")
