"""An app whose plans are small enough to reach in a test (each test moves its workspace
onto the plan it exercises)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from parley.settings import Settings
from tests.conftest import DatabaseUnderTest, make_settings

PLANS: dict[str, dict[str, int]] = {
    "free": {"monthly_conversations": 1_000, "monthly_tokens": 1_000_000},  # the default's
    "t-conv": {"monthly_conversations": 2},
    "t-rate": {"messages_per_minute": 3},
    "t-tokens": {"monthly_tokens": 5},
    "t-bots": {"bots": 2},
    "t-sources": {"sources": 2, "storage_bytes": 100},
    "t-shared": {"monthly_conversations": 12},
    "t-roomy": {},
}


@pytest.fixture(scope="session")
def plans_settings(data_dir: Path, fake_openai: Any) -> Settings:
    return make_settings(
        data_dir,
        openai_base_url=fake_openai.base_url,
        openai_api_key="sk-test",
        parley_plans=PLANS,
    )


@pytest.fixture(scope="session")
async def plans_app(plans_settings: Settings, test_db: DatabaseUnderTest) -> AsyncIterator[Any]:
    from parley.app import create_app

    application = create_app(plans_settings, database_url=test_db.app_url)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def pclient(plans_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=plans_app, client=(f"10.9.{secrets.randbelow(250)}.7", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def on_plan(admin_conn: asyncpg.Connection, tenant_id: str, plan: str) -> None:
    """Move the workspace onto `plan`. The plan's row is written too: another app of the
    session (other settings) may have re-synced the table since `plans_app` started."""
    await admin_conn.execute(
        "INSERT INTO plans (name, limits) VALUES ($1, $2::jsonb) "
        "ON CONFLICT (name) DO UPDATE SET limits = EXCLUDED.limits",
        plan,
        json.dumps(PLANS[plan]),
    )
    await admin_conn.execute("UPDATE tenants SET plan = $2 WHERE id = $1::uuid", tenant_id, plan)


async def count(admin_conn: asyncpg.Connection, table: str, tenant_id: str) -> int:
    return int(
        await admin_conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1::uuid", tenant_id
        )
    )


async def meter(admin_conn: asyncpg.Connection, tenant_id: str, type_: str) -> tuple[int, int]:
    """(events, summed quantity) of one meter type for the workspace."""
    row = await admin_conn.fetchrow(
        "SELECT count(*), coalesce(sum(quantity), 0) FROM usage_events "
        "WHERE tenant_id = $1::uuid AND type = $2",
        tenant_id,
        type_,
    )
    return int(row[0]), int(row[1])
