"""Building the runtime a process shares: the database pool (refusing a role RLS would not
bind), telemetry, keys, Redis, the pgvector probe. The app, the worker and every CLI command
start here; it needs nothing but `kit` and the settings, so commands below the app can use it
without importing the app.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from sqlalchemy import text

from parley.kit import telemetry
from parley.kit.db import Database, create_database, platform_session
from parley.kit.pubsub import MemoryBroker, RedisBroker
from parley.kit.ratelimit import MemoryRateLimiter, RedisRateLimiter
from parley.kit.runtime import Runtime
from parley.kit.security import Keyring, load_secret_keys
from parley.settings import Settings

log = structlog.get_logger(__name__)


class UnsafeDatabaseRole(RuntimeError):
    pass


async def check_app_role(db: Database) -> str:
    """Refuse to run as a role that row-level security does not bind."""
    async with platform_session(db) as session:
        row = (
            await session.execute(
                text(
                    "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
                    "WHERE rolname = current_user"
                )
            )
        ).one()
    if row[1] or row[2]:
        raise UnsafeDatabaseRole(
            f"DATABASE_URL connects as {row[0]!r}, which is SUPERUSER or BYPASSRLS: row-level "
            "security would not isolate tenants. Create a plain role for the application and "
            "use the privileged one only as DATABASE_MIGRATION_URL (see docs/configuration.md)."
        )
    return str(row[0])


async def build_runtime(settings: Settings, database_url: str) -> Runtime:
    db = create_database(
        database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    role = await check_app_role(db)
    telemetry.start(settings)
    telemetry.instrument_database(db)
    keys = load_secret_keys(
        settings.parley_secret_keys.get_secret_value() if settings.parley_secret_keys else None,
        settings.data_dir,
    )
    redis: Any = None
    if settings.redis_url is not None:
        # lazy: optional: Redis only when REDIS_URL is set
        from redis.asyncio import Redis

        redis = Redis.from_url(
            settings.redis_url.get_secret_value(), socket_timeout=2, socket_connect_timeout=2
        )
    async with platform_session(db) as session:
        # The vector table exists where the migration could install pgvector (0007).
        pgvector = bool(await session.scalar(text("SELECT to_regclass('kb_vectors') IS NOT NULL")))
    info: dict[str, Any] = {"db_role": role}
    demo = settings.data_dir / "demo.json"
    if demo.exists():  # written by `parley serve --demo`, read once per process for /demo
        info["demo_widget_key"] = json.loads(demo.read_text())["widget_key"]
    if not pgvector:
        log.warning("retrieval.keyword_only", reason="pgvector extension is not available")
    return Runtime(
        settings=settings,
        db=db,
        keyring=Keyring.from_secrets(keys),
        redis=redis,
        limiter=RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter(),
        broker=RedisBroker(redis) if redis is not None else MemoryBroker(),
        pgvector=pgvector,
        info=info,
    )
