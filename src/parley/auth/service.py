"""Register, log in, refresh (rotation with reuse detection), log out, and who am I."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth import repository as repo
from parley.auth.access import ACCESS_AUDIENCE, ACCESS_TYPE
from parley.auth.schemas import (
    MembershipOut,
    MeResponse,
    TenantOut,
    TokenPair,
)
from parley.kit.db import KEEP_ON_ERROR, UserId
from parley.kit.errors import (
    Conflict,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    Unprocessable,
)
from parley.kit.ids import new_id
from parley.kit.runtime import Runtime
from parley.kit.security import (
    digest,
    hash_password,
    new_secret,
    password_needs_rehash,
    verify_password,
)
from parley.models import User

log = structlog.get_logger(__name__)

REFRESH_PREFIX = "rt_"


class EmailTaken(Conflict):
    code = "email_taken"
    title = "An account with this email already exists"


class InvalidEmail(Unprocessable):
    code = "invalid_email"
    title = "The email address is not valid"


class WeakPassword(Unprocessable):
    code = "weak_password"
    title = "The password is too weak"


class RefreshTokenReused(InvalidToken):
    code = "refresh_token_reused"
    title = "This refresh token was already used; the session has been revoked"


def check_password_strength(password: str, email: str, min_length: int) -> None:
    if len(password) < min_length:
        raise WeakPassword(f"Use at least {min_length} characters.")
    if password.lower() == email.lower() or password.lower() in email.lower():
        raise WeakPassword("The password must not contain the email address.")
    if len(set(password)) < 4:
        raise WeakPassword("The password needs more distinct characters.")


async def issue_tokens(
    session: AsyncSession, runtime: Runtime, user_id: UserId, family_id: uuid.UUID
) -> TokenPair:
    settings = runtime.settings
    refresh = REFRESH_PREFIX + new_secret(32)
    await repo.add_session(
        session,
        user_id=user_id,
        family_id=family_id,
        token_hash=digest(refresh),
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.parley_refresh_token_ttl_seconds),
    )
    access, _ = runtime.keyring.issue(
        subject=str(user_id),
        audience=ACCESS_AUDIENCE,
        token_type=ACCESS_TYPE,
        ttl_seconds=settings.parley_access_token_ttl_seconds,
        claims={"sid": str(family_id)},
    )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.parley_access_token_ttl_seconds,
    )


async def create_user(
    session: AsyncSession,
    runtime: Runtime,
    *,
    email: str,
    password: str,
    display_name: str | None = None,
    platform_admin: bool = False,
) -> User:
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc
    check_password_strength(
        email=email, password=password, min_length=runtime.settings.parley_password_min_length
    )
    if await repo.user_by_email(session, email) is not None:
        raise EmailTaken()
    user = User(
        id=new_id(),
        email=email,
        password_hash=hash_password(password),
        display_name=display_name,
        is_platform_admin=platform_admin,
    )
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        raise EmailTaken() from exc
    return user


class UnknownUser(NotFound):
    code = "user_not_found"
    title = "No user has this email address"


async def set_password(
    session: AsyncSession, runtime: Runtime, *, email: str, password: str
) -> User:
    """An operator's reset (`parley reset-password`): the account gets a new password and every
    session it has is signed out, so a lost or leaked password stops working everywhere."""
    user = await repo.user_by_email(session, email.strip())
    if user is None:
        raise UnknownUser(f"No user has the email address {email.strip()}.")
    check_password_strength(
        email=user.email, password=password, min_length=runtime.settings.parley_password_min_length
    )
    user.password_hash = hash_password(password)
    await repo.revoke_user_sessions(session, user.id)
    log.info("auth.password_reset", user_id=str(user.id))
    return user


async def login(session: AsyncSession, runtime: Runtime, email: str, password: str) -> TokenPair:
    user = await repo.user_by_email(session, email)
    # verify_password runs the full argon2 check even for an unknown email (no timing oracle).
    if not verify_password(user.password_hash if user else None, password) or user is None:
        log.info("auth.login_failed")
        raise InvalidCredentials()
    if not user.is_active:
        raise InvalidCredentials()
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    await repo.touch_login(session, UserId(user.id))
    log.info("auth.logged_in", user_id=str(user.id))
    return await issue_tokens(session, runtime, UserId(user.id), new_id())


async def refresh(session: AsyncSession, runtime: Runtime, refresh_token: str) -> TokenPair:
    token_hash = digest(refresh_token)
    consumed = await repo.consume_refresh_token(session, token_hash)
    if consumed is None:
        known = await repo.session_by_hash(session, token_hash)
        if known is not None and known.used_at is not None and known.revoked_at is None:
            # A rotated token came back: someone holds a copy. End the whole session family.
            await repo.revoke_family(session, known.family_id)
            # The request answers 401, but the revocation must stick: the boundary commits
            # this transaction despite the error.
            session.info[KEEP_ON_ERROR] = True
            log.warning("auth.refresh_reuse_detected", user_id=str(known.user_id))
            raise RefreshTokenReused()
        raise InvalidToken()
    user = await repo.user_by_id(session, UserId(consumed.user_id))
    if user is None or not user.is_active:
        raise InvalidToken()
    return await issue_tokens(session, runtime, UserId(consumed.user_id), consumed.family_id)


async def logout(
    session: AsyncSession, user_id: UserId, family_id: uuid.UUID, refresh_token: str | None
) -> None:
    """End the current session family (and the one of `refresh_token`, if it is the user's)."""
    await repo.revoke_family(session, family_id)
    if refresh_token:
        known = await repo.session_by_hash(session, digest(refresh_token))
        if known is not None and known.user_id == user_id:
            await repo.revoke_family(session, known.family_id)


async def me(session: AsyncSession, user_id: UserId) -> MeResponse:
    user = await repo.user_by_id(session, user_id)
    if user is None:
        raise InvalidToken()
    rows = await repo.memberships_of(session, user_id)
    return MeResponse(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        is_platform_admin=user.is_platform_admin,
        memberships=[
            MembershipOut(
                tenant=TenantOut(id=r.tenant.id, name=r.tenant.name, slug=r.tenant.slug),
                role=r.role,
                tenant_status=r.tenant.status,
            )
            for r in rows
        ],
    )
