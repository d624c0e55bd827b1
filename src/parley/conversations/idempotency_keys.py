"""The idempotency-key ledger from the turn's side: close a key, purge expired ones.

Keys are claimed inside the SQL functions that start the work (`parley_chat_send` for a
visitor's send, `parley_operator_reply` for a person's reply), in the same statement as the
message they protect; the turn closes them here once it has answered. The hash, operation id
and leases are `parley.kit.idempotency`'s.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import delete, func, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.models import IdempotencyKey


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
