"""Tenants, members, invitations and API keys: the rules.

- A tenant always keeps at least one owner; only owners grant or take away ownership.
- Admins manage members below owner, invitations and API keys.
- Invitations are accepted by a signed-in user whose email matches the invitation.
- API keys are shown once, stored as SHA-256, looked up by a public prefix.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.auth import repository as auth_repo
from parley.auth.access import API_KEY_PREFIX, ROLE_RANK, Principal
from parley.kit.db import TenantId, UserId, bind_tenant
from parley.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from parley.kit.ids import new_id
from parley.kit.pagination import Page, after_id, page_by_id
from parley.kit.security import digest, new_secret
from parley.models import ApiKey, Invitation, Membership, Tenant, User
from parley.tenants import repository as repo
from parley.tenants.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
    MemberOut,
    MembershipCreated,
    TenantDetail,
)

log = structlog.get_logger(__name__)


class MemberNotFound(NotFound):
    code = "member_not_found"
    title = "Member not found"


class InvitationNotFound(NotFound):
    code = "invitation_not_found"
    title = "Invitation not found or no longer valid"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    title = "API key not found"


class LastOwner(Conflict):
    code = "last_owner"
    title = "A workspace must keep at least one owner"


class AlreadyMember(Conflict):
    code = "already_member"
    title = "You are already a member of this workspace"


class InvitationEmailMismatch(Forbidden):
    code = "invitation_email_mismatch"
    title = "This invitation was sent to another email address"


class InvalidExpiry(Unprocessable):
    code = "invalid_expiry"
    title = "The expiry must be a timezone-aware time in the future"


# --- tenants ----------------------------------------------------------------------------


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-")
    return slug if len(slug) >= 2 else "workspace"


async def create_tenant(session: AsyncSession, *, name: str, owner_id: UserId) -> Tenant:
    """Create a tenant and make `owner_id` its owner (in the caller's transaction)."""
    base = slugify(name)
    slug = base
    while await repo.slug_taken(session, slug):
        slug = f"{base}-{secrets.token_hex(3)}"
    tenant = Tenant(id=new_id(), name=name.strip(), slug=slug, status="active", plan="free")
    session.add(tenant)
    await session.flush()
    # The new tenant's own context, so RLS admits its first membership row.
    await bind_tenant(session, TenantId(tenant.id))
    session.add(Membership(tenant_id=tenant.id, user_id=owner_id, role="owner"))
    await session.flush()
    log.info("tenant.created", tenant_id=str(tenant.id))
    return tenant


async def bind_new_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> TenantId:
    """Enter the context of a tenant handed over by trusted code: one this transaction just
    created (seeding its first rows), or one a platform administrator acts on."""
    tid = TenantId(tenant_id)
    await bind_tenant(session, tid)
    return tid


def tenant_detail(tenant: Tenant) -> TenantDetail:
    return TenantDetail(
        id=tenant.id,
        name=tenant.name,
        slug=tenant.slug,
        status=tenant.status,
        plan=tenant.plan,
        created_at=tenant.created_at,
    )


async def get_tenant(session: AsyncSession, tenant_id: TenantId) -> TenantDetail:
    tenant = await repo.get_tenant(session, tenant_id)
    if tenant is None:
        raise NotFound()
    return tenant_detail(tenant)


async def rename_tenant(
    session: AsyncSession, tenant_id: TenantId, name: str, *, actor: str
) -> TenantDetail:
    tenant = await repo.get_tenant(session, tenant_id)
    if tenant is None:
        raise NotFound()
    before = tenant.name
    tenant.name = name.strip()
    await session.flush()
    await session.refresh(tenant)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="tenant.renamed",
        target_type="tenant",
        target_id=tenant_id,
        before={"name": before},
        after={"name": tenant.name},
    )
    return tenant_detail(tenant)


# --- members ----------------------------------------------------------------------------


def _member_out(m: Membership, u: User) -> MemberOut:
    return MemberOut(
        user_id=u.id,
        email=u.email,
        display_name=u.display_name,
        role=m.role,
        joined_at=m.created_at,
    )


async def list_members(
    session: AsyncSession, tenant_id: TenantId, cursor: str | None, limit: int
) -> Page[MemberOut]:
    rows = await repo.members(session, tenant_id, after=after_id(cursor), limit=limit + 1)
    return page_by_id(rows, limit, lambda r: _member_out(*r), lambda m: m.user_id)


def _acting_rank(principal: Principal, role: str | None) -> int:
    # API keys with the admin scope act as admins (never as owners).
    return ROLE_RANK[role] if role else ROLE_RANK["admin"]


async def change_role(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    actor_role: str | None,
    user_id: uuid.UUID,
    new_role: str,
) -> MemberOut:
    await repo.lock_memberships(session, tenant_id)
    member = await repo.membership(session, tenant_id, user_id)
    if member is None:
        raise MemberNotFound()
    rank = _acting_rank(principal, actor_role)
    touches_owner = "owner" in (member.role, new_role)
    if touches_owner and rank < ROLE_RANK["owner"]:
        raise Forbidden("Only an owner can grant or remove the owner role.")
    if (
        member.role == "owner"
        and new_role != "owner"
        and await repo.count_owners(session, tenant_id) <= 1
    ):
        raise LastOwner()
    before_role = member.role
    member.role = new_role
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="member.role_changed",
        target_type="user",
        target_id=user_id,
        before={"role": before_role},
        after={"role": new_role},
    )
    found = await repo.member_with_user(session, tenant_id, user_id)
    if found is None:
        raise MemberNotFound()
    return _member_out(*found)


KeyHandling = Literal["revoke", "hand_over"]


class HandOverNeedsMember(Unprocessable):
    code = "hand_over_needs_member"
    title = "Keys can only be handed over to another signed-in member"


async def remove_member(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    actor_role: str | None,
    user_id: uuid.UUID,
    api_keys: KeyHandling = "revoke",
) -> None:
    """Remove a membership and offboard it at once: the user's sessions are revoked (their
    access tokens stop on the next request) and the API keys they created are revoked, or
    handed over to the acting member; either is an audit entry per key."""
    await repo.lock_memberships(session, tenant_id)
    member = await repo.membership(session, tenant_id, user_id)
    if member is None:
        raise MemberNotFound()
    leaving_self = principal.user_id == user_id
    rank = _acting_rank(principal, actor_role)
    if not leaving_self and rank < ROLE_RANK["admin"]:
        raise Forbidden("Only admins can remove other members.")
    if member.role == "owner" and not leaving_self and rank < ROLE_RANK["owner"]:
        raise Forbidden("Only an owner can remove an owner.")
    if member.role == "owner" and await repo.count_owners(session, tenant_id) <= 1:
        raise LastOwner()
    if api_keys == "hand_over" and (principal.user_id is None or leaving_self):
        raise HandOverNeedsMember()
    await session.delete(member)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="member.left" if leaving_self else "member.removed",
        target_type="user",
        target_id=user_id,
        before={"role": member.role},
    )
    for key in await repo.live_keys_created_by(session, tenant_id, user_id):
        if api_keys == "hand_over":
            key.created_by = principal.user_id
            action = "api_key.handed_over"
        else:
            key.revoked_at = datetime.now(UTC)
            action = "api_key.revoked"
        await audit.record(
            session,
            tenant_id,
            actor=principal.actor,
            action=action,
            target_type="api_key",
            target_id=key.id,
            before={"name": key.name, "prefix": key.prefix, "created_by": str(user_id)},
            after={"created_by": str(key.created_by)} if api_keys == "hand_over" else None,
        )
    await session.flush()
    if not leaving_self:  # someone who leaves on their own stays signed in elsewhere
        await auth_repo.revoke_user_sessions(session, user_id)
    log.info("tenant.member_offboarded", tenant_id=str(tenant_id), user_id=str(user_id))


# --- invitations ------------------------------------------------------------------------


def _invitation_out(inv: Invitation) -> InvitationOut:
    return InvitationOut(
        id=inv.id,
        email=inv.email,
        role=inv.role,
        created_at=inv.created_at,
        expires_at=inv.expires_at,
    )


async def invite(
    session: AsyncSession,
    tenant_id: TenantId,
    principal: Principal,
    body: InvitationCreate,
    ttl_seconds: int,
) -> InvitationCreated:
    token = "inv_" + new_secret(32)
    inv = Invitation(
        tenant_id=tenant_id,
        id=new_id(),
        email=str(body.email),
        role=body.role,
        token_hash=digest(token),
        invited_by=principal.user_id,
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
    )
    session.add(inv)
    await session.flush()
    await session.refresh(inv)
    log.info("tenant.invitation_created", tenant_id=str(tenant_id), invitation_id=str(inv.id))
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="invitation.created",
        target_type="invitation",
        target_id=inv.id,
        after={"role": inv.role},
    )
    return InvitationCreated(**_invitation_out(inv).model_dump(), token=token)


async def list_invitations(
    session: AsyncSession, tenant_id: TenantId, cursor: str | None, limit: int
) -> Page[InvitationOut]:
    rows = await repo.invitations(session, tenant_id, after=after_id(cursor), limit=limit + 1)
    return page_by_id(rows, limit, _invitation_out, lambda i: i.id)


async def revoke_invitation(
    session: AsyncSession, tenant_id: TenantId, invitation_id: uuid.UUID, *, actor: str
) -> None:
    inv = await repo.invitation(session, tenant_id, invitation_id)
    if inv is None or inv.accepted_at is not None or inv.revoked_at is not None:
        raise InvitationNotFound()
    inv.revoked_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="invitation.revoked",
        target_type="invitation",
        target_id=invitation_id,
        before={"role": inv.role},
    )


async def accept_invitation(
    session: AsyncSession, user_id: UserId, token: str
) -> MembershipCreated:
    """Accept by token. The token's tenant is found by a narrow lookup, then everything else is
    read inside that tenant's context."""
    token_hash = digest(token)
    tenant = await repo.invitation_tenant(session, token_hash)
    if tenant is None:
        raise InvitationNotFound()
    tenant_id = TenantId(tenant)
    await bind_tenant(session, tenant_id)
    inv = await repo.invitation_by_hash(session, tenant_id, token_hash)
    now = datetime.now(UTC)
    if inv is None or inv.accepted_at or inv.revoked_at or inv.expires_at <= now:
        raise InvitationNotFound()
    user = await session.get(User, user_id)
    if user is None or inv.email.lower() != user.email.lower():
        raise InvitationEmailMismatch()
    if await repo.membership(session, tenant_id, user_id) is not None:
        raise AlreadyMember()
    session.add(Membership(tenant_id=tenant_id, user_id=user_id, role=inv.role))
    inv.accepted_at = now
    inv.accepted_by = user_id
    await session.flush()
    log.info("tenant.invitation_accepted", tenant_id=str(tenant_id), user_id=str(user_id))
    await audit.record(
        session,
        tenant_id,
        actor=f"user:{user_id}",
        action="invitation.accepted",
        target_type="user",
        target_id=user_id,
        after={"role": inv.role},
    )
    return MembershipCreated(tenant_id=tenant_id, user_id=user_id, role=inv.role)


# --- API keys ---------------------------------------------------------------------------


def _api_key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes),
        created_by=key.created_by,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        expires_at=key.expires_at,
    )


async def create_api_key(
    session: AsyncSession, tenant_id: TenantId, principal: Principal, body: ApiKeyCreate
) -> ApiKeyCreated:
    if body.expires_at is not None and (
        body.expires_at.tzinfo is None or body.expires_at <= datetime.now(UTC)
    ):
        raise InvalidExpiry()
    prefix = secrets.token_hex(6)
    key = f"{API_KEY_PREFIX}{prefix}_{new_secret(32)}"
    row = ApiKey(
        tenant_id=tenant_id,
        id=new_id(),
        name=body.name,
        prefix=prefix,
        key_hash=digest(key),
        scopes=sorted(set(body.scopes)),
        created_by=principal.user_id,
        expires_at=body.expires_at,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    log.info("tenant.api_key_created", tenant_id=str(tenant_id), api_key_id=str(row.id))
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="api_key.created",
        target_type="api_key",
        target_id=row.id,
        after={"name": row.name, "prefix": row.prefix, "scopes": list(row.scopes)},
    )
    return ApiKeyCreated(**_api_key_out(row).model_dump(), key=key)


async def list_api_keys(
    session: AsyncSession, tenant_id: TenantId, cursor: str | None, limit: int
) -> Page[ApiKeyOut]:
    rows = await repo.api_keys(session, tenant_id, after=after_id(cursor), limit=limit + 1)
    return page_by_id(rows, limit, _api_key_out, lambda k: k.id)


async def revoke_api_key(
    session: AsyncSession, tenant_id: TenantId, key_id: uuid.UUID, *, actor: str
) -> None:
    row = await repo.api_key(session, tenant_id, key_id)
    if row is None or row.revoked_at is not None:
        raise ApiKeyNotFound()
    row.revoked_at = datetime.now(UTC)
    await session.flush()
    log.info("tenant.api_key_revoked", tenant_id=str(tenant_id), api_key_id=str(key_id))
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="api_key.revoked",
        target_type="api_key",
        target_id=key_id,
        before={"name": row.name, "prefix": row.prefix},
    )
