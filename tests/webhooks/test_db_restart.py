"""The database restarts between a webhook's POST and the record of its outcome (issue 20,
R1): the worker keeps the outcome and writes it once the server is back, within the claim's
lease, so the receiver gets the delivery once and the log shows one successful attempt — not
a second POST with the same `webhook-id` after the lease lapses."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import register
from tests.health.test_database_restart import _pg_ctl
from tests.webhooks.conftest import WorkerFactory, wait_for
from tests.webhooks.helpers import deliveries, make_hook, start_conversations
from tests.webhooks.receiver import Received, Receiver

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")), reason="restarts the embedded server"
)


async def test_an_outcome_is_recorded_after_a_restart_not_sent_again(
    wh_client: httpx.AsyncClient, receiver: Receiver, worker: WorkerFactory, data_dir: Path
) -> None:
    owner = await register(wh_client, "wh-pg-restart")
    hook = await make_hook(wh_client, owner, receiver.url("/restart"), ["conversation.started"])
    restarted = threading.Event()

    def stop_then_restart(r: Received) -> None:
        # The POST arrived: stop the server before answering it, bring it back 2 s later.
        if restarted.is_set():
            return
        restarted.set()
        _pg_ctl(data_dir, "stop", "-m", "fast")

        def later() -> None:
            time.sleep(2.0)
            _pg_ctl(data_dir, "restart")

        threading.Thread(target=later, daemon=True).start()

    receiver.before_answer = stop_then_restart
    await start_conversations(wh_client, owner)

    async def delivered() -> bool:
        try:
            return len(await deliveries(wh_client, owner, hook["id"], "delivered")) == 1
        except AssertionError:  # 503 while the server is away
            return False

    # The lease (timeout 15 s → 30 s) outlasts the restart, whose shutdown checkpoint takes
    # longer once the suite has filled the database; a resend would follow the lease's end.
    async with worker(parley_webhook_timeout_seconds=15.0):
        await wait_for(delivered, timeout=90)
    assert restarted.is_set()
    got = receiver.at("/restart")
    assert len(got) == 1, [r.headers["webhook-id"] for r in got]
    [item] = await deliveries(wh_client, owner, hook["id"], "delivered")
    assert item["attempt_count"] == 1
    attempts = await wh_client.get(
        f"/v1/tenants/{owner.tenant_id}/webhooks/{hook['id']}/deliveries/{item['id']}",
        headers=owner.headers,
    )
    assert attempts.status_code == 200, attempts.text
    logged = attempts.json()["attempts"]
    assert [a["succeeded"] for a in logged] == [True]
