"""`analytics.rollup`: every minute, recompute the days each workspace's writes marked dirty
(how late the figures can be: docs/analytics.md)."""

from __future__ import annotations

from parley.analytics import service
from parley.kit.db import all_tenant_ids, tenant_session
from parley.kit.jobs import REGISTRY, JobContext

ROLLUP_JOB = "analytics.rollup"


@REGISTRY.job(ROLLUP_JOB, max_attempts=3, concurrency_limit=1)
async def rollup(ctx: JobContext) -> None:
    for tenant_id in await all_tenant_ids(ctx.db):
        while True:
            async with tenant_session(ctx.db, tenant_id) as session:
                if await service.roll_up(session, tenant_id) == 0:
                    break


REGISTRY.every(ROLLUP_JOB, "* * * * *")
