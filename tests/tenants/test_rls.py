"""Row-level security underneath the application: for every tenant table, no context → 0 rows,
another tenant's context → 0 rows; the app role cannot bypass; pooled transactions never carry
a stale tenant context."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from parley.kit.db import TenantId, create_database, platform_session, tenant_session
from parley.kit.tenant_tables import PRIVATE_TABLES, tenant_tables_raw
from parley.models import TENANT_TABLES, VECTOR_TABLE
from tests.conftest import (
    DatabaseUnderTest,
    add_member,
    create_api_key,
    create_widget,
    ingest_now,
    register,
    widget_session,
)
from tests.webhooks.factories import seed_webhook_rows


async def _populate(client: httpx.AsyncClient, app: Any) -> tuple[str, str]:
    """Two tenants with rows in every tenant table."""
    ids = []
    for tag in ("rls-a", "rls-b"):
        owner = await register(client, tag)
        await add_member(client, owner, "viewer")
        await client.post(
            f"/v1/tenants/{owner.tenant_id}/invitations",
            json={"email": f"{tag}@example.com", "role": "editor"},
            headers=owner.headers,
        )
        await create_api_key(client, owner, ["chat"])
        await client.put(
            f"/v1/tenants/{owner.tenant_id}/providers/openai",
            json={"api_key": "sk-rls-test-key-000"},
            headers=owner.headers,
        )
        source = await client.post(
            f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
            json={"type": "text", "title": "Hours", "text": "We open at nine on weekdays."},
            headers=owner.headers,
        )
        await ingest_now(app, owner.tenant_id, source.json()["job"]["id"])
        w = await create_widget(client, owner, voice=True)
        # A per-visitor budget on the widget channel (so the message below is counted in
        # visitor_usage) and an overage (migration 0025).
        budget = await client.put(
            f"/v1/tenants/{owner.tenant_id}/channels/{w.channel_id}/visitor-budget",
            json={"messages_per_day": 50},
            headers=owner.headers,
        )
        assert budget.status_code == 200, budget.text
        await _grant_overage(app, owner)
        session = await widget_session(client, w.widget_key)
        from tests.voice.helpers import spoken_wav  # a voice turn: a voice_turns row

        spoke = await client.post(
            "/v1/widget/voice",
            content=spoken_wav("thank you for your help"),
            headers={**session.headers, "Content-Type": "audio/wav"},
        )
        assert spoke.status_code == 201, spoke.text
        sent = await client.post(
            "/v1/widget/messages",
            json={"content": "hello"},
            headers={**session.headers, "Idempotency-Key": "rls"},
        )
        await client.post(
            f"/v1/widget/messages/{sent.json()['reply']['id']}/feedback",
            json={"rating": "up"},
            headers=session.headers,
        )
        # The inbox: a timeline row (taking the conversation) and a note.
        staff = f"/v1/tenants/{owner.tenant_id}/conversations/{session.conversation_id}"
        assert (await client.post(f"{staff}/assign", headers=owner.headers)).status_code == 200
        note = await client.post(f"{staff}/notes", json={"body": "rls"}, headers=owner.headers)
        assert note.status_code == 201, note.text
        # A tag (its conversation_tags row).
        tagged = await client.put(f"{staff}/tags/rls", headers=owner.headers)
        assert tagged.status_code == 200, tagged.text
        # A workspace export requested through the API: a workspace_exports row.
        export = await client.post(f"/v1/tenants/{owner.tenant_id}/exports", headers=owner.headers)
        assert export.status_code == 202, export.text
        await seed_webhook_rows(app.state.runtime.db, owner.tenant_id)
        # A webhook channel with one stored inbound event.
        from tests.channels.helpers import message_body, signed_headers

        ch = await client.post(
            f"/v1/tenants/{owner.tenant_id}/channels",
            json={
                "type": "webhook",
                "bot_id": w.bot_id,
                "config": {"callback_url": "https://hooks.example.com/in"},
            },
            headers=owner.headers,
        )
        body = message_body("rls-user", "hello")
        delivered = await client.post(
            ch.json()["inbound_path"],
            content=body,
            headers=signed_headers(ch.json()["webhook_secret"], body),
        )
        assert delivered.status_code == 200, delivered.text
        # Analytics: the day's roll-ups (the dirty marks of later writes stay).
        from tests.analytics.test_rollups import roll_up_all

        await roll_up_all(app, owner.tenant_id)
        await client.post(
            f"/v1/widget/messages/{sent.json()['reply']['id']}/feedback",
            json={"rating": "down"},
            headers=session.headers,
        )
        # A knowledge gap (the disliked reply's question), answered into an FAQ source.
        faq = await client.post(
            f"/v1/tenants/{owner.tenant_id}/knowledge/sources",
            json={"type": "faq", "title": "FAQ", "pairs": [{"question": "q", "answer": "a"}]},
            headers=owner.headers,
        )
        gaps = await client.get(
            f"/v1/tenants/{owner.tenant_id}/analytics/gaps",
            params={"bot_id": w.bot_id},
            headers=owner.headers,
        )
        answered = await client.post(
            f"/v1/tenants/{owner.tenant_id}/analytics/gaps/{gaps.json()['gaps'][0]['id']}/answer",
            json={"bot_id": w.bot_id, "source_id": faq.json()["id"], "answer": "Hello to you."},
            headers=owner.headers,
        )
        assert answered.status_code == 201, answered.text
        golden = await client.post(
            f"/v1/tenants/{owner.tenant_id}/bots/{w.bot_id}/golden-questions",
            json={"question": "Hello?", "expected_answer": "Hello"},
            headers=owner.headers,
        )
        assert golden.status_code == 201, golden.text
        ids.append(owner.tenant_id)
    return ids[0], ids[1]


async def _grant_overage(app: Any, owner: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from parley.kit.db import TenantId, tenant_session
    from parley.usage import controls
    from parley.usage.schemas import OverageGrant

    tid = TenantId(uuid.UUID(owner.tenant_id))
    async with tenant_session(app.state.runtime.db, tid) as s:
        await controls.grant_overage(
            s,
            tid,
            OverageGrant(
                metric="bots",
                extra=1,
                expires_at=datetime.now(UTC) + timedelta(days=1),
                reason="rls",
            ),
            admin_id=uuid.UUID(owner.user_id),
            actor="test",
        )


APPEND_ONLY = {"audit_log"}


def test_the_tenant_table_list_is_complete() -> None:
    assert set(TENANT_TABLES) >= {"memberships", "invitations", "api_keys"}


async def test_every_tenant_table_has_forced_rls(
    admin_conn: asyncpg.Connection, test_db: DatabaseUnderTest
) -> None:
    rows = await admin_conn.fetch(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
    )
    by_name = {r["relname"]: (r["relrowsecurity"], r["relforcerowsecurity"]) for r in rows}
    for table in TENANT_TABLES:
        assert by_name[table] == (True, True), table
    # The vector table exists only where pgvector does; where it does, RLS is forced on it
    # (a partitioned table) and on each of its shards, which the app role cannot reach.
    vector_tables = set(await _vector_partitions(admin_conn))
    parent = await admin_conn.fetchrow(
        "SELECT relkind, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relname = $1 AND relnamespace = 'public'::regnamespace",
        VECTOR_TABLE,
    )
    if parent is not None:
        assert tuple(parent) == (b"p", True, True)
        assert len(vector_tables) == 16
        for part in vector_tables:
            assert by_name[part] == (True, True), part
        vector_tables.add(VECTOR_TABLE)
    # Conversely: the catalogue's list (the one the workspace deletion, export and their
    # verification use) is exactly the parametrised list below, so neither can forget a table.
    catalogue = set(await tenant_tables_raw(admin_conn))
    # The one exception: the staff search's private copy (migration 0019, decision 0022) has
    # no policy, and the app role has no privilege on it at all (reached only through
    # `parley_inbox_search`, bound to the transaction's workspace; counted for the deletion's
    # verification by `parley_private_row_count`).
    private = PRIVATE_TABLES
    for table in catalogue - private:
        assert by_name[table] == (True, True), table
    assert catalogue - {VECTOR_TABLE} - private == set(TENANT_TABLES)
    for table in private:
        assert not await admin_conn.fetchval(
            "SELECT has_table_privilege($1, $2, 'SELECT, INSERT, UPDATE, DELETE')",
            test_db.app_role,
            table,
        )


async def _vector_partitions(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass($1)",
        VECTOR_TABLE,
    )
    return [r["relname"] for r in rows]


async def test_the_app_role_cannot_reach_a_vector_shard_directly(
    admin_conn: asyncpg.Connection, app_conn: asyncpg.Connection
) -> None:
    """Only the partitioned table is granted: a shard read directly would skip nothing (its
    own policy still applies), but the app has no business there."""
    parts = await _vector_partitions(admin_conn)
    if not parts:
        if not os.environ.get("TEST_DATABASE_URL"):
            pytest.fail("the embedded PostgreSQL must have pgvector, so kb_vectors")
        pytest.skip("this external PostgreSQL has no pgvector: kb_vectors does not exist")
    for part in parts:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_conn.fetchval(f"SELECT count(*) FROM {part}")


async def test_app_role_cannot_bypass(
    app_conn: asyncpg.Connection, test_db: DatabaseUnderTest
) -> None:
    row = await app_conn.fetchrow(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
        "WHERE rolname = current_user"
    )
    assert tuple(row) == (False, False, False, False)
    owner = await app_conn.fetchval(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'memberships'"
    )
    assert owner != test_db.app_role
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_conn.execute("ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with app_conn.transaction():
            await app_conn.execute("SET LOCAL row_security = off")
            await app_conn.fetchval("SELECT count(*) FROM memberships")


# The two populated workspaces, made once per database for every table's check below: the
# checks only read them (their writes are refused or roll back), and populating every table
# takes about two seconds, once per table before.
_POPULATED: dict[str, tuple[str, str]] = {}


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_rls_hides_rows(
    table: str,
    app: Any,
    client: httpx.AsyncClient,
    app_conn: asyncpg.Connection,
    admin_conn: asyncpg.Connection,
    test_db: DatabaseUnderTest,
) -> None:
    if test_db.name not in _POPULATED:
        _POPULATED[test_db.name] = await _populate(client, app)
    a, b = _POPULATED[test_db.name]
    real_a = await admin_conn.fetchval(
        f"SELECT count(*) FROM {table} WHERE tenant_id = $1", uuid.UUID(a)
    )
    assert real_a > 0, "the fixture must have put rows in this table"

    # No context at all: nothing.
    assert await app_conn.fetchval(f"SELECT count(*) FROM {table}") == 0
    async with app_conn.transaction():
        await app_conn.execute("SELECT set_config('app.tenant_id', $1, true)", b)
        # B's context: none of A's rows, even when asked for by id.
        assert (
            await app_conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE tenant_id = $1", uuid.UUID(a)
            )
            == 0
        )
        assert await app_conn.fetchval(f"SELECT count(*) FROM {table}") > 0
    async with app_conn.transaction():
        await app_conn.execute("SELECT set_config('app.tenant_id', $1, true)", a)
        assert (
            await app_conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE tenant_id = $1", uuid.UUID(a)
            )
            == real_a
        )
    # Writes into another tenant are refused by WITH CHECK, and updates cannot reach it.
    if table in APPEND_ONLY:
        for statement in (f"UPDATE {table} SET tenant_id = tenant_id", f"DELETE FROM {table}"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app_conn.execute(statement)
    else:
        async with app_conn.transaction():
            await app_conn.execute("SELECT set_config('app.tenant_id', $1, true)", b)
            moved = await app_conn.execute(
                f"UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = $1", uuid.UUID(a)
            )
            assert moved == "UPDATE 0"
            deleted = await app_conn.execute(
                f"DELETE FROM {table} WHERE tenant_id = $1", uuid.UUID(a)
            )
            assert deleted == "DELETE 0"
    assert (
        await admin_conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1", uuid.UUID(a)
        )
        == real_a
    )


async def test_insert_with_another_tenants_id_is_refused(
    client: httpx.AsyncClient, app_conn: asyncpg.Connection, app: Any
) -> None:
    a, b = await _populate(client, app)
    owner_of_a = await app_conn.fetchval("SELECT id FROM users LIMIT 1")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with app_conn.transaction():
            await app_conn.execute("SELECT set_config('app.tenant_id', $1, true)", b)
            await app_conn.execute(
                "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')",
                uuid.UUID(a),
                owner_of_a,
            )


async def test_member_self_policy_reads_only_own_rows(
    client: httpx.AsyncClient, app_conn: asyncpg.Connection, app: Any
) -> None:
    await _populate(client, app)
    someone = await app_conn.fetchval("SELECT id FROM users ORDER BY id LIMIT 1")
    async with app_conn.transaction():
        await app_conn.execute("SELECT set_config('app.user_id', $1, true)", str(someone))
        rows = await app_conn.fetch("SELECT user_id FROM memberships")
        assert {r["user_id"] for r in rows} <= {someone}
        # The self policy is read-only: no update or delete through it.
        assert await app_conn.execute("DELETE FROM memberships") == "DELETE 0"


async def test_pooled_transactions_never_start_with_a_stale_tenant(
    test_db: DatabaseUnderTest,
) -> None:
    """10,000 pooled transactions across 50 tenants: 0 start with a leftover app.tenant_id."""
    db = create_database(test_db.app_url, pool_size=5, max_overflow=0)
    tenants = [TenantId(uuid.uuid4()) for _ in range(50)]
    stale = 0
    wrong = 0
    rng = random.Random(7)

    async def worker(n: int) -> None:
        nonlocal stale, wrong
        for _ in range(n):
            check = text("SELECT current_setting('app.tenant_id', true)")
            if rng.random() < 0.3:
                async with platform_session(db) as s:
                    value: Any = await s.scalar(check)
                    if value:
                        stale += 1
            else:
                tid = rng.choice(tenants)
                async with tenant_session(db, tid) as s:
                    value = await s.scalar(check)
                    if value != str(tid):
                        wrong += 1
            # A raw session whose transaction sets nothing must also see nothing.

    try:
        await asyncio.gather(*(worker(1000) for _ in range(10)))
        # The test looks under the door on purpose: a bare pooled session.
        async with db.sessions() as s:
            value = await s.scalar(text("SELECT current_setting('app.tenant_id', true)"))
            assert not value
    finally:
        await db.dispose()
    assert (stale, wrong) == (0, 0)
