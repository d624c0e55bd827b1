"""The door for channel ingress (decision 0002): a delivery brings only a channel id in its
path. A SECURITY DEFINER function turns it into the channel's tenant id and nothing else; the
tenant context is set, and the channel and its secret are then read through RLS, where the
delivery's signature is checked. Until that check passes nothing is written."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId, bind_tenant

_LOOKUP = text("SELECT parley_channel_tenant(:channel_id, :kind)")


async def bind_channel_tenant(
    session: AsyncSession, channel_id: uuid.UUID, kind: str
) -> TenantId | None:
    """Set the tenant context of channel `channel_id` of type `kind` on the session; None
    when there is no such channel."""
    value = (
        await session.execute(_LOOKUP, {"channel_id": channel_id, "kind": kind})
    ).scalar_one_or_none()
    if value is None:
        return None
    tenant_id = TenantId(uuid.UUID(str(value)))
    await bind_tenant(session, tenant_id)
    return tenant_id
