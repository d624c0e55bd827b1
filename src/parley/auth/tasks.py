"""Housekeeping jobs for auth: expired refresh-token sessions and invitations are purged."""

from __future__ import annotations

import structlog
from sqlalchemy import text

from parley.kit.db import platform_session
from parley.kit.jobs import REGISTRY, JobContext

log = structlog.get_logger(__name__)


@REGISTRY.job("auth.purge_expired_sessions", max_attempts=3)
async def purge_expired_sessions(ctx: JobContext) -> None:
    """Delete refresh-token rows that expired (or were revoked) more than a day ago."""
    async with platform_session(ctx.db) as session:
        result = await session.execute(
            text(
                "DELETE FROM auth_sessions WHERE expires_at < now() - interval '1 day' "
                "OR revoked_at < now() - interval '1 day'"
            )
        )
    log.info("auth.sessions_purged", count=getattr(result, "rowcount", 0))


REGISTRY.every("auth.purge_expired_sessions", "17 3 * * *")
