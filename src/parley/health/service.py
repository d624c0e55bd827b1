"""Readiness: every dependency checked, reported by name, so an operator sees what is wrong."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import text

from parley.kit import jobs, migrate
from parley.kit.db import platform_session
from parley.kit.metrics import INBOUND_EVENTS, JOBS_FAILED, JOBS_QUEUED, WEBHOOK_DEAD_LETTERS
from parley.kit.runtime import Runtime
from parley.webhooks import repository as webhooks_repo


async def inbound_counts(session: Any) -> dict[str, int]:
    """Channel events not yet done, across tenants (counts only, via a narrow function)."""
    rows = await session.execute(text("SELECT status, n FROM parley_inbound_event_counts()"))
    counts = {"received": 0, "processing": 0, "failed": 0}
    for status, n in rows:
        counts[str(status)] = int(n)
    return counts


async def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result: dict[str, Any] = await asyncio.wait_for(check, timeout=3.0)
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


async def readiness(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    async def database() -> dict[str, Any]:
        async with platform_session(runtime.db) as session:
            version = await session.scalar(text("SHOW server_version"))
            current = await session.scalar(text("SELECT version_num FROM alembic_version"))
            counts = await jobs.queue_counts(session)
            dead_letters = await webhooks_repo.dead_letter_total(session)
            inbound = await inbound_counts(session)
            # The vector table exists where the migration found pgvector (0007).
            vector = await session.scalar(text("SELECT to_regclass('kb_vectors') IS NOT NULL"))
        head = migrate.head_revision()
        return {
            "ok": current == head,
            "server_version": version,
            "migration": current,
            "migration_head": head,
            "queue": counts,
            "dead_letters": dead_letters,
            "inbound": inbound,
            "pgvector": bool(vector),
        }

    async def redis() -> dict[str, Any]:
        if runtime.redis is None:
            return {"ok": True, "configured": False}
        pong = await runtime.redis.ping()
        return {"ok": bool(pong), "configured": True}

    db, rd = await asyncio.gather(_timed(database()), _timed(redis()))
    checks: dict[str, Any] = {"database": db, "redis": rd}
    queue = db.get("queue")
    if isinstance(queue, dict):
        checks["queue"] = {
            "ok": True,
            "queued": sum(queue["queued"].values()),
            "running": sum(queue["picked"].values()),
            "failed": sum(queue["failed"].values()),
        }
        db.pop("queue")
    if "dead_letters" in db:
        # Informational: a full dead-letter queue needs a tenant's attention, not a restart.
        checks["webhooks"] = {"ok": True, "dead_letters": db.pop("dead_letters")}
    inbound = db.pop("inbound", None)
    if isinstance(inbound, dict):
        # Informational: a backlog or failed sends are for the operator to see, not a reason
        # to take the instance out of rotation.
        checks["inbound_events"] = {"ok": True, **inbound}
    embeddings = runtime.settings.embeddings
    checks["retrieval"] = {
        "ok": True,
        "pgvector": bool(db.get("pgvector")),
        "embeddings": embeddings,
        # What was asked for (`auto` resolves to `local` when the packaged model is installed).
        "embeddings_setting": runtime.settings.parley_embeddings,
        # Hybrid needs both the vector table and an embeddings provider.
        "mode": "hybrid" if db.get("pgvector") and embeddings != "none" else "keyword-only",
    }
    ok = all(c.get("ok") for c in checks.values())
    return ok, checks


async def refresh_queue_metrics(runtime: Runtime) -> None:
    async with platform_session(runtime.db) as session:
        counts = await jobs.queue_counts(session)
        WEBHOOK_DEAD_LETTERS.set(await webhooks_repo.dead_letter_total(session))
        inbound = await inbound_counts(session)
    for status, n in inbound.items():
        INBOUND_EVENTS.labels(status).set(n)
    JOBS_QUEUED.clear()
    JOBS_FAILED.clear()
    for entrypoint, n in counts["queued"].items():
        JOBS_QUEUED.labels(entrypoint).set(n)
    for entrypoint, n in counts["failed"].items():
        JOBS_FAILED.labels(entrypoint).set(n)
