"""Jobs these modules leave queued (inbound processing, ingestion) are removed after each
module, so later modules' workers spend no time on them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from parley.kit.jobs import asyncpg_dsn
from tests.conftest import DatabaseUnderTest


@pytest.fixture(scope="module", autouse=True)
async def _no_jobs_left(test_db: DatabaseUnderTest) -> AsyncIterator[None]:
    yield
    conn = await asyncpg.connect(asyncpg_dsn(test_db.admin_url))
    try:
        await conn.execute("DELETE FROM pgqueuer WHERE entrypoint NOT LIKE 'cron:%'")
    finally:
        await conn.close()
