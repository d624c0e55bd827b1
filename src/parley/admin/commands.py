"""What the CLI's user and tenant commands do, through the same services as the API.

The CLI migrates first (synchronously) and passes the application URL in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.auth import repository as auth_repo
from parley.auth import service as auth_service
from parley.kit.boot import build_runtime
from parley.kit.db import UserId, all_tenant_ids, request_transaction, tenant_session
from parley.kit.errors import ParleyError
from parley.kit.runtime import Runtime
from parley.models import Channel, ProviderCredential, WebhookEndpoint
from parley.settings import Settings
from parley.tenants import service as tenants
from parley.tenants.schemas import TenantDetail

RuntimeSession = tuple[Runtime, AsyncSession]


@asynccontextmanager
async def _account_session(settings: Settings, app_url: str) -> AsyncIterator[RuntimeSession]:
    """A runtime and one transaction for an account command; a service's refusal (a weak
    password, an email taken or unknown) becomes the CLI's one-line error."""
    runtime = await build_runtime(settings, app_url)
    try:
        async with request_transaction(runtime.db) as session:
            yield runtime, session
    except ParleyError as exc:
        raise typer.BadParameter(exc.detail) from exc
    finally:
        await runtime.db.dispose()


async def create_user(
    settings: Settings, app_url: str, email: str, password: str, admin: bool
) -> uuid.UUID:
    async with _account_session(settings, app_url) as (runtime, session):
        user = await auth_service.create_user(
            session, runtime, email=email, password=password, platform_admin=admin
        )
        return user.id


async def reset_password(settings: Settings, app_url: str, email: str, password: str) -> str:
    """Set a user's password and sign out all its sessions; returns the user's email."""
    async with _account_session(settings, app_url) as (runtime, session):
        user = await auth_service.set_password(session, runtime, email=email, password=password)
        return user.email


async def create_tenant(
    settings: Settings, app_url: str, name: str, owner_email: str
) -> TenantDetail:
    async with _account_session(settings, app_url) as (_, session):
        owner = await auth_repo.user_by_email(session, owner_email)
        if owner is None:
            raise typer.BadParameter(f"no user with email {owner_email}")
        tenant = await tenants.create_tenant(session, name=name, owner_id=UserId(owner.id))
        return tenants.tenant_detail(tenant)


async def rotate_keys(settings: Settings, app_url: str) -> int:
    """Re-encrypt every stored secret under the newest key of PARLEY_SECRET_KEYS, tenant by
    tenant through the tenant door. Returns how many secrets were re-encrypted."""

    runtime = await build_runtime(settings, app_url)
    count = 0
    try:
        for tid in await all_tenant_ids(runtime.db):
            async with tenant_session(runtime.db, tid) as session:
                rows = (
                    await session.execute(
                        select(ProviderCredential).where(ProviderCredential.tenant_id == tid)
                    )
                ).scalars()
                for row in rows:
                    row.api_key_encrypted = runtime.keyring.reencrypt(row.api_key_encrypted)
                    count += 1
                hooks = (
                    await session.execute(
                        select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tid)
                    )
                ).scalars()
                for hook in hooks:
                    hook.secret_encrypted = runtime.keyring.reencrypt(hook.secret_encrypted)
                    count += 1
                    if hook.previous_secret_encrypted is not None:
                        hook.previous_secret_encrypted = runtime.keyring.reencrypt(
                            hook.previous_secret_encrypted
                        )
                channels = (
                    await session.execute(
                        select(Channel).where(
                            Channel.tenant_id == tid, Channel.secret_encrypted.is_not(None)
                        )
                    )
                ).scalars()
                for ch in channels:  # channel secrets and bot tokens
                    if ch.secret_encrypted is not None:
                        ch.secret_encrypted = runtime.keyring.reencrypt(ch.secret_encrypted)
                        count += 1
                    if ch.previous_secret_encrypted is not None:  # a rotation's grace period
                        ch.previous_secret_encrypted = runtime.keyring.reencrypt(
                            ch.previous_secret_encrypted
                        )
                        count += 1
                    if ch.token_encrypted is not None:
                        ch.token_encrypted = runtime.keyring.reencrypt(ch.token_encrypted)
                        count += 1
        return count
    finally:
        await runtime.db.dispose()
