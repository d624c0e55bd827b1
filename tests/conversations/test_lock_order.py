"""Writers of one conversation never deadlock (decision 0038).

Found by the resilience harness (R1): two visitor sends in one conversation each held the
conversation FOR KEY SHARE (their message's foreign key) and asked for FOR UPDATE (the handoff
check), so PostgreSQL killed one with `40P01` and the visitor got a 500. Now every writer locks
the conversation first with FOR NO KEY UPDATE, which a foreign-key check never waits for."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from tests.conftest import create_widget, register, widget_session


async def test_the_handoff_check_does_not_wait_for_a_message_being_stored(
    client: httpx.AsyncClient, admin_conn: Any, app_conn: asyncpg.Connection
) -> None:
    """A message insert in flight (FOR KEY SHARE on its conversation) must not block the next
    message's handoff check in the same conversation: with FOR UPDATE it waited, and two such
    sends waited on each other."""
    owner = await register(client, "lockorder")
    w = await create_widget(client, owner)
    s = await widget_session(client, w.widget_key)
    conversation = uuid.UUID(s.conversation_id)
    tenant = uuid.UUID(owner.tenant_id)
    insert = app_conn.transaction()
    await insert.start()
    try:
        await app_conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
        await app_conn.execute(
            "INSERT INTO messages (tenant_id, id, conversation_id, role, content, citations) "
            "VALUES ($1, $2, $3, 'user', 'first', '[]'::jsonb)",
            tenant,
            uuid.uuid4(),
            conversation,
        )
        # Another connection runs the handoff check of the next message meanwhile.
        async with admin_conn.transaction():
            await admin_conn.execute("SET LOCAL lock_timeout = '3s'")
            handled = await admin_conn.fetchval(
                "SELECT parley_inbox_user_message($1, $2, 'second', '{}'::jsonb)",
                tenant,
                conversation,
            )
        assert handled == "bot"
    finally:
        await insert.rollback()


async def test_concurrent_sends_in_one_conversation_all_succeed(
    client: httpx.AsyncClient, admin_conn: Any
) -> None:
    owner = await register(client, "lockrace")
    w = await create_widget(client, owner)
    s = await widget_session(client, w.widget_key)
    sends = 12
    results = await asyncio.gather(
        *(
            client.post(
                "/v1/widget/messages",
                json={"content": f"question {i} about opening hours"},
                headers={**s.headers, "Idempotency-Key": f"lock-{i}"},
            )
            for i in range(sends)
        )
    )
    assert [r.status_code for r in results] == [201] * sends, [r.text for r in results]
    counts = dict(
        await admin_conn.fetch(
            "SELECT role, count(*) FROM messages WHERE conversation_id = $1 GROUP BY role",
            uuid.UUID(s.conversation_id),
        )
    )
    assert counts == {"user": sends, "assistant": sends}
