"""Retention: what each workspace keeps, and the nightly purge of what is older.

Three periods, each in days, set per workspace (NULL: the platform default from settings;
0 there means "keep forever"):
- conversations: a conversation whose last message is older is deleted with its messages,
  feedback, retrieval logs, idempotency records and event markers; then visitors left with
  no conversation and not seen since.
- files: stored originals of knowledge sources uploaded before then are deleted from storage
  (the source and its index stay; it can no longer be re-indexed from the original).
- logs: retrieval logs, finished webhook deliveries (with their attempts) and finished inbound
  channel events.
The audit log is never purged. Every delete is batched (`batch` rows per transaction), so no
lock is held for long and a crash loses nothing but the batch in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from parley.kit.db import Database, TenantId, platform_session, tenant_session

if TYPE_CHECKING:
    from parley.knowledge.storage import Storage
    from parley.settings import Settings

BATCH = 500


@dataclass(frozen=True)
class RetentionPolicy:
    conversations_days: int  # 0: keep forever
    files_days: int
    logs_days: int


async def policy_for(db: Database, settings: Settings, tenant_id: TenantId) -> RetentionPolicy:
    async with platform_session(db) as session:
        row = (
            await session.execute(
                text(
                    "SELECT retention_conversations_days, retention_files_days, "
                    "retention_logs_days FROM tenants WHERE id = :t"
                ),
                {"t": tenant_id},
            )
        ).one()
    return RetentionPolicy(
        conversations_days=row[0] or settings.parley_retention_conversations_days,
        files_days=row[1] or settings.parley_retention_files_days,
        logs_days=row[2] or settings.parley_retention_logs_days,
    )


async def _batched(db: Database, tenant_id: TenantId, sql: str, params: dict[str, Any]) -> int:
    """Run a DELETE that removes at most `:n` rows per call until it removes fewer."""
    total = 0
    while True:
        async with tenant_session(db, tenant_id) as session:
            result = await session.execute(text(sql), {**params, "t": tenant_id, "n": BATCH})
            n = int(getattr(result, "rowcount", 0) or 0)
        total += n
        if n < BATCH:
            return total


_OLD_CONVERSATIONS = (
    "SELECT id FROM conversations WHERE tenant_id = :t "
    "AND COALESCE(last_message_at, created_at) < :cutoff ORDER BY id LIMIT :n"
)


async def _purge_conversations(db: Database, tenant_id: TenantId, cutoff: datetime) -> int:
    total = 0
    while True:
        async with tenant_session(db, tenant_id) as session:
            ids = [
                r[0]
                for r in await session.execute(
                    text(_OLD_CONVERSATIONS), {"t": tenant_id, "cutoff": cutoff, "n": BATCH}
                )
            ]
            if not ids:
                return total
            p = {"t": tenant_id, "c": ids}
            msgs = "SELECT id FROM messages WHERE tenant_id = :t AND conversation_id = ANY(:c)"
            for sql in (
                "DELETE FROM kb_retrieval_logs WHERE tenant_id = :t AND conversation_id = ANY(:c)",
                f"DELETE FROM idempotency_keys WHERE tenant_id = :t AND message_id IN ({msgs})",  # noqa: S608
                f"DELETE FROM emitted_events WHERE tenant_id = :t AND (subject_id = ANY(:c) "  # noqa: S608
                f"OR subject_id IN ({msgs}))",
                "DELETE FROM conversations WHERE tenant_id = :t AND id = ANY(:c)",
            ):
                await session.execute(text(sql), p)
            total += len(ids)


async def _purge_files(
    db: Database, storage: Storage, tenant_id: TenantId, cutoff: datetime
) -> int:
    """Originals first, then the key: a crash between the two leaves a key whose object is
    gone, which the next run deletes again (idempotent) and clears."""
    total = 0
    while True:
        async with tenant_session(db, tenant_id) as session:
            rows = list(
                await session.execute(
                    text(
                        "SELECT id, storage_key FROM kb_sources WHERE tenant_id = :t "
                        "AND storage_key IS NOT NULL AND created_at < :cutoff "
                        "ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
                    ),
                    {"t": tenant_id, "cutoff": cutoff, "n": BATCH},
                )
            )
            for _, key in rows:
                await storage.delete(str(key))
            await session.execute(
                text(
                    "UPDATE kb_sources SET storage_key = NULL "
                    "WHERE tenant_id = :t AND id = ANY(:ids)"
                ),
                {"t": tenant_id, "ids": [r[0] for r in rows]},
            )
        total += len(rows)
        if len(rows) < BATCH:
            return total


async def purge_workspace(
    db: Database, storage: Storage, tenant_id: TenantId, policy: RetentionPolicy
) -> dict[str, int]:
    """Apply `policy` to one workspace; returns what was removed, by kind."""
    now = datetime.now(UTC)
    out: dict[str, int] = {}
    if policy.conversations_days:
        cutoff = now - timedelta(days=policy.conversations_days)
        out["conversations"] = await _purge_conversations(db, tenant_id, cutoff)
        out["visitors"] = await _batched(
            db,
            tenant_id,
            "DELETE FROM visitors WHERE (tenant_id, id) IN (SELECT v.tenant_id, v.id "
            "FROM visitors v WHERE v.tenant_id = :t AND v.last_seen_at < :cutoff "
            "AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.tenant_id = v.tenant_id "
            "AND c.visitor_id = v.id) LIMIT :n)",
            {"cutoff": cutoff},
        )
    if policy.files_days:
        cutoff = now - timedelta(days=policy.files_days)
        out["files"] = await _purge_files(db, storage, tenant_id, cutoff)
    if policy.logs_days:
        cutoff = now - timedelta(days=policy.logs_days)
        p = {"cutoff": cutoff}
        out["retrieval_logs"] = await _batched(
            db,
            tenant_id,
            "DELETE FROM kb_retrieval_logs WHERE (tenant_id, id) IN (SELECT tenant_id, id "
            "FROM kb_retrieval_logs WHERE tenant_id = :t AND created_at < :cutoff LIMIT :n)",
            p,
        )
        out["webhook_deliveries"] = await _batched(
            db,
            tenant_id,
            "DELETE FROM webhook_deliveries WHERE (tenant_id, id) IN (SELECT tenant_id, id "
            "FROM webhook_deliveries WHERE tenant_id = :t AND created_at < :cutoff "
            "AND status IN ('delivered', 'dead') LIMIT :n)",
            p,
        )
        out["inbound_events"] = await _batched(
            db,
            tenant_id,
            "DELETE FROM inbound_events WHERE (tenant_id, id) IN (SELECT tenant_id, id "
            "FROM inbound_events WHERE tenant_id = :t AND created_at < :cutoff "
            "AND status IN ('done', 'ignored', 'failed') LIMIT :n)",
            p,
        )
    return out
