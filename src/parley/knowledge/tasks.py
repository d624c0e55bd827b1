"""Knowledge jobs: ingestion (extract, chunk, index, swap) and removal of deleted files."""

from __future__ import annotations

import structlog

from parley.kit.jobs import REGISTRY, JobContext
from parley.knowledge import ingest, progress
from parley.knowledge.service import INGEST_JOB, PURGE_JOB
from parley.knowledge.storage import storage_for

log = structlog.get_logger(__name__)


@REGISTRY.job(INGEST_JOB, concurrency_limit=2)
async def ingest_source(ctx: JobContext) -> None:
    try:
        await ingest.run(ctx)
    finally:  # ready, failed or retrying: open knowledge pages re-read (progress.py)
        await progress.nudge(ctx.runtime, ctx.tenant_id)


@REGISTRY.job(PURGE_JOB, max_attempts=10)
async def purge_files(ctx: JobContext) -> None:
    """Delete originals of removed sources (after their rows are gone, so never too early)."""
    store = storage_for(ctx.runtime)
    prefix = f"{ctx.payload['tenant_id']}/"
    for key in ctx.payload.get("keys", []):
        if str(key).startswith(prefix):  # a job only ever touches its own tenant's files
            await store.delete(str(key))
    log.info("knowledge.files_purged", count=len(ctx.payload.get("keys", [])))
