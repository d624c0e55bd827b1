"""Knowledge use cases: add sources (text, FAQ, file, URL), follow their ingestion jobs,
re-index and restore, delete, search, and check answer coverage.

A new source is stored (original kept by the storage port) and gets an ingestion job in the
same transaction; the job (`knowledge.ingest` in `tasks.py`) extracts, chunks and indexes it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING

import structlog

from parley.audit import service as audit
from parley.bots import repository as bots_repo
from parley.bots.schemas import BotConfig
from parley.bots.service import BotNotFound
from parley.kit import jobs
from parley.kit.errors import Conflict, NotFound, Unprocessable
from parley.kit.ids import new_id
from parley.kit.pagination import Page, after_id, after_int, page_by_id, page_by_key
from parley.kit.ssrf import check_url
from parley.knowledge import ingest, retrieval
from parley.knowledge import repository as repo
from parley.knowledge.extract import detect_format
from parley.knowledge.schemas import (
    ChunkOut,
    FaqPair,
    FaqSourceIn,
    JobOut,
    JobRef,
    QualityCheckIn,
    QualityCheckOut,
    QualityResult,
    SearchIn,
    SearchItem,
    SearchOut,
    SourceAccepted,
    SourceOut,
    TextSourceIn,
    UrlSourceIn,
)
from parley.knowledge.storage import key_for, storage_for
from parley.models import KnowledgeJob, KnowledgeSource

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from parley.auth.access import Principal
    from parley.kit.db import TenantId
    from parley.kit.runtime import Runtime

log = structlog.get_logger(__name__)

INGEST_JOB = "knowledge.ingest"
PURGE_JOB = "knowledge.purge_files"
# The best passage must cover at least this share of the question's terms for the question to
# count as answered (see `bm25.Scored.coverage`); otherwise the bot says it found nothing.
RELEVANCE_THRESHOLD = 0.35
# Once a question is answerable, further passages join the context above this share.
SUPPORT_THRESHOLD = 0.2


class SourceNotFound(NotFound):
    code = "knowledge_source_not_found"
    title = "Knowledge source not found"


class JobNotFound(NotFound):
    code = "knowledge_job_not_found"
    title = "Ingestion job not found"


class FileTooLarge(Unprocessable):
    status = 413
    code = "file_too_large"
    title = "The file is larger than allowed"


class EmptyUpload(Unprocessable):
    code = "empty_file"
    title = "The uploaded file is empty"


class NothingToRestore(Conflict):
    code = "no_previous_version"
    title = "This source has no previous index version to restore"


class SourceBusy(Conflict):
    code = "knowledge_source_busy"
    title = "This source is being indexed; try again when its job has finished"


def source_out(s: KnowledgeSource) -> SourceOut:
    return SourceOut.model_validate(s)


def job_out(j: KnowledgeJob) -> JobOut:
    return JobOut.model_validate(j)


async def _start_job(
    session: AsyncSession, tenant_id: TenantId, source: KnowledgeSource, kind: str
) -> KnowledgeJob:
    job = KnowledgeJob(
        tenant_id=tenant_id,
        id=new_id(),
        source_id=source.id,
        kind=kind,
        status="queued",
        progress=0.0,
        attempts=0,
        index_version=await repo.next_version(session, tenant_id, source.id),
    )
    session.add(job)
    await session.flush()
    await jobs.enqueue(
        session,
        INGEST_JOB,
        {"tenant_id": str(tenant_id), "job_id": str(job.id)},
        dedupe_key=f"{tenant_id}:kb:{job.id}",
    )
    await session.refresh(job)
    return job


async def _new_source(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    principal: Principal,
    *,
    type_: str,
    title: str,
    original: bytes | None,
    url: str | None = None,
    filename: str | None = None,
    content_type: str | None = None,
) -> SourceAccepted:
    source = KnowledgeSource(
        tenant_id=tenant_id,
        id=new_id(),
        type=type_,
        title=title,
        status="pending",
        url=url,
        filename=filename,
        content_type=content_type,
        size_bytes=len(original) if original is not None else 0,
        content_sha256=hashlib.sha256(original).hexdigest() if original is not None else None,
        created_by=principal.user_id,
    )
    if original is not None:
        source.storage_key = key_for(tenant_id, source.id)
    session.add(source)
    # The row first: the plan's sources and storage limits are checked as it is inserted
    # (migration 0025), so a refused upload writes no file.
    await session.flush()
    if original is not None and source.storage_key is not None:
        # Written before the row commits; a failed request leaves at most an unreferenced file
        # under the tenant's prefix, which tenant deletion removes with the rest.
        await storage_for(runtime).put(source.storage_key, original)
    job = await _start_job(session, tenant_id, source, "ingest")
    await session.refresh(source)
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="knowledge_source.created",
        target_type="knowledge_source",
        target_id=source.id,
        after={"type": type_, "title": title, "url": url, "filename": filename},
    )
    log.info(
        "knowledge.source.created",
        tenant_id=str(tenant_id),
        source_id=str(source.id),
        type=type_,
        job_id=str(job.id),
    )
    return SourceAccepted(
        **source_out(source).model_dump(), job=JobRef(id=job.id, status=job.status)
    )


async def create_source(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    principal: Principal,
    body: TextSourceIn | UrlSourceIn | FaqSourceIn,
) -> SourceAccepted:
    if isinstance(body, TextSourceIn):
        payload = json.dumps({"title": body.title, "text": body.text}).encode()
        return await _new_source(
            session,
            runtime,
            tenant_id,
            principal,
            type_="text",
            title=body.title.strip(),
            original=payload,
            content_type="application/json",
        )
    if isinstance(body, FaqSourceIn):
        pairs = [p.model_dump() for p in body.pairs]
        payload = json.dumps({"title": body.title, "pairs": pairs}).encode()
        return await _new_source(
            session,
            runtime,
            tenant_id,
            principal,
            type_="faq",
            title=body.title.strip(),
            original=payload,
            content_type="application/json",
        )
    url = await check_url(
        body.url,
        allow_private=runtime.settings.parley_outbound_allow_private,
        allowed_networks=runtime.settings.parley_outbound_allowed_networks,
    )
    return await _new_source(
        session,
        runtime,
        tenant_id,
        principal,
        type_="url",
        title=(body.title or url)[:300],
        original=None,
        url=url,
    )


async def upload_source(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    principal: Principal,
    *,
    data: bytes,
    filename: str | None,
    content_type: str | None,
    title: str | None,
) -> SourceAccepted:
    limit = runtime.settings.parley_knowledge_max_file_bytes
    if len(data) > limit:
        raise FileTooLarge(f"The file is {len(data)} bytes; the limit is {limit}.")
    if not data:
        raise EmptyUpload("The uploaded file has no content.")

    detect_format(data, filename=filename, content_type=content_type)  # unsupported → 422 now
    clean_name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1][:255] or "upload"
    return await _new_source(
        session,
        runtime,
        tenant_id,
        principal,
        type_="file",
        title=(title or clean_name).strip()[:300] or clean_name,
        original=data,
        filename=clean_name,
        content_type=(content_type or "")[:120] or None,
    )


async def list_sources(
    session: AsyncSession, tenant_id: TenantId, cursor: str | None, limit: int
) -> Page[SourceOut]:
    rows = await repo.list_sources(session, tenant_id, after=after_id(cursor), limit=limit + 1)
    return page_by_id(rows, limit, source_out, lambda s: s.id)


async def get_source(session: AsyncSession, tenant_id: TenantId, source_id: uuid.UUID) -> SourceOut:
    source = await repo.get_source(session, tenant_id, source_id)
    if source is None:
        raise SourceNotFound()
    return source_out(source)


async def list_chunks(
    session: AsyncSession,
    tenant_id: TenantId,
    source_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> Page[ChunkOut]:
    """One page of the active version's chunks in order; the cursor is the last ordinal."""
    source = await repo.get_source(session, tenant_id, source_id)
    if source is None:
        raise SourceNotFound()
    after = after_int(cursor)
    rows = await repo.chunks_of(
        session,
        tenant_id,
        source_id,
        source.active_version,
        after=-1 if after is None else after,
        limit=limit + 1,
    )
    return page_by_key(rows, limit, ChunkOut.model_validate, lambda c: c.ordinal)


async def get_job(session: AsyncSession, tenant_id: TenantId, job_id: uuid.UUID) -> JobOut:
    job = await repo.get_job(session, tenant_id, job_id)
    if job is None:
        raise JobNotFound()
    return job_out(job)


async def reindex(
    session: AsyncSession, tenant_id: TenantId, principal: Principal, source_id: uuid.UUID
) -> JobOut:
    """Build a new index version from the kept original (a URL is fetched again); readers keep
    the current version until the new one is complete. While a build is pending, asking
    again returns that build instead of queueing a second one."""
    source = await repo.get_source(session, tenant_id, source_id, lock=True)
    if source is None:
        raise SourceNotFound()
    current = await repo.latest_job(session, tenant_id, source_id)
    if current is not None and current.status in ("queued", "running"):
        return job_out(current)  # one pending build at a time: asking again returns it
    job = await _start_job(session, tenant_id, source, "reindex")
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="knowledge_source.reindexed",
        target_type="knowledge_source",
        target_id=source.id,
        after={"job_id": str(job.id), "index_version": job.index_version},
    )
    return job_out(job)


class NotAnFaq(Conflict):
    code = "source_not_faq"
    title = "Only an FAQ source takes question and answer entries"


async def add_faq_entry(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    principal: Principal,
    source_id: uuid.UUID,
    pair: FaqPair,
) -> JobOut:
    """Append a question and its answer to an FAQ source's kept original and re-index it
    (analytics' "answer a gap"). The source row is locked, so two entries added at once are
    both kept."""
    source = await repo.get_source(session, tenant_id, source_id, lock=True)
    if source is None:
        raise SourceNotFound()
    if source.type != "faq" or source.storage_key is None:
        raise NotAnFaq(f"The source is of type {source.type!r}.")
    storage = storage_for(runtime)
    body = json.loads(await storage.get(source.storage_key))
    body["pairs"] = [*body.get("pairs", []), pair.model_dump()]
    original = json.dumps(body).encode()
    await storage.put(source.storage_key, original)
    source.size_bytes = len(original)
    source.content_sha256 = hashlib.sha256(original).hexdigest()
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="knowledge_source.faq_entry_added",
        target_type="knowledge_source",
        target_id=source.id,
        after={"pairs": len(body["pairs"])},
    )
    await session.flush()
    return await reindex(session, tenant_id, principal, source_id)


async def restore_previous(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    principal: Principal,
    source_id: uuid.UUID,
) -> SourceOut:
    """Swap the previous index version back in, in one transaction (no re-extraction)."""

    source = await repo.get_source(session, tenant_id, source_id, lock=True)
    if source is None:
        raise SourceNotFound()
    if source.previous_version is None:
        raise NothingToRestore()
    current = await repo.latest_job(session, tenant_id, source_id)
    if current is not None and current.status in ("queued", "running"):
        raise SourceBusy()
    before = {"active_version": source.active_version}
    await ingest.activate(session, runtime, tenant_id, source, source.previous_version)
    await session.flush()
    await session.refresh(source)
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="knowledge_source.restored",
        target_type="knowledge_source",
        target_id=source.id,
        before=before,
        after={"active_version": source.active_version},
    )
    return source_out(source)


async def delete_source(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    principal: Principal,
    source_id: uuid.UUID,
) -> None:
    """Remove the source, its chunks, postings, vectors and jobs now; its file right after the
    transaction commits (a job, so a crash between the two never loses track of the file)."""

    source = await repo.get_source(session, tenant_id, source_id, lock=True)
    if source is None:
        raise SourceNotFound()
    if source.active_version:
        await ingest.deindex(session, runtime, tenant_id, source.id, source.active_version)
    key = source.storage_key
    await session.delete(source)
    await session.flush()
    if key:
        await jobs.enqueue(session, PURGE_JOB, {"tenant_id": str(tenant_id), "keys": [key]})
    await audit.record(
        session,
        tenant_id,
        actor=principal.actor,
        action="knowledge_source.deleted",
        target_type="knowledge_source",
        target_id=source_id,
        before={"type": source.type, "title": source.title},
    )


async def _bot_sources(
    session: AsyncSession, tenant_id: TenantId, bot_id: uuid.UUID | None
) -> tuple[list[uuid.UUID] | None, BotConfig | None]:
    if bot_id is None:
        return None, None

    found = await bots_repo.published(session, tenant_id, bot_id)
    if found is None:
        raise BotNotFound()
    config = BotConfig.model_validate(found[1].config)
    return config.knowledge_source_ids, config


def _item(hit: retrieval.Hit) -> SearchItem:
    return SearchItem.model_validate(hit)


async def search(
    session: AsyncSession, runtime: Runtime, tenant_id: TenantId, body: SearchIn
) -> SearchOut:
    source_ids, _ = await _bot_sources(session, tenant_id, body.bot_id)
    result = await retrieval.search(
        runtime.db, runtime, tenant_id, body.query, k=body.k, source_ids=source_ids
    )
    return SearchOut(
        items=[_item(h) for h in result.items],
        mode=result.mode,
        notice=result.detail.get("notice"),
        trace={
            "latency_ms": round(result.latency_ms, 2),
            **{k: v for k, v in result.detail.items() if k != "notice"},
            "relevance": [round(h.relevance, 4) for h in result.items],
        },
    )


async def quality_check(
    session: AsyncSession, runtime: Runtime, tenant_id: TenantId, body: QualityCheckIn
) -> QualityCheckOut:
    """Run sample questions through the bot's retrieval; report which found nothing relevant."""
    source_ids, _ = await _bot_sources(session, tenant_id, body.bot_id)
    results: list[QualityResult] = []
    for question in body.questions:
        result = await retrieval.search(
            runtime.db, runtime, tenant_id, question, k=body.k, source_ids=source_ids
        )
        relevant = [h for h in result.items if h.relevance >= RELEVANCE_THRESHOLD]
        results.append(
            QualityResult(
                question=question, found=bool(relevant), items=[_item(h) for h in relevant]
            )
        )
    return QualityCheckOut(
        results=results,
        found=sum(1 for r in results if r.found),
        not_found=[r.question for r in results if not r.found],
    )
