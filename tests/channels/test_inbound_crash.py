"""SPEC §4.10 for channels: a real worker process SIGKILLed at random points while it works
through a stream of inbound events, restarted each time; afterwards every event is done with
exactly one user message, one reply and one turn, and the receiver has every reply (a repeat is
possible only in the window between the receiver's answer and the `sent` mark, and carries the
same webhook-id, so the receiver can drop it)."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.channels.helpers import (
    event_counts,
    make_channel,
    message_body,
    messages_by_role,
    signed_headers,
    verify_delivery,
    wait_for,
)
from tests.conftest import DatabaseUnderTest, register
from tests.fakes.webhook_receiver import WebhookReceiver

EVENTS = 150
KILLS = 6


@pytest.fixture
def crash_receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()


def _start_worker(test_db: DatabaseUnderTest, data_dir: Path) -> subprocess.Popen[bytes]:
    overrides = {"parley_outbound_allow_private": True, "parley_rate_limits": "off"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.channels.inbound_worker",
            test_db.app_url,
            str(data_dir),
            json.dumps(overrides),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_sigkilled_workers_lose_and_duplicate_nothing(
    client: httpx.AsyncClient,
    admin_conn: asyncpg.Connection,
    test_db: DatabaseUnderTest,
    data_dir: Path,
    crash_receiver: WebhookReceiver,
) -> None:
    rng = random.Random(7)  # reproducible
    owner = await register(client, "crash")
    ch = await make_channel(client, owner, "webhook", {"callback_url": crash_receiver.url("crash")})
    users = [f"user-{i}" for i in range(8)]

    async def feed() -> None:
        for i in range(EVENTS):
            body = message_body(users[i % len(users)], f"message {i}")
            headers = signed_headers(ch.secret, body, msg_id=f"evt_{i}")
            resp = await client.post(ch.inbound_path, content=body, headers=headers)
            assert resp.json()["status"] == "accepted"
            if rng.random() < 0.3:  # and a redelivery now and then
                again = await client.post(ch.inbound_path, content=body, headers=headers)
                assert again.json()["status"] == "duplicate"
            await asyncio.sleep(rng.uniform(0.0, 0.05))

    async def done_count() -> int:
        return (await event_counts(admin_conn, ch.channel_id)).get("done", 0)

    proc = _start_worker(test_db, data_dir)
    kills = 0
    mid_event = 0  # kills that landed while an event was part-way through
    interrupted = 0  # events part-way through at the kills (a worker runs several at once)
    try:
        feeder = asyncio.create_task(feed())
        while kills < KILLS:
            # Let the new worker get going (it has finished something), then kill it at a
            # random moment.
            before = await done_count()

            async def progressed(before: int = before) -> bool:
                return await done_count() > before

            await wait_for(progressed, timeout=60, what="the worker making progress")
            await asyncio.sleep(rng.uniform(0.0, 0.4))
            in_flight = await admin_conn.fetchval(
                "SELECT count(*) FROM inbound_events WHERE channel_id = $1 "
                "AND status = 'processing'",
                uuid.UUID(ch.channel_id),
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
            mid_event += 1 if in_flight else 0
            interrupted += int(in_flight)
            proc = _start_worker(test_db, data_dir)
        await feeder

        async def all_done() -> bool:
            return (await event_counts(admin_conn, ch.channel_id)).get("done") == EVENTS

        await wait_for(all_done, timeout=120, what="every event done")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    assert mid_event >= 1, "no kill landed mid-event; the test proved nothing"
    assert await event_counts(admin_conn, ch.channel_id) == {"done": EVENTS}
    assert await messages_by_role(admin_conn, ch.channel_id) == {
        "user": EVENTS,
        "assistant": EVENTS,
    }
    turns = await admin_conn.fetch(
        "SELECT t.status, count(*) AS n FROM llm_turns t JOIN conversations c "
        "ON c.tenant_id = t.tenant_id AND c.id = t.conversation_id "
        "WHERE c.channel_id = $1 GROUP BY t.status",
        uuid.UUID(ch.channel_id),
    )
    assert {r["status"]: r["n"] for r in turns} == {"succeeded": EVENTS}
    # Each event's user message is its own text, once; each reply belongs to one event.
    rows = await admin_conn.fetch(
        "SELECT e.text, m.content, e.reply_message_id FROM inbound_events e "
        "JOIN messages m ON m.tenant_id = e.tenant_id AND m.id = e.user_message_id "
        "WHERE e.channel_id = $1",
        uuid.UUID(ch.channel_id),
    )
    assert all(r["text"] == r["content"] for r in rows)
    replies = {str(r["reply_message_id"]) for r in rows}
    assert len(replies) == EVENTS
    # Every reply reached the receiver, signed; repeats (same webhook-id) only from kills.
    deliveries = crash_receiver.for_path("crash")
    ids = Counter(d.headers["webhook-id"] for d in deliveries)
    assert set(ids) == {f"msg_{r}" for r in replies}
    repeats = sum(n - 1 for n in ids.values())
    # At most the sends in flight at the kills (sampled just before each, so one more each).
    assert repeats <= interrupted + kills
    assert all(verify_delivery(ch.secret, d.headers, d.body) for d in deliveries)
    by_id: dict[str, Any] = {}
    for d in deliveries:  # a repeat is the same message
        data = d.json()["data"]
        assert by_id.setdefault(d.headers["webhook-id"], data) == data
