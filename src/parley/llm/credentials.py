"""Per-tenant provider credentials: stored encrypted (MultiFernet), never returned after they
are set, never logged. A tenant's base URL is checked against the SSRF rules and is only ever
used with the tenant's own key — the platform key never goes to a tenant-chosen address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.audit import service as audit
from parley.kit.db import TenantId
from parley.kit.errors import NotFound
from parley.kit.ids import new_id
from parley.kit.runtime import Runtime
from parley.kit.ssrf import check_url
from parley.models import ProviderCredential

# `openai-speech`: the OpenAI-compatible speech server of the voice adapters (voice/registry.py).
ProviderName = Literal["openai", "anthropic", "gemini", "openai-speech"]


class CredentialNotFound(NotFound):
    code = "credential_not_found"
    title = "No credentials are stored for this provider"


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: SecretStr = Field(min_length=1, max_length=500)
    base_url: str | None = Field(default=None, max_length=500)


class CredentialOut(BaseModel):
    provider: ProviderName
    base_url: str | None
    key_hint: str = Field(description="The last characters of the key, to tell keys apart.")
    updated_at: datetime


@dataclass(frozen=True)
class ResolvedCredential:
    api_key: str
    base_url: str | None


def _out(row: ProviderCredential) -> CredentialOut:
    return CredentialOut(
        provider=row.provider,
        base_url=row.base_url,
        key_hint=row.key_hint,
        updated_at=row.updated_at,
    )


async def _row(
    session: AsyncSession, tenant_id: TenantId, provider: str
) -> ProviderCredential | None:
    result = await session.execute(
        select(ProviderCredential).where(
            ProviderCredential.tenant_id == tenant_id, ProviderCredential.provider == provider
        )
    )
    return result.scalar_one_or_none()


async def put(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    provider: ProviderName,
    body: CredentialIn,
    *,
    actor: str,
) -> CredentialOut:
    base_url = None
    if body.base_url:
        base_url = await check_url(
            body.base_url,
            allow_private=runtime.settings.parley_outbound_allow_private,
            schemes=("https", "http")
            if runtime.settings.parley_outbound_allow_private
            else ("https",),
            allowed_networks=runtime.settings.parley_outbound_allowed_networks,
        )
    key = body.api_key.get_secret_value()
    row = await _row(session, tenant_id, provider)
    before = {"base_url": row.base_url, "key_hint": row.key_hint} if row else None
    if row is None:
        row = ProviderCredential(tenant_id=tenant_id, id=new_id(), provider=provider)
        session.add(row)
    row.base_url = base_url
    row.api_key_encrypted = runtime.keyring.encrypt(key)
    row.key_hint = key[-4:] if len(key) >= 12 else ""
    row.updated_at = datetime.now(UTC)
    await session.flush()
    await session.refresh(row)
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="provider_credential.set",
        target_type="provider",
        target_id=provider,
        before=before,
        after={"base_url": base_url, "key_hint": row.key_hint},
    )
    return _out(row)


async def list_all(session: AsyncSession, tenant_id: TenantId) -> list[CredentialOut]:
    result = await session.execute(
        select(ProviderCredential)
        .where(ProviderCredential.tenant_id == tenant_id)
        .order_by(ProviderCredential.provider)
    )
    return [_out(r) for r in result.scalars()]


async def delete(
    session: AsyncSession, tenant_id: TenantId, provider: ProviderName, *, actor: str
) -> None:
    row = await _row(session, tenant_id, provider)
    if row is None:
        raise CredentialNotFound()
    await session.delete(row)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="provider_credential.deleted",
        target_type="provider",
        target_id=provider,
        before={"key_hint": row.key_hint},
    )


async def resolve(
    session: AsyncSession, runtime: Runtime, tenant_id: TenantId, provider: str
) -> ResolvedCredential | None:
    row = await _row(session, tenant_id, provider)
    if row is None:
        return None
    return ResolvedCredential(runtime.keyring.decrypt(row.api_key_encrypted), row.base_url)
