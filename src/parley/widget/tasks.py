"""Housekeeping for the widget API: idempotency keys past their retention are purged nightly,
workspace by workspace through the tenant door."""

from __future__ import annotations

import structlog
from sqlalchemy import select

from parley.kit import idempotency
from parley.kit.db import TenantId, platform_session, tenant_session
from parley.kit.jobs import REGISTRY, JobContext
from parley.models import Tenant

log = structlog.get_logger(__name__)


@REGISTRY.job("widget.purge_idempotency_keys", max_attempts=3)
async def purge_idempotency_keys(ctx: JobContext) -> None:
    async with platform_session(ctx.db) as session:
        tenant_ids = list((await session.execute(select(Tenant.id))).scalars())
    removed = 0
    for tid in tenant_ids:
        async with tenant_session(ctx.db, TenantId(tid)) as session:
            removed += await idempotency.purge_expired(session, TenantId(tid))
    log.info("widget.idempotency_keys_purged", count=removed)


REGISTRY.every("widget.purge_idempotency_keys", "37 3 * * *")
