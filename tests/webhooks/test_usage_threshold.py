"""`usage.threshold` over real HTTP: a workspace on a plan with tiny limits that listens to the
event (a subscribed endpoint, or a rule) gets one signed delivery per metric, month and level
(80 %, 100 %) as it chats through the widget, and nothing more after; a check that runs twice,
or twice at once, adds nothing; a workspace that does not listen gets no check queued at all.

The limits live in the worker's settings (`PARLEY_PLANS`), the plan on the tenant (set through
the platform admin API); the checks run in the real job worker."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from standardwebhooks import Webhook

from parley.kit.jobs import JobContext
from parley.usage.service import CHECK_JOB
from parley.usage.tasks import check_thresholds
from tests.conftest import (
    ALLOWED_ORIGIN,
    Account,
    assert_problem,
    create_widget,
    register,
    widget_session,
)
from tests.webhooks.conftest import WorkerFactory, wait_for
from tests.webhooks.helpers import call_webhook_rule, deliveries, make_hook
from tests.webhooks.receiver import Receiver

EVENT = "usage.threshold"
TINY = {"usage-tiny": {"monthly_conversations": 5, "monthly_tokens": None}}


def _period() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


async def _set_plan(
    client: httpx.AsyncClient, admin_conn: asyncpg.Connection, owner: Account, plan: str
) -> None:
    admin = await register(client, "usage-admin")
    await admin_conn.execute(
        "UPDATE users SET is_platform_admin = true WHERE email = $1", admin.email
    )
    resp = await client.patch(
        f"/v1/admin/tenants/{owner.tenant_id}/plan", json={"plan": plan}, headers=admin.headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["plan"] == plan


async def _checks_pending(admin_conn: asyncpg.Connection, owner: Account) -> int:
    """Check jobs of this workspace queued, running or held as failed."""
    count = await admin_conn.fetchval(
        "SELECT count(*) FROM pgqueuer WHERE entrypoint = $1 AND dedupe_key = $2",
        CHECK_JOB,
        f"{CHECK_JOB}:{owner.tenant_id}",
    )
    return int(count)


async def _checked(admin_conn: asyncpg.Connection, owner: Account) -> None:
    """One check was queued for what just happened; wait until the worker has run it."""
    assert await _checks_pending(admin_conn, owner) == 1

    async def done() -> bool:
        return await _checks_pending(admin_conn, owner) == 0

    await wait_for(done)


async def _delivered(client: httpx.AsyncClient, owner: Account, hook_id: str, n: int) -> bool:
    return len(await deliveries(client, owner, hook_id, "delivered")) >= n


async def _chat(
    client: httpx.AsyncClient, headers: dict[str, str], text: str, *, queued: bool = False
) -> None:
    extra = {"Prefer": "respond-async"} if queued else {}
    sent = await client.post(
        "/v1/widget/messages", json={"content": text}, headers={**headers, **extra}
    )
    assert sent.status_code == (202 if queued else 201), sent.text


async def _emitted(admin_conn: asyncpg.Connection, owner: Account) -> int:
    count = await admin_conn.fetchval(
        "SELECT count(*) FROM emitted_events WHERE tenant_id = $1 AND event = $2",
        uuid.UUID(owner.tenant_id),
        EVENT,
    )
    return int(count)


async def test_conversations_reaching_80_and_100_percent_are_announced_once_each_signed(
    wh_client: httpx.AsyncClient,
    receiver: Receiver,
    worker: WorkerFactory,
    admin_conn: asyncpg.Connection,
) -> None:
    owner = await register(wh_client, "usage-conv")
    await _set_plan(wh_client, admin_conn, owner, "usage-tiny")
    hook = await make_hook(wh_client, owner, receiver.url("/usage"), [EVENT])
    w = await create_widget(wh_client, owner)

    async with worker(parley_plans=TINY):
        # 3 of 5 (60 %): checked, nothing to say. Three conversations and a chat in one of
        # them queue one check, not five.
        sessions = [await widget_session(wh_client, w.widget_key) for _ in range(3)]
        await _chat(wh_client, sessions[0].headers, "Hello")
        await _checked(admin_conn, owner)
        assert await deliveries(wh_client, owner, hook["id"]) == []

        # 4 of 5: 80 %.
        fourth = await widget_session(wh_client, w.widget_key)
        await _checked(admin_conn, owner)
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 1))
        await _chat(wh_client, fourth.headers, "Still there?")  # no new conversation
        await _checked(admin_conn, owner)

        # 5 of 5: 100 %.
        await widget_session(wh_client, w.widget_key)
        await _checked(admin_conn, owner)
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 2))

        # Over the limit: a new conversation is refused (402, migration 0025); a message in
        # an existing one is checked again, both levels of this month already announced.
        over = await wh_client.post(
            "/v1/widget/session",
            json={"widget_key": w.widget_key},
            headers={"Origin": ALLOWED_ORIGIN},
        )
        assert_problem(over, 402, "quota_exceeded")
        await _chat(wh_client, fourth.headers, "One more")
        await _checked(admin_conn, owner)

    got = receiver.at("/usage")
    assert len(got) == 2
    bodies = [Webhook(hook["secret"]).verify(r.body, r.headers) for r in got]
    assert [b["type"] for b in bodies] == [EVENT, EVENT]
    assert all(b["timestamp"] for b in bodies)
    assert [b["data"] for b in bodies] == [
        {
            "metric": "monthly_conversations",
            "period": _period(),
            "threshold_percent": 80,
            "used": 4,
            "limit": 5,
            "plan": "usage-tiny",
        },
        {
            "metric": "monthly_conversations",
            "period": _period(),
            "threshold_percent": 100,
            "used": 5,
            "limit": 5,
            "plan": "usage-tiny",
        },
    ]
    listed = await deliveries(wh_client, owner, hook["id"])
    assert len(listed) == 2
    assert {d["event_type"] for d in listed} == {EVENT}
    assert {d["id"] for d in listed} == {r.headers["webhook-id"] for r in got}
    assert await _emitted(admin_conn, owner) == 2


async def test_tokens_announced_through_a_rule_on_the_event(
    wh_client: httpx.AsyncClient,
    receiver: Receiver,
    worker: WorkerFactory,
    admin_conn: asyncpg.Connection,
) -> None:
    """The workspace listens only through an automation rule (`always` → `call_webhook` to an
    endpoint subscribed to something else): that is enough to queue checks, and the rule sees
    the event. Tokens count the month's turns, prompt and completion."""
    owner = await register(wh_client, "usage-tokens")
    await _set_plan(wh_client, admin_conn, owner, "usage-tokens")
    other = await make_hook(wh_client, owner, receiver.url("/rule"), ["handoff.requested"])
    await call_webhook_rule(wh_client, owner, "usage to ops", EVENT, other["id"])
    w = await create_widget(wh_client, owner)  # extractive bot: it reports approximate tokens
    s = await widget_session(wh_client, w.widget_key)
    await _chat(wh_client, s.headers, "What are your opening hours?")
    assert await _checks_pending(admin_conn, owner) == 1
    tid = uuid.UUID(owner.tenant_id)

    async def tokens() -> int:
        used = await admin_conn.fetchval(
            "SELECT coalesce(sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)), 0)"
            " FROM llm_turns WHERE tenant_id = $1",
            tid,
        )
        return int(used)

    first = await tokens()
    assert first > 0
    limit = math.ceil(first * 100 / 85)  # the first turn is 85 %: past 80, short of 100
    plans = {"usage-tokens": {"monthly_conversations": None, "monthly_tokens": limit}}
    async with worker(parley_plans=plans):
        await _checked(admin_conn, owner)
        await wait_for(lambda: _delivered(wh_client, owner, other["id"], 1))
        await _chat(wh_client, s.headers, "And on Sundays?")
        second = await tokens()
        assert second * 100 >= limit * 100
        await _checked(admin_conn, owner)
        await wait_for(lambda: _delivered(wh_client, owner, other["id"], 2))
        # Over the month's tokens: the next message is refused before any work (0025).
        refused = await wh_client.post(
            "/v1/widget/messages", json={"content": "Thanks"}, headers=s.headers
        )
        assert_problem(refused, 402, "quota_exceeded")

    got = receiver.at("/rule")
    assert len(got) == 2
    data = [Webhook(other["secret"]).verify(r.body, r.headers)["data"] for r in got]
    common = {
        "metric": "monthly_tokens",
        "period": _period(),
        "limit": limit,
        "plan": "usage-tokens",
    }
    assert data == [
        {**common, "threshold_percent": 80, "used": first},
        {**common, "threshold_percent": 100, "used": second},
    ]
    assert await _emitted(admin_conn, owner) == 2


async def test_a_workspace_that_does_not_listen_gets_no_check_queued(
    wh_client: httpx.AsyncClient, receiver: Receiver, admin_conn: asyncpg.Connection
) -> None:
    """Subscribed to message.created only; a disabled endpoint and a disabled rule on
    `usage.threshold` do not count as listening."""
    owner = await register(wh_client, "usage-deaf")
    await _set_plan(wh_client, admin_conn, owner, "usage-tiny")
    await make_hook(wh_client, owner, receiver.url("/messages"), ["message.created"])
    disabled = await make_hook(wh_client, owner, receiver.url("/off"), [EVENT])
    off = await wh_client.patch(
        f"/v1/tenants/{owner.tenant_id}/webhooks/{disabled['id']}",
        json={"enabled": False},
        headers=owner.headers,
    )
    assert off.status_code == 200, off.text
    rule = await call_webhook_rule(wh_client, owner, "off", EVENT, disabled["id"])
    rule_off = await wh_client.patch(
        f"/v1/tenants/{owner.tenant_id}/automations/{rule['id']}",
        json={"enabled": False},
        headers=owner.headers,
    )
    assert rule_off.status_code == 200, rule_off.text

    w = await create_widget(wh_client, owner)
    for _ in range(6):  # past the limit, conversations and messages
        s = await widget_session(wh_client, w.widget_key)
        await _chat(wh_client, s.headers, "Hello")
        await _chat(wh_client, s.headers, "Queued", queued=True)

    assert await _checks_pending(admin_conn, owner) == 0
    # The send path did hand its events over (message.created has a listener).
    emit_jobs = await admin_conn.fetchval(
        "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'webhooks.emit_message' "
        "AND convert_from(payload, 'UTF8')::jsonb ->> 'tenant_id' = $1",
        owner.tenant_id,
    )
    assert emit_jobs >= 12
    await admin_conn.execute(
        "DELETE FROM pgqueuer WHERE convert_from(payload, 'UTF8')::jsonb ->> 'tenant_id' = $1",
        owner.tenant_id,
    )  # later modules' workers need not spend time on them


async def test_a_check_run_twice_or_twice_at_once_announces_nothing_more(
    wh_client: httpx.AsyncClient,
    receiver: Receiver,
    worker: WorkerFactory,
    admin_conn: asyncpg.Connection,
) -> None:
    owner = await register(wh_client, "usage-rerun")
    await _set_plan(wh_client, admin_conn, owner, "usage-tiny")
    w = await create_widget(wh_client, owner)
    for _ in range(5):  # 100 % before anyone listens: no check queued
        await widget_session(wh_client, w.widget_key)
    assert await _checks_pending(admin_conn, owner) == 0
    hook = await make_hook(wh_client, owner, receiver.url("/rerun"), [EVENT])

    async with worker(parley_plans=TINY) as runtime:

        def ctx(attempt: int) -> JobContext:
            return JobContext(
                db=runtime.db,
                job_id=0,
                entrypoint=CHECK_JOB,
                attempt=attempt,
                payload={"tenant_id": owner.tenant_id},
                runtime_=runtime,
            )

        # Two checks at once (80 % and 100 % reached together): the markers decide.
        await asyncio.gather(check_thresholds(ctx(0)), check_thresholds(ctx(0)))
        await check_thresholds(ctx(1))  # a re-run after a crash before its acknowledgement
        await check_thresholds(ctx(2))
        await wait_for(lambda: _delivered(wh_client, owner, hook["id"], 2))

    listed = await deliveries(wh_client, owner, hook["id"])
    assert len(listed) == 2
    levels: list[Any] = sorted(d["payload"]["data"]["threshold_percent"] for d in listed)
    assert levels == [80, 100]
    assert {d["payload"]["data"]["used"] for d in listed} == {5}
    assert len(receiver.at("/rerun")) == 2
    assert await _emitted(admin_conn, owner) == 2
