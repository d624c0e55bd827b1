"""The ingestion pipeline behind `knowledge.ingest`: load the original → extract → clean →
chunk → store the chunks as a new index version → index it (BM25, and vectors when
configured) → swap it in, all in one transaction, so readers see the old index until the new
one is complete. The version before is kept for `restore`; older ones are removed.

Failures the content itself causes (corrupt or unsupported file, a URL that is refused or too
large) fail the job at once with a clear error; transient ones (storage, network, database)
are retried by the job system, and the job shows `failed` only after the last attempt.

The transaction that records a job's final status also emits `knowledge.job.completed`
(`announce`), at most once per job row, so a retried or re-run job never announces twice and
every re-index, being a new job, announces its own outcome.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid as _uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import insert, update

from parley.kit.db import tenant_session
from parley.kit.errors import ParleyError
from parley.kit.http import OutboundFailed, fetch
from parley.kit.ids import new_id
from parley.knowledge import bm25, isolated, markdown, progress, vectors
from parley.knowledge import document as doc
from parley.knowledge import repository as repo
from parley.knowledge.chunking import Chunk, chunk, heading_prefix
from parley.knowledge.embeddings import embedder_for
from parley.knowledge.errors import TimeBudgetExceeded
from parley.knowledge.extract import check_text_size
from parley.knowledge.storage import MissingObject, key_for, storage_for
from parley.models import KnowledgeChunk, KnowledgeJob, KnowledgeSource
from parley.webhooks import events as webhook_events
from parley.webhooks import repository as webhooks_repo
from parley.webhooks import service as webhooks

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.ext.asyncio import AsyncSession

    from parley.kit.db import TenantId
    from parley.kit.jobs import JobContext
    from parley.kit.runtime import Runtime
    from parley.knowledge.document import ExtractedDocument

log = structlog.get_logger(__name__)

INSERT_BATCH = 500
JOB_COMPLETED = "knowledge.job.completed"
FAILED = "ingestion_failed"  # the error code when no more specific one applies


class _Permanent(Exception):
    """The content cannot be ingested; retrying will not help. `code` is the stable code the
    `knowledge.job.completed` event reports (an extraction error's own, where there is one)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


async def announce(
    session: AsyncSession,
    tenant_id: TenantId,
    job: KnowledgeJob,
    source: KnowledgeSource | None,
    *,
    error_code: str | None = None,
) -> bool:
    """Emit `knowledge.job.completed` for a job that just finished, in the caller's
    transaction (the one recording its final status). The `emitted_events` marker is keyed by
    the job row, so this job never announces twice (False then) while a later job of the same
    source announces its own outcome."""
    if not await webhooks_repo.mark_emitted(session, tenant_id, JOB_COMPLETED, job.id):
        return False
    await webhooks.emit(
        session,
        tenant_id,
        JOB_COMPLETED,
        webhook_events.knowledge_job_completed(job, source, error_code=error_code),
    )
    return True


async def _set_job(runtime: Runtime, tenant_id: TenantId, job_id: uuid.UUID, **values: Any) -> None:

    async with tenant_session(runtime.db, tenant_id) as session:
        await session.execute(
            update(KnowledgeJob)
            .where(KnowledgeJob.tenant_id == tenant_id, KnowledgeJob.id == job_id)
            .values(**values)
        )
    await progress.nudge(runtime, tenant_id)  # a step done: the console's pages look again


@dataclass(frozen=True)
class _Original:
    """An uploaded or fetched file, still to be parsed (in the isolated process)."""

    data: bytes
    filename: str | None
    content_type: str | None
    max_bytes: int


async def _load(
    runtime: Runtime, tenant_id: TenantId, source: KnowledgeSource
) -> _Original | ExtractedDocument:
    """The source's original bytes, or, for pasted text and FAQs (small, already structured),
    the document itself."""

    s = runtime.settings
    if source.type == "url":
        assert source.url is not None
        try:
            response = await fetch(
                runtime,
                "GET",
                source.url,
                headers={"Accept": "text/html, application/pdf, text/plain;q=0.9, */*;q=0.5"},
                max_bytes=s.parley_knowledge_max_url_bytes,
                max_redirects=5,
                http_timeout=s.parley_knowledge_url_timeout_seconds,
            )
        except OutboundFailed:
            raise  # transient: retried
        except ParleyError as exc:
            raise _Permanent(exc.detail or exc.title, exc.code) from exc
        if response.status_code >= 400:
            message = f"The URL answered HTTP {response.status_code}."
            if response.status_code >= 500 or response.status_code == 429:
                raise OutboundFailed(message)
            raise _Permanent(message, "url_http_error")
        content_type = response.headers.get("content-type", "").split(";")[0].strip() or None
        name = response.url.rsplit("/", 1)[-1] or "index.html"
        # Kept as the original too (the swap records the key), so deletion removes it.
        await storage_for(runtime).put(key_for(tenant_id, source.id), response.body)
        return _Original(response.body, name, content_type, s.parley_knowledge_max_url_bytes)
    assert source.storage_key is not None
    data = await storage_for(runtime).get(source.storage_key)
    if source.type == "text":
        body = json.loads(data)
        return markdown.text_document(body["title"], body["text"])
    if source.type == "faq":
        body = json.loads(data)
        return doc.faq_document(
            [(p["question"], p["answer"]) for p in body["pairs"]], title=body.get("title")
        )
    return _Original(data, source.filename, source.content_type, s.parley_knowledge_max_file_bytes)


def _limits(runtime: Runtime, max_bytes: int) -> isolated.Limits:
    s = runtime.settings
    return isolated.Limits(
        max_bytes=max_bytes,
        max_html_depth=s.parley_ingest_max_html_depth,
        max_html_elements=s.parley_ingest_max_html_elements,
        max_text_chars=s.parley_ingest_max_text_chars,
        max_chunks=s.parley_ingest_max_chunks,
        chunk_tokens=s.parley_chunk_tokens,
        overlap_tokens=min(s.parley_chunk_overlap_tokens, s.parley_chunk_tokens // 4),
    )


async def _chunks(
    runtime: Runtime, loaded: _Original | ExtractedDocument, deadline: float
) -> tuple[str, list[Chunk]]:
    """Title and chunks. A file is parsed in a child process killed at the job's deadline
    (`knowledge.isolated`), so a hostile file never holds this worker's event loop."""
    if isinstance(loaded, _Original):
        extracted = await isolated.extract_chunks(
            loaded.data,
            filename=loaded.filename,
            content_type=loaded.content_type,
            limits=_limits(runtime, loaded.max_bytes),
            seconds=max(0.1, deadline - time.monotonic()),
        )
        return extracted.title, extracted.chunks

    lim = _limits(runtime, 0)
    check_text_size(loaded, lim.max_text_chars)
    chunks = await asyncio.to_thread(
        chunk, loaded, max_tokens=lim.chunk_tokens, overlap_tokens=lim.overlap_tokens
    )
    isolated.check_chunk_count(chunks, lim.max_chunks)
    return loaded.title, chunks


async def deindex(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    source_id: uuid.UUID,
    version: int,
) -> None:
    """Take a version out of every index (its chunks stay, for restore)."""
    await bm25.drop_version(session, tenant_id, source_id, version)
    if runtime.pgvector:
        await vectors.drop_vectors(session, tenant_id, source_id, version)


async def activate(
    session: AsyncSession,
    runtime: Runtime,
    tenant_id: TenantId,
    source: KnowledgeSource,
    version: int,
    known_vectors: dict[str, list[float]] | None = None,
) -> None:
    """Make `version` the one retrieval sees, in the caller's transaction. The version that
    was active becomes the previous one; any older version is deleted. `known_vectors`: the
    chunks' embeddings when the caller computed them before its transaction."""
    old = source.active_version
    if old and old != version:
        await deindex(session, runtime, tenant_id, source.id, old)
    chunk_count = await bm25.index_version(
        session, tenant_id, source.id, version, cfg=runtime.settings.parley_text_search_config
    )
    embedder = _embedder(runtime)
    if embedder is not None:
        await vectors.index_vectors(session, embedder, tenant_id, source.id, version, known_vectors)
    keep = [version] + ([old] if old and old != version else [])
    await repo.delete_chunks_except(session, tenant_id, source.id, keep)
    source.previous_version = old if old and old != version else None
    source.active_version = version
    source.chunk_count = chunk_count
    source.status = "ready"
    source.error = None
    source.updated_at = datetime.now(UTC)


async def _embed_chunks(runtime: Runtime, chunks: list[Any]) -> dict[str, list[float]] | None:
    """The chunks' vectors, computed before the job's transaction: embedding takes seconds on
    a CPU, and inside the transaction it held the BM25 index's row locks all that time, so the
    workspace's other ingestion jobs queued behind it instead of sharing the model's batches."""
    embedder = _embedder(runtime)
    if embedder is None:
        return None

    texts = [vectors.chunk_text(heading_prefix(c.heading_path), c.body) for c in chunks]
    return await vectors.embed_texts(embedder, texts)


def _embedder(runtime: Runtime) -> Any:
    if not runtime.pgvector or runtime.settings.embeddings == "none":
        return None

    return embedder_for(runtime)


async def _store_and_swap(
    runtime: Runtime,
    tenant_id: TenantId,
    job_id: uuid.UUID,
    chunks: list[Any],
    title: str,
    known_vectors: dict[str, list[float]] | None,
) -> int:

    async with tenant_session(runtime.db, tenant_id) as session:
        job = await repo.get_job(session, tenant_id, job_id, lock=True)
        if job is None or job.status == "succeeded":
            return 0
        source = await repo.get_source(session, tenant_id, job.source_id, lock=True)
        if source is None:
            return 0
        # A crashed earlier attempt may have left rows of this version: start it clean.
        if source.active_version != job.index_version:
            keep = [v for v in (source.active_version, source.previous_version) if v]
            await repo.delete_chunks_except(session, tenant_id, source.id, keep)
        rows = [
            {
                "tenant_id": tenant_id,
                "id": new_id(),
                "source_id": source.id,
                "index_version": job.index_version,
                "ordinal": c.ordinal,
                "text": c.body,  # the heading path is kept (and indexed) beside it
                "heading": heading_prefix(c.heading_path) or None,
                "page": c.page,
                "token_count": c.token_count,
            }
            for c in chunks
        ]
        for start in range(0, len(rows), INSERT_BATCH):
            await session.execute(insert(KnowledgeChunk), rows[start : start + INSERT_BATCH])
        if source.type == "url":
            source.storage_key = key_for(tenant_id, source.id)
        # No title given: the document's own (its first heading, <title>, PDF metadata).
        if title and source.title in (source.filename, source.url):
            source.title = title[:300]
        await activate(session, runtime, tenant_id, source, job.index_version, known_vectors)
        job.status = "succeeded"
        job.progress = 1.0
        job.error = None
        job.finished_at = datetime.now(UTC)
        await announce(session, tenant_id, job, source)
        return len(rows)


async def _fail(
    runtime: Runtime, tenant_id: TenantId, job_id: uuid.UUID, message: str, code: str
) -> None:

    async with tenant_session(runtime.db, tenant_id) as session:
        job = await repo.get_job(session, tenant_id, job_id, lock=True)
        if job is None or job.status in ("succeeded", "failed"):
            return  # finished already (its outcome recorded and announced): never overwrite it
        job.status = "failed"
        job.error = message[:2000]
        job.error_code = code
        job.finished_at = datetime.now(UTC)
        source = await repo.get_source(session, tenant_id, job.source_id, lock=True)
        if source is not None:
            source.error = message[:2000]
            if not source.active_version:  # a re-index failure keeps the source serving
                source.status = "failed"
            source.updated_at = datetime.now(UTC)
        await announce(session, tenant_id, job, source, error_code=code)


async def run(ctx: JobContext) -> None:
    """One attempt of an ingestion job."""

    runtime = ctx.runtime
    tenant_id = ctx.tenant_id
    job_id = _uuid.UUID(str(ctx.payload["job_id"]))
    started = time.perf_counter()
    async with tenant_session(runtime.db, tenant_id) as session:
        job = await repo.get_job(session, tenant_id, job_id, lock=True)
        if job is None or job.status in ("succeeded", "failed"):
            return  # deleted with its source, or already finished: nothing to do twice
        source = await repo.get_source(session, tenant_id, job.source_id)
        if source is None:
            return
        job.status = "running"
        job.attempts += 1
        job.started_at = job.started_at or datetime.now(UTC)
        job.progress = 0.05
        if not source.active_version:
            source.status = "indexing"
        session.expunge(source)
    budget = runtime.settings.parley_ingest_time_budget_seconds
    deadline = time.monotonic() + budget
    try:
        try:
            async with asyncio.timeout(budget):  # the whole attempt: fetch, parse, store
                loaded = await _load(runtime, tenant_id, source)
                await _set_job(runtime, tenant_id, job_id, progress=0.3)
                title, chunks = await _chunks(runtime, loaded, deadline)
                if not chunks:
                    raise _Permanent("The document has no text to index.", "empty_document")
                await _set_job(runtime, tenant_id, job_id, progress=0.6)
                known = await _embed_chunks(runtime, chunks)
                count = await _store_and_swap(runtime, tenant_id, job_id, chunks, title, known)
        except TimeoutError as exc:
            stopped = TimeBudgetExceeded(f"The job was stopped after {budget:.0f} s.")
            raise _Permanent(str(stopped.detail), stopped.code) from exc
        except ParleyError as exc:  # extraction's own errors: corrupt, unsupported, too big
            if isinstance(exc, OutboundFailed):
                raise
            raise _Permanent(exc.detail or exc.title, exc.code) from exc
        except MissingObject as exc:
            raise _Permanent(
                "The original file is missing from storage.", "original_missing"
            ) from exc
    except _Permanent as exc:
        await _fail(runtime, tenant_id, job_id, exc.message, exc.code)
        log.info("knowledge.ingest.failed", tenant_id=str(tenant_id), job_id=str(job_id))
        return
    except Exception as exc:
        if ctx.final_attempt:
            await _fail(
                runtime, tenant_id, job_id, f"Ingestion failed: {type(exc).__name__}.", FAILED
            )
        else:
            await _set_job(runtime, tenant_id, job_id, error=f"Retrying: {type(exc).__name__}")
        raise
    log.info(
        "knowledge.ingest.done",
        tenant_id=str(tenant_id),
        job_id=str(job_id),
        chunks=count,
        seconds=round(time.perf_counter() - started, 3),
    )
