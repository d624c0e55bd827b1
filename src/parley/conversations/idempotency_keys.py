"""The idempotency-key ledger: claim a key, close it, purge expired ones.

The ledger row is claimed with one INSERT … ON CONFLICT DO NOTHING, so ten concurrent identical
requests produce exactly one winner. A claim holds a lease; if the process that held it died,
the lease runs out and a retry takes the operation over (its user message is reused). A
visitor's send claims its key inside the SQL function `parley_chat_send`; operator replies
claim here. The hash, operation id and leases are `parley.kit.idempotency`'s.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.kit.idempotency import LEASE, RETENTION, IdempotencyKeyReused, operation_id
from parley.models import IdempotencyKey


@dataclass(frozen=True)
class Claim:
    outcome: Literal["new", "replay", "in_progress", "takeover"]
    operation_id: uuid.UUID
    message_id: uuid.UUID | None = None
    response: dict[str, Any] | None = None


async def claim(
    session: AsyncSession,
    tenant_id: TenantId,
    scope: str,
    key: str,
    req_hash: str,
    *,
    message_id: uuid.UUID | None = None,
) -> Claim:
    """Claim the key. `message_id` is recorded with a new claim (the id the caller is about to
    store its message under), so no second write is needed to link them."""
    now = datetime.now(UTC)
    op = operation_id(tenant_id, scope, key)
    inserted = await session.execute(
        insert(IdempotencyKey)
        .values(
            tenant_id=tenant_id,
            scope=scope,
            key=key,
            request_hash=req_hash,
            state="in_progress",
            operation_id=op,
            message_id=message_id,
            lease_expires_at=now + LEASE,
            expires_at=now + RETENTION,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "scope", "key"])
        .returning(IdempotencyKey.operation_id)
    )
    if inserted.scalar_one_or_none() is not None:
        return Claim("new", op, message_id)
    row = (
        await session.execute(
            select(IdempotencyKey)
            .where(
                IdempotencyKey.tenant_id == tenant_id,
                IdempotencyKey.scope == scope,
                IdempotencyKey.key == key,
            )
            .with_for_update()
        )
    ).scalar_one()
    if row.request_hash != req_hash:
        raise IdempotencyKeyReused()
    if row.state == "completed":
        return Claim("replay", row.operation_id, row.message_id, row.response)
    if row.state == "in_progress" and row.lease_expires_at > now:
        return Claim("in_progress", row.operation_id, row.message_id)
    # Failed (retryable) or abandoned by a dead process: take it over.
    row.state = "in_progress"
    row.lease_expires_at = now + LEASE
    await session.flush()
    return Claim("takeover", row.operation_id, row.message_id)


async def finish(
    session: AsyncSession,
    tenant_id: TenantId,
    scope: str,
    key: str,
    *,
    state: Literal["completed", "failed"],
    response: dict[str, Any] | None,
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
        .values(state=state, response=response)
    )


async def purge_expired(session: AsyncSession, tenant_id: TenantId) -> int:
    """Remove the tenant's keys past their retention (at least 24 hours after first use)."""
    result = await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.expires_at < func.now()
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
