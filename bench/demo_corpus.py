"""The demo's knowledge (Parley's own `docs/`), ingested the way `parley serve --demo` does:
uploaded as Markdown files through the knowledge service, then indexed by the product's job
worker (`make_worker`, the production concurrency), so the figures include extraction,
chunking, storage, the BM25 index and, when configured, the embeddings."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.kb import BenchDb
from parley.auth.access import Principal
from parley.demo.seed import doc_pages, upload_pages
from parley.kit.db import TenantId, platform_session, tenant_session
from parley.kit.runtime import Runtime


def quiet_logs() -> None:
    """Warnings only: the worker's per-job lines would drown the report."""
    from parley.kit.logging import configure_logging

    configure_logging("warning", "console")


def pages() -> list[Path]:
    return doc_pages()


async def upload(runtime: Runtime, tenant_id: TenantId, copies: int = 1) -> int:
    """Every docs page (`copies` times, titled apart) as a Markdown upload; the number queued."""
    principal = Principal(kind="api_key", api_key_id=uuid.uuid4())  # no user row needed
    count = 0
    async with tenant_session(runtime.db, tenant_id) as session:
        for copy in range(copies):
            count += await upload_pages(
                session,
                runtime,
                tenant_id,
                principal,
                pages(),
                title=lambda page, n=copy: f"{page.stem} ({n + 1})" if copies > 1 else None,
            )
    return count


async def _queued(runtime: Runtime) -> int:
    async with platform_session(runtime.db) as session:
        n = await session.scalar(
            text("SELECT count(*) FROM pgqueuer WHERE entrypoint = 'knowledge.ingest'")
        )
    return int(n or 0)


async def run_worker_until_idle(runtime: Runtime, limit_s: float = 900) -> float:
    """Run the product's worker until no ingestion job is left; the seconds it took."""
    from parley.app import make_worker

    worker = make_worker(runtime)
    started = time.perf_counter()
    task = asyncio.create_task(worker.run())
    try:
        while await _queued(runtime):
            if time.perf_counter() - started > limit_s:
                raise TimeoutError("ingestion did not finish")
            await asyncio.sleep(0.05)
        return time.perf_counter() - started
    finally:
        worker.stop()
        await asyncio.wait_for(task, timeout=30)


async def ready_sources(bench: BenchDb, tenant_id: TenantId) -> tuple[int, int, int]:
    """(sources ready, chunks, vectors) of a tenant, checked after a run."""
    import asyncpg

    conn = await asyncpg.connect(bench.admin_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'ready'), coalesce(sum(chunk_count), 0)"
            " FROM kb_sources WHERE tenant_id = $1",
            tenant_id,
        )
        vectors = await conn.fetchval(
            "SELECT count(*) FROM kb_vectors WHERE tenant_id = $1", tenant_id
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), int(row[1]), int(vectors or 0)


def bench_runtime(bench: BenchDb, **settings: Any) -> Runtime:
    from dataclasses import replace

    from parley.kit.security import Keyring

    quiet_logs()
    runtime = bench.runtime(**settings)
    return replace(runtime, keyring=Keyring.from_secrets(["bench-secret-key-" + "x" * 40]))
