"""Staff presence, counted per open inbox stream (a browser tab, a tool's connection).

A member is present while at least one of their staff streams is open: each stream counts
itself in `memberships.inbox_connections` when it opens and uncounts itself when it ends, and
refreshes `inbox_seen_at` at every keep-alive. Closing one of two tabs leaves the member
present; closing the last one marks them away at once.

A process that dies cannot uncount its streams, so the count is trusted only while it is
fresh: `inbox_seen_at` older than `PRESENCE_TTL` means no stream of the member has beaten for
three keep-alives, so every counted stream is gone, and the next stream to open starts the
count again from one. Readers (`repository.agents_online`) look at `inbox_seen_at` only.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, and_, case, func, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.conversations.repository import PRESENCE_TTL
from parley.kit.db import TenantId
from parley.models import Membership


def _member(tenant_id: TenantId, user_id: uuid.UUID) -> ColumnElement[bool]:
    return and_(Membership.tenant_id == tenant_id, Membership.user_id == user_id)


async def opened(session: AsyncSession, tenant_id: TenantId, user_id: uuid.UUID) -> None:
    """A stream of this member opened."""
    stale = Membership.inbox_seen_at.is_(None) | (
        Membership.inbox_seen_at < func.now() - PRESENCE_TTL
    )
    await session.execute(
        update(Membership)
        .where(_member(tenant_id, user_id))
        .values(
            inbox_connections=case((stale, 1), else_=Membership.inbox_connections + 1),
            inbox_seen_at=func.now(),
        )
    )


async def beat(session: AsyncSession, tenant_id: TenantId, user_id: uuid.UUID) -> None:
    """A stream's keep-alive: still here (and counted, if a reset forgot it)."""
    await session.execute(
        update(Membership)
        .where(_member(tenant_id, user_id))
        .values(
            inbox_connections=func.greatest(Membership.inbox_connections, 1),
            inbox_seen_at=func.now(),
        )
    )


async def closed(session: AsyncSession, tenant_id: TenantId, user_id: uuid.UUID) -> None:
    """A stream of this member ended: away when it was the last one."""
    await session.execute(
        update(Membership)
        .where(_member(tenant_id, user_id))
        .values(
            inbox_connections=func.greatest(Membership.inbox_connections - 1, 0),
            inbox_seen_at=case(
                (Membership.inbox_connections <= 1, None), else_=Membership.inbox_seen_at
            ),
        )
    )
