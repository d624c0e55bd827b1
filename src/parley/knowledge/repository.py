"""Queries for the knowledge tables (sources, jobs, chunks, retrieval logs)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.kit.db import TenantId
from parley.models import KnowledgeChunk, KnowledgeJob, KnowledgeSource


async def get_source(
    session: AsyncSession, tenant_id: TenantId, source_id: uuid.UUID, *, lock: bool = False
) -> KnowledgeSource | None:
    query = select(KnowledgeSource).where(
        KnowledgeSource.tenant_id == tenant_id, KnowledgeSource.id == source_id
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def list_sources(
    session: AsyncSession, tenant_id: TenantId, *, after: uuid.UUID | None, limit: int
) -> Sequence[KnowledgeSource]:
    query = select(KnowledgeSource).where(KnowledgeSource.tenant_id == tenant_id)
    if after is not None:
        query = query.where(KnowledgeSource.id > after)
    result = await session.execute(query.order_by(KnowledgeSource.id).limit(limit))
    return result.scalars().all()


async def get_job(
    session: AsyncSession, tenant_id: TenantId, job_id: uuid.UUID, *, lock: bool = False
) -> KnowledgeJob | None:
    query = select(KnowledgeJob).where(
        KnowledgeJob.tenant_id == tenant_id, KnowledgeJob.id == job_id
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def latest_job(
    session: AsyncSession, tenant_id: TenantId, source_id: uuid.UUID
) -> KnowledgeJob | None:
    result = await session.execute(
        select(KnowledgeJob)
        .where(KnowledgeJob.tenant_id == tenant_id, KnowledgeJob.source_id == source_id)
        .order_by(KnowledgeJob.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def next_version(session: AsyncSession, tenant_id: TenantId, source_id: uuid.UUID) -> int:
    """A version number no job of this source has used yet."""
    result = await session.execute(
        select(func.coalesce(func.max(KnowledgeJob.index_version), 0)).where(
            KnowledgeJob.tenant_id == tenant_id, KnowledgeJob.source_id == source_id
        )
    )
    return int(result.scalar_one()) + 1


async def chunks_of(
    session: AsyncSession,
    tenant_id: TenantId,
    source_id: uuid.UUID,
    version: int,
    *,
    after: int,
    limit: int,
) -> Sequence[KnowledgeChunk]:
    result = await session.execute(
        select(KnowledgeChunk)
        .where(
            KnowledgeChunk.tenant_id == tenant_id,
            KnowledgeChunk.source_id == source_id,
            KnowledgeChunk.index_version == version,
            KnowledgeChunk.ordinal > after,
        )
        .order_by(KnowledgeChunk.ordinal)
        .limit(limit)
    )
    return result.scalars().all()


async def delete_chunks_except(
    session: AsyncSession, tenant_id: TenantId, source_id: uuid.UUID, keep: Sequence[int]
) -> None:
    """Drop chunk versions other than `keep` (the active one and the one before it)."""
    await session.execute(
        delete(KnowledgeChunk).where(
            KnowledgeChunk.tenant_id == tenant_id,
            KnowledgeChunk.source_id == source_id,
            KnowledgeChunk.index_version.not_in(list(keep)),
        )
    )
