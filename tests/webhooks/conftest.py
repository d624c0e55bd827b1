"""Webhook tests: an app that may call local addresses, a receiver, and a job worker run the
way tests/kit/test_jobs.py runs one (with its own settings: tiny retry delays)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from parley.kit.jobs import asyncpg_dsn
from parley.kit.runtime import Runtime
from tests.conftest import DatabaseUnderTest, make_settings
from tests.webhooks.receiver import Receiver

FAST = {
    "parley_outbound_allow_private": True,
    "parley_webhook_retry_schedule": "0.05,0.05,0.05",
    "parley_webhook_timeout_seconds": 3.0,
    "parley_webhook_breaker_failures": 1000,
}

CRASH = {
    **FAST,
    "parley_webhook_timeout_seconds": 1.0,
    "parley_webhook_max_in_flight": 2,
    "parley_webhook_retry_schedule": ",".join(["0.1"] * 20),
}


@pytest.fixture(scope="module", autouse=True)
async def _an_empty_queue(test_db: DatabaseUnderTest) -> None:
    """These tests judge how soon their worker delivers. Jobs other modules left queued (their
    retries, emissions for workspaces whose receivers are gone) would take its slots first,
    so each module starts with an empty queue (tests/channels also removes its own)."""
    conn = await asyncpg.connect(asyncpg_dsn(test_db.admin_url))
    try:
        await conn.execute("DELETE FROM pgqueuer")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def wh_app(data_dir: Path, test_db: DatabaseUnderTest) -> AsyncIterator[Any]:
    from parley.app import create_app

    application = create_app(
        # Rate limits have their own tests; these open many widget sessions from one client.
        make_settings(data_dir, parley_outbound_allow_private=True, parley_rate_limits="off"),
        database_url=test_db.app_url,
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def wh_client(wh_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=wh_app, client=("10.9.9.9", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


WorkerFactory = Callable[..., contextlib.AbstractAsyncContextManager[Runtime]]


@pytest.fixture
def worker(data_dir: Path, test_db: DatabaseUnderTest) -> WorkerFactory:
    """`async with worker(**settings): ...` runs the product's jobs until the block ends."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[Runtime]:
        import parley.tasks  # noqa: F401  (registers the product's jobs)
        from parley.kit.boot import build_runtime
        from parley.kit.db import platform_session
        from parley.kit.jobs import REGISTRY, Worker
        from parley.usage.plans import sync_plans

        settings = make_settings(data_dir, **{**FAST, **overrides})
        runtime = await build_runtime(settings, test_db.app_url)
        async with platform_session(runtime.db) as session:
            await sync_plans(session, settings)  # as every process does at start-up (0025)
        w = Worker(
            db=runtime.db,
            registry=REGISTRY,
            runtime=runtime,
            dequeue_timeout=timedelta(seconds=0.2),
            heartbeat_timeout=timedelta(seconds=5),
        )
        task = asyncio.create_task(w.run())
        try:
            yield runtime
        finally:
            w.stop()
            await asyncio.wait_for(task, timeout=20)
            for client in runtime.clients.values():
                close = getattr(client, "aclose", None)  # http clients; not caches or stores
                if close is not None:
                    await close()
            await runtime.db.dispose()

    return run


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")
