"""Housekeeping for the widget API: idempotency keys past their retention are purged nightly,
workspace by workspace through the tenant door."""

from __future__ import annotations

import structlog

from parley.kit import idempotency
from parley.kit.db import all_tenant_ids, tenant_session
from parley.kit.jobs import REGISTRY, JobContext

log = structlog.get_logger(__name__)


@REGISTRY.job("widget.purge_idempotency_keys", max_attempts=3)
async def purge_idempotency_keys(ctx: JobContext) -> None:
    removed = 0
    for tid in await all_tenant_ids(ctx.db):
        async with tenant_session(ctx.db, tid) as session:
            removed += await idempotency.purge_expired(session, tid)
    log.info("widget.idempotency_keys_purged", count=removed)


REGISTRY.every("widget.purge_idempotency_keys", "37 3 * * *")
