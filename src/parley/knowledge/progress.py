"""Ingestion progress as a live stream (the console's knowledge pages, issue 18).

The ingestion job publishes a bare `changed` nudge on the workspace's knowledge topic when a
source's state moves (started, a step done, finished or failed). The stream re-reads the
sources' states on each nudge, and every few seconds anyway, so a job run by another process
without a shared broker still shows up, a little later; it sends `sources` only when a state
really changed, and `idle` (then ends) once nothing is waiting or indexing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from parley.kit.db import TenantId, tenant_session
from parley.kit.metrics import SSE_CONNECTIONS
from parley.kit.runtime import Runtime
from parley.kit.sse import sse_comment, sse_event
from parley.knowledge import repository as repo

log = structlog.get_logger(__name__)

POLL_SECONDS = 3.0  # the re-read when no nudge came (a job in a process without the broker)
KEEPALIVE_SECONDS = 15.0
LOOK = 200  # sources compared per workspace: the console's pages show at most this many
BUSY = ("pending", "indexing")


def topic(tenant_id: TenantId) -> str:
    return f"knowledge:{tenant_id}"


async def nudge(runtime: Runtime, tenant_id: TenantId) -> None:
    """Tell the workspace's open streams to look again; never fails the job (a lost nudge
    only delays the page until the stream's next re-read)."""
    try:
        await runtime.broker.publish(topic(tenant_id), {"type": "changed"})
    except Exception as exc:
        log.warning("knowledge.progress_nudge_failed", error=type(exc).__name__)


async def _states(runtime: Runtime, tenant_id: TenantId) -> dict[str, tuple[str, int]]:
    async with tenant_session(runtime.db, tenant_id) as session:
        rows = await repo.list_sources(session, tenant_id, after=None, limit=LOOK)
    return {str(s.id): (s.status, s.chunk_count) for s in rows}


async def progress_stream(
    runtime: Runtime, tenant_id: TenantId, disconnected: Callable[[], Awaitable[bool]]
) -> AsyncIterator[bytes]:
    """`sources` whenever a source's state changes, `idle` once none is busy (the stream
    then ends: the page stops listening)."""
    SSE_CONNECTIONS.labels("knowledge").inc()
    try:
        async with runtime.broker.subscribe(topic(tenant_id)) as queue:
            seen = await _states(runtime, tenant_id)
            yield sse_comment("connected")
            if not any(status in BUSY for status, _ in seen.values()):
                # A page only listens while something is busy: it finished in between.
                yield sse_event("sources", {})
            last_beat = time.monotonic()
            while not await disconnected():
                if not any(status in BUSY for status, _ in seen.values()):
                    yield sse_event("idle", {})
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), timeout=POLL_SECONDS)
                now = await _states(runtime, tenant_id)
                if now != seen:
                    seen = now
                    yield sse_event("sources", {})
                if time.monotonic() - last_beat >= KEEPALIVE_SECONDS:
                    last_beat = time.monotonic()
                    yield sse_comment()
    finally:
        SSE_CONNECTIONS.labels("knowledge").dec()
