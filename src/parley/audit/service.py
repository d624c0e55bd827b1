"""Recording and reading audit entries, and checking the hash chain.

Each tenant's entries form a chain: an entry's hash covers its content and the previous entry's
hash, so changing or removing any row breaks every hash after it. Writers serialise per tenant
with a transaction-scoped advisory lock; the application role cannot UPDATE or DELETE rows.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.kit.ids import new_id
from parley.kit.pagination import Page, after_int, page_by_key
from parley.models import AuditEntry

GENESIS = "0" * 64


class AuditEntryOut(BaseModel):
    id: uuid.UUID
    seq: int
    actor: str
    action: str
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime
    hash: str


def _digest(prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _fields(e: AuditEntry) -> dict[str, Any]:
    return {
        "tenant_id": str(e.tenant_id),
        "id": str(e.id),
        "seq": e.seq,
        "actor": e.actor,
        "action": e.action,
        "target_type": e.target_type,
        "target_id": e.target_id,
        "before": e.before,
        "after": e.after,
        "created_at": e.created_at.astimezone(UTC).isoformat(),
    }


async def record(
    session: AsyncSession,
    tenant_id: TenantId,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | uuid.UUID | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"audit:{tenant_id}"}
    )
    last = (
        await session.execute(
            select(AuditEntry.seq, AuditEntry.hash)
            .where(AuditEntry.tenant_id == tenant_id)
            .order_by(AuditEntry.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    entry = AuditEntry(
        tenant_id=tenant_id,
        id=new_id(),
        seq=seq,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        before=json.loads(json.dumps(before, default=str)) if before is not None else None,
        after=json.loads(json.dumps(after, default=str)) if after is not None else None,
        created_at=datetime.now(UTC),
        prev_hash=prev,
        hash="",
    )
    entry.hash = _digest(prev, _fields(entry))
    session.add(entry)
    await session.flush()
    return entry


async def verify_chain(session: AsyncSession, tenant_id: TenantId) -> list[int]:
    """Sequence numbers whose hash does not match (empty when the chain is intact)."""
    rows = (
        await session.execute(
            select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.seq)
        )
    ).scalars()
    broken: list[int] = []
    prev = GENESIS
    expected_seq = 1
    for e in rows:
        if e.seq != expected_seq or e.prev_hash != prev or e.hash != _digest(prev, _fields(e)):
            broken.append(e.seq)
        prev = e.hash
        expected_seq = e.seq + 1
    return broken


async def has_action(session: AsyncSession, tenant_id: TenantId, action: str) -> bool:
    """Whether anything in the workspace was ever audited as `action` (the console's checklist
    ticks steps from real state)."""
    found = await session.scalar(
        select(AuditEntry.seq)
        .where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == action)
        .limit(1)
    )
    return found is not None


async def list_entries(
    session: AsyncSession, tenant_id: TenantId, cursor: str | None, limit: int
) -> Page[AuditEntryOut]:
    """Newest first; the cursor is the last sequence number seen."""
    before = after_int(cursor)
    query = (
        select(AuditEntry)
        .where(AuditEntry.tenant_id == tenant_id)
        .order_by(AuditEntry.seq.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(AuditEntry.seq < before)
    rows = list((await session.execute(query)).scalars())
    return page_by_key(rows, limit, _entry_out, lambda e: e.seq)


def _entry_out(e: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=e.id,
        seq=e.seq,
        actor=e.actor,
        action=e.action,
        target_type=e.target_type,
        target_id=e.target_id,
        before=e.before,
        after=e.after,
        created_at=e.created_at,
        hash=e.hash,
    )
