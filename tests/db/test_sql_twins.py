"""Rules that SQL and Python both state, checked to agree (decision 0029).

- Who listens to an event: `parley_enqueue_event` (and `parley_usage_check_request`) enqueue
  only when the workspace has an enabled endpoint subscribed to the event or an enabled rule on
  it; `webhooks.service.emit` finds its targets with `webhooks.repository.targets`. Compared on
  generated listener configurations.
- The default provider and model of a bot version whose config names none: `parley_chat_send`
  restates `BotConfig`'s defaults in a `coalesce`.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from typing import Any

import asyncpg
import httpx

from parley.bots.schemas import BotConfig
from parley.kit import sqlnames
from parley.kit.db import TenantId, tenant_session
from parley.migrations.sqlsource import read_sql
from parley.webhooks import repository as webhooks_repo
from tests.conftest import register

EVENTS = ["message.created", "usage.threshold", "conversation.started"]


def _listeners(rng: random.Random) -> tuple[list[tuple[bool, list[str]]], list[tuple[bool, str]]]:
    endpoints = [
        (rng.random() < 0.5, rng.sample(EVENTS, rng.randint(0, len(EVENTS))))
        for _ in range(rng.randint(0, 3))
    ]
    rules = [(rng.random() < 0.5, rng.choice(EVENTS)) for _ in range(rng.randint(0, 3))]
    return endpoints, rules


async def _configure(
    admin: asyncpg.Connection,
    tenant: uuid.UUID,
    endpoints: list[tuple[bool, list[str]]],
    rules: list[tuple[bool, str]],
) -> None:
    """As the owner (a superuser here): the rows a workspace's settings would hold."""
    await admin.execute("DELETE FROM webhook_endpoints WHERE tenant_id = $1", tenant)
    await admin.execute("DELETE FROM automation_rules WHERE tenant_id = $1", tenant)
    for enabled, events in endpoints:
        await admin.execute(
            "INSERT INTO webhook_endpoints (tenant_id, id, url, events, enabled, secret_encrypted)"
            " VALUES ($1, gen_random_uuid(), 'https://93.184.215.14/twin', $2, $3, 'x')",
            tenant,
            events,
            enabled,
        )
    for enabled, event in rules:
        await admin.execute(
            "INSERT INTO automation_rules (tenant_id, id, name, event, condition, action, enabled)"
            " VALUES ($1, gen_random_uuid(), 'twin', $2, $3::jsonb, $4::jsonb, $5)",
            tenant,
            event,
            json.dumps({"type": "always"}),
            json.dumps({"type": "call_webhook", "webhook_id": str(uuid.uuid4())}),
            enabled,
        )


async def _sql_enqueues(app_conn: asyncpg.Connection, tenant: uuid.UUID, event: str) -> bool:
    """Whether `parley_enqueue_event` queues the emit job (rolled back: nothing is left)."""
    tx = app_conn.transaction()
    await tx.start()
    try:
        await app_conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
        count = (
            "SELECT count(*) FROM pgqueuer WHERE entrypoint = $1 "
            "AND convert_from(payload, 'UTF8')::jsonb ->> 'tenant_id' = $2"
        )
        before = await app_conn.fetchval(count, sqlnames.EMIT_MESSAGE_JOB, str(tenant))
        await app_conn.execute(
            "SELECT parley_enqueue_event($1, $2, gen_random_uuid(), false)", tenant, event
        )
        after = await app_conn.fetchval(count, sqlnames.EMIT_MESSAGE_JOB, str(tenant))
    finally:
        await tx.rollback()
    return bool(after - before)


async def test_sql_and_python_agree_on_who_listens_to_an_event(
    app: Any,
    client: httpx.AsyncClient,
    admin_conn: asyncpg.Connection,
    app_conn: asyncpg.Connection,
) -> None:
    tenant = uuid.UUID((await register(client, "twin")).tenant_id)
    rng = random.Random(16)  # generated, reproducible configurations
    seen: set[tuple[str, bool]] = set()
    for _ in range(40):
        endpoints, rules = _listeners(rng)
        await _configure(admin_conn, tenant, endpoints, rules)
        for event in EVENTS:
            async with tenant_session(app.state.runtime.db, TenantId(tenant)) as session:
                endpoint_ids, found_rules = await webhooks_repo.targets(
                    session, TenantId(tenant), event
                )
            python = bool(endpoint_ids or found_rules)
            expected = any(on and event in evs for on, evs in endpoints) or any(
                on and ev == event for on, ev in rules
            )
            assert python == expected, (endpoints, rules, event)
            assert await _sql_enqueues(app_conn, tenant, event) == python, (endpoints, rules, event)
            seen.add((event, python))
    assert len(seen) == 2 * len(EVENTS)  # every event both listened to and not


def test_the_default_provider_sql_restates_is_bot_configs() -> None:
    send = read_sql("functions/parley_chat_send.sql")
    restated = dict(re.findall(r"coalesce\(v_version\.config->>'(\w+)', '([^']*)'\)", send))
    fields = BotConfig.model_fields
    assert restated == {"provider": fields["provider"].default, "model": fields["model"].default}
