"""The usage threshold check, queued by migration 0015's `parley_usage_check_request` when
usage grows in a workspace that listens to `usage.threshold` (at most one queued or running per
workspace)."""

from __future__ import annotations

from parley.kit.jobs import REGISTRY, JobContext
from parley.usage import service
from parley.usage.service import CHECK_JOB


@REGISTRY.job(CHECK_JOB, max_attempts=10)
async def check_thresholds(ctx: JobContext) -> None:
    async with ctx.tenant_session() as session:
        await service.check_thresholds(session, ctx.runtime.settings, ctx.tenant_id)
