"""SPEC §4.10 for outbound webhooks: worker processes SIGKILLed at random points mid-stream,
restarted, then the totals: 0 deliveries lost, each delivered exactly once as recorded, and
nothing ever sent again after it was recorded as delivered."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import DatabaseUnderTest, register
from tests.webhooks.conftest import CRASH, WorkerFactory, wait_for
from tests.webhooks.helpers import deliveries, make_hook, start_conversations
from tests.webhooks.receiver import Receiver

N = 40
KILLS = 5


@pytest.fixture
def slow_receiver() -> Iterator[Receiver]:
    r = Receiver(delay=0.1)  # a receiver that takes its time widens every window
    r.start()
    yield r
    r.stop()


async def test_killed_workers_lose_nothing_and_never_resend_a_delivered_delivery(
    wh_client: httpx.AsyncClient,
    slow_receiver: Receiver,
    worker: WorkerFactory,
    test_db: DatabaseUnderTest,
    data_dir: Path,
    admin_conn: asyncpg.Connection,
) -> None:
    owner = await register(wh_client, "wh-crash")
    hook = await make_hook(wh_client, owner, slow_receiver.url("/crash"), ["conversation.started"])
    await start_conversations(wh_client, owner, n=N)
    rng = random.Random()
    kills = 0
    for _ in range(KILLS):
        seen = len(slow_receiver.received)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.webhooks.delivery_worker",
                test_db.app_url,
                str(data_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # Kill only once it is sending, at a random point of the stream.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(slow_receiver.received) == seen and loop.time() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
    assert kills == KILLS
    # The kills landed mid-stream: work was left for the worker that finishes the job.
    assert len(await deliveries(wh_client, owner, hook["id"], "delivered")) < N

    async def all_delivered() -> bool:
        return len(await deliveries(wh_client, owner, hook["id"], "delivered")) == N

    async with worker(**{k: v for k, v in CRASH.items() if k.startswith("parley_webhook")}):
        await wait_for(all_delivered, timeout=120)

    rows = await admin_conn.fetch(
        "SELECT id::text, extract(epoch FROM delivered_at) AS delivered, "
        "(SELECT count(*) FROM webhook_attempts a WHERE a.delivery_id = d.id AND a.succeeded) "
        "AS successes FROM webhook_deliveries d WHERE endpoint_id = $1",
        uuid.UUID(hook["id"]),
    )
    assert len(rows) == N
    received = slow_receiver.at("/crash")
    by_id = Counter(r.headers["webhook-id"] for r in received)
    assert set(by_id) == {r["id"] for r in rows}  # 0 lost, nothing foreign
    for row in rows:
        assert row["successes"] == 1  # recorded as delivered exactly once
        last = max(r.at for r in received if r.headers["webhook-id"] == row["id"])
        # Nothing reached the receiver after the delivery was recorded as delivered.
        assert last <= float(row["delivered"]) + 0.05
    duplicates = sum(by_id.values()) - N
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "webhook-crash.txt").write_text(
        f"{N} deliveries, {KILLS} SIGKILLs mid-stream: 0 lost, {len(by_id)} delivered, "
        f"{duplicates} re-sends under the same webhook-id, 0 sends after delivered\n"
    )
