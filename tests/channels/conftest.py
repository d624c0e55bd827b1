"""Every module here stores inbound deliveries, and with them `channels.process_inbound`
jobs; some are left queued for a retry when the module ends (a callback that kept failing, a
server that stopped). They are removed after each module, so the workers of later modules
(webhooks, crash tests) spend no time on them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from parley.kit.jobs import asyncpg_dsn
from tests.conftest import DatabaseUnderTest


@pytest.fixture(scope="module", autouse=True)
async def _no_inbound_jobs_left(test_db: DatabaseUnderTest) -> AsyncIterator[None]:
    yield
    conn = await asyncpg.connect(asyncpg_dsn(test_db.admin_url))
    try:
        await conn.execute("DELETE FROM pgqueuer WHERE entrypoint = 'channels.process_inbound'")
    finally:
        await conn.close()
