"""Queries for users and refresh-token sessions (platform tables), and the API-key lookups that
authenticate a request (the keys are created and listed by `tenants`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId, UserId
from parley.models import ApiKey, AuthSession, Membership, Tenant, User


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(func.lower(User.email) == email.lower()))
    return result.scalar_one_or_none()


async def user_by_id(session: AsyncSession, user_id: UserId) -> User | None:
    return await session.get(User, user_id)


async def add_session(
    session: AsyncSession,
    *,
    user_id: UserId,
    family_id: uuid.UUID,
    token_hash: str,
    expires_at: datetime,
) -> None:
    session.add(
        AuthSession(
            user_id=user_id, family_id=family_id, token_hash=token_hash, expires_at=expires_at
        )
    )
    await session.flush()


async def consume_refresh_token(session: AsyncSession, token_hash: str) -> AuthSession | None:
    """Atomically mark a live refresh token used; None if it was not live."""
    result = await session.execute(
        update(AuthSession)
        .where(
            AuthSession.token_hash == token_hash,
            AuthSession.used_at.is_(None),
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(AuthSession)
    )
    return result.scalar_one_or_none()


async def session_by_hash(session: AsyncSession, token_hash: str) -> AuthSession | None:
    result = await session.execute(select(AuthSession).where(AuthSession.token_hash == token_hash))
    return result.scalar_one_or_none()


async def revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.family_id == family_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


async def revoke_user_sessions(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Revoke every refresh-token family of the user; their access tokens stop at once too,
    since each request checks that its session family is live (`auth.repository.access_for`)."""
    await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


async def touch_login(session: AsyncSession, user_id: UserId) -> None:
    await session.execute(update(User).where(User.id == user_id).values(last_login_at=func.now()))


@dataclass(frozen=True)
class MembershipRow:
    tenant: Tenant
    role: str


async def memberships_of(session: AsyncSession, user_id: UserId) -> list[MembershipRow]:
    """The user's memberships in every tenant (the RLS policy `member_reads_own` allows it
    when the user context is bound)."""
    result = await session.execute(
        select(Tenant, Membership.role)
        .join(Membership, Membership.tenant_id == Tenant.id)
        .where(Membership.user_id == user_id)
        .order_by(Tenant.name, Tenant.id)
    )
    return [MembershipRow(tenant=t, role=r) for t, r in result.all()]


@dataclass(frozen=True)
class AccessRow:
    user_active: bool
    is_platform_admin: bool
    session_live: bool
    tenant_status: str | None
    role: str | None


async def access_for(
    session: AsyncSession, *, user_id: UserId, family_id: uuid.UUID, tenant_id: TenantId | None
) -> AccessRow | None:
    """Everything a request needs to authorise a user, in one round trip."""
    result = await session.execute(
        text(
            """
            SELECT u.is_active, u.is_platform_admin,
                   EXISTS (SELECT 1 FROM auth_sessions s WHERE s.family_id = :family
                           AND s.user_id = u.id AND s.revoked_at IS NULL
                           AND s.expires_at > now()) AS session_live,
                   (SELECT t.status FROM tenants t WHERE t.id = :tenant) AS tenant_status,
                   (SELECT m.role FROM memberships m
                     WHERE m.tenant_id = :tenant AND m.user_id = u.id) AS role
              FROM users u WHERE u.id = :user
            """
        ),
        {"user": user_id, "family": family_id, "tenant": tenant_id},
    )
    row = result.first()
    if row is None:
        return None
    return AccessRow(
        user_active=bool(row[0]),
        is_platform_admin=bool(row[1]),
        session_live=bool(row[2]),
        tenant_status=row[3],
        role=row[4],
    )


# --- API keys: authenticating a request ---------------------------------------------------


async def api_key_tenant(session: AsyncSession, prefix: str) -> uuid.UUID | None:
    result = await session.execute(text("SELECT parley_api_key_tenant(:p)"), {"p": prefix})
    value = result.scalar_one_or_none()
    return uuid.UUID(str(value)) if value is not None else None


async def api_key_by_prefix(
    session: AsyncSession, tenant_id: TenantId, prefix: str
) -> ApiKey | None:
    result = await session.execute(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.prefix == prefix)
    )
    return result.scalar_one_or_none()


async def touch_api_key(
    session: AsyncSession, tenant_id: TenantId, key_id: uuid.UUID, now: datetime
) -> None:
    """Record use, at most once a minute per key (a write per request would be wasteful)."""
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.tenant_id == tenant_id,
            ApiKey.id == key_id,
            (ApiKey.last_used_at.is_(None))
            | (ApiKey.last_used_at < func.now() - text("interval '60 seconds'")),
        )
        .values(last_used_at=now)
    )


async def tenant_by_id(session: AsyncSession, tenant_id: TenantId) -> Tenant | None:
    return await session.get(Tenant, tenant_id)
