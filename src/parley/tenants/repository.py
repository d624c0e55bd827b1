"""Queries for tenants, memberships, invitations and API keys.

Tenant-scoped functions take a `TenantId` and also filter on it, even though RLS would hide
other tenants' rows anyway: the filter keeps plans index-friendly, RLS keeps mistakes harmless.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.models import ApiKey, Invitation, Membership, Tenant, User


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    result = await session.execute(select(func.count()).where(Tenant.slug == slug))
    return bool(result.scalar_one())


async def get_tenant(session: AsyncSession, tenant_id: TenantId) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


async def list_tenants(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int, status: str | None = None
) -> list[Tenant]:
    query = select(Tenant).order_by(Tenant.id).limit(limit)
    if after is not None:
        query = query.where(Tenant.id > after)
    if status is not None:
        query = query.where(Tenant.status == status)
    return list((await session.execute(query)).scalars())


async def set_tenant_status(session: AsyncSession, tenant_id: uuid.UUID, status: str) -> None:
    await session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id)
        .values(
            status=status,
            suspended_at=func.now() if status == "suspended" else None,
        )
    )


async def members(
    session: AsyncSession, tenant_id: TenantId, *, after: uuid.UUID | None, limit: int
) -> list[tuple[Membership, User]]:
    query = (
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant_id)
        .order_by(Membership.user_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Membership.user_id > after)
    return [(m, u) for m, u in (await session.execute(query)).all()]


async def membership(
    session: AsyncSession, tenant_id: TenantId, user_id: uuid.UUID
) -> Membership | None:
    result = await session.execute(
        select(Membership).where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
    )
    return result.scalar_one_or_none()


async def member_with_user(
    session: AsyncSession, tenant_id: TenantId, user_id: uuid.UUID
) -> tuple[Membership, User] | None:
    result = await session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
    )
    row = result.first()
    return (row[0], row[1]) if row else None


async def count_owners(session: AsyncSession, tenant_id: TenantId) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(Membership)
        .where(Membership.tenant_id == tenant_id, Membership.role == "owner")
    )
    return int(result.scalar_one())


async def lock_memberships(session: AsyncSession, tenant_id: TenantId) -> None:
    """Serialise membership changes in a tenant (so two demotions can't remove the last owner)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"memberships:{tenant_id}"},
    )


async def invitation_tenant(session: AsyncSession, token_hash: str) -> uuid.UUID | None:
    result = await session.execute(text("SELECT parley_invitation_tenant(:h)"), {"h": token_hash})
    value = result.scalar_one_or_none()
    return uuid.UUID(str(value)) if value is not None else None


async def invitation_by_hash(
    session: AsyncSession, tenant_id: TenantId, token_hash: str
) -> Invitation | None:
    result = await session.execute(
        select(Invitation)
        .where(Invitation.tenant_id == tenant_id, Invitation.token_hash == token_hash)
        .with_for_update()
    )
    return result.scalar_one_or_none()


async def invitations(
    session: AsyncSession, tenant_id: TenantId, *, after: uuid.UUID | None, limit: int
) -> list[Invitation]:
    query = (
        select(Invitation)
        .where(
            Invitation.tenant_id == tenant_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .order_by(Invitation.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Invitation.id > after)
    return list((await session.execute(query)).scalars())


async def invitation(
    session: AsyncSession, tenant_id: TenantId, invitation_id: uuid.UUID
) -> Invitation | None:
    result = await session.execute(
        select(Invitation).where(Invitation.tenant_id == tenant_id, Invitation.id == invitation_id)
    )
    return result.scalar_one_or_none()


async def api_keys(
    session: AsyncSession, tenant_id: TenantId, *, after: uuid.UUID | None, limit: int
) -> list[ApiKey]:
    query = (
        select(ApiKey)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(ApiKey.id > after)
    return list((await session.execute(query)).scalars())


async def api_key(session: AsyncSession, tenant_id: TenantId, key_id: uuid.UUID) -> ApiKey | None:
    result = await session.execute(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
    )
    return result.scalar_one_or_none()


async def live_keys_created_by(
    session: AsyncSession, tenant_id: TenantId, user_id: uuid.UUID
) -> list[ApiKey]:
    query = (
        select(ApiKey)
        .where(
            ApiKey.tenant_id == tenant_id,
            ApiKey.created_by == user_id,
            ApiKey.revoked_at.is_(None),
        )
        .order_by(ApiKey.id)
        .with_for_update()
    )
    return list((await session.execute(query)).scalars())
