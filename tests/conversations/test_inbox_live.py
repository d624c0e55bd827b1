"""Handoff end to end over real HTTP, on every channel a person can answer: the widget (live
on its events stream and in history), Telegram (fake Bot API) and the webhook channel (signed
callbacks). A visitor asks for a person → the staff stream shows it → an agent takes it → the
bot stops answering → the agent's reply reaches the visitor → hand back → the bot answers."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.channels.helpers import (
    event_counts,
    make_channel,
    message_body,
    signed_headers,
    verify_delivery,
    wait_for,
)
from tests.conftest import (
    DatabaseUnderTest,
    LiveServer,
    add_member,
    make_settings,
    register,
    serve_app,
    widget_session,
)
from tests.conversations.helpers import inbox_workspace
from tests.conversations.live import open_stream
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.webhook_receiver import WebhookReceiver

HANDOFF = {"keywords": ["talk to a person"], "message": "A teammate will be right with you."}


@pytest.fixture(scope="module")
def inbox_server(
    data_dir: Path, test_db: DatabaseUnderTest, telegram_api: FakeTelegram
) -> Iterator[LiveServer]:
    settings = make_settings(
        data_dir,
        parley_outbound_allow_private=True,
        parley_telegram_api_base_url=telegram_api.base_url,
        parley_worker_in_process=True,
        parley_rate_limits="off",
    )
    with serve_app(settings, test_db.app_url) as server:
        yield server


@pytest.fixture
async def http(inbox_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=inbox_server.base_url, timeout=30) as c:
        yield c


async def test_widget_handoff_live(http: httpx.AsyncClient) -> None:
    box = await inbox_workspace(http, "live-widget", HANDOFF)
    staff = await open_stream(http, box.staff("/inbox/events"), box.agent.headers)
    s = await widget_session(http, box.widget.widget_key)
    conv = s.conversation_id
    widget = await open_stream(http, f"/v1/widget/conversations/{conv}/events", s.headers)
    try:
        # The agent's stream is open, so someone can take it: the bot's handoff message.
        asked = await http.post(
            "/v1/widget/messages",
            json={"content": "I'd like to talk to a person"},
            headers=s.headers,
        )
        assert asked.json()["handoff_status"] == "waiting"
        assert asked.json()["ask_email"] is False
        assert asked.json()["reply"]["content"] == HANDOFF["message"]
        await staff.wait(
            lambda e: e[0] == "message.created" and e[1]["conversation_id"] == conv,
            what="visitor message on the staff stream",
        )
        await staff.wait(
            lambda e: e[0] == "conversation.updated" and e[1]["handoff_status"] == "waiting",
            what="waiting on the staff stream",
        )

        taken = await http.post(box.conv(conv, "/assign"), headers=box.agent.headers)
        assert taken.json()["handoff_status"] == "assigned"
        await widget.wait(
            lambda e: e[0] == "conversation.status" and e[1]["handoff_status"] == "assigned",
            what="assigned on the widget stream",
        )
        # Typing, both ways.
        assert (await http.post("/v1/widget/typing", headers=s.headers)).status_code == 204
        await staff.wait(lambda e: e[0] == "typing" and e[1]["who"] == "visitor", what="typing")
        typing = await http.post(box.conv(conv, "/typing"), headers=box.agent.headers)
        assert typing.status_code == 204
        await widget.wait(lambda e: e[0] == "typing" and e[1]["who"] == "operator", what="typing")

        # The bot is silent while the agent holds the conversation.
        quiet = await http.post(
            "/v1/widget/messages", json={"content": "hello?"}, headers=s.headers
        )
        assert quiet.json()["reply"] is None
        reply = await http.post(
            box.conv(conv, "/messages"),
            json={"content": "Hello, this is Sam."},
            headers={**box.agent.headers, "Idempotency-Key": "sam-1"},
        )
        assert reply.status_code == 201, reply.text
        mid = reply.json()["message"]["id"]
        live = await widget.wait(
            lambda e: e[0] == "message.created" and e[1]["role"] == "operator",
            what="operator reply on the widget stream",
        )
        assert (live[1]["id"], live[1]["content"], live[2]) == (mid, "Hello, this is Sam.", mid)
        history = await http.get(f"/v1/widget/conversations/{conv}/messages", headers=s.headers)
        roles = [m["role"] for m in history.json()["items"]]
        assert roles == ["user", "assistant", "user", "operator"]

        back = await http.post(box.conv(conv, "/handback"), headers=box.agent.headers)
        assert back.json()["handoff_status"] == "bot"
        again = await http.post(
            "/v1/widget/messages", json={"content": "thanks!"}, headers=s.headers
        )
        assert again.json()["reply"]["role"] == "assistant"
        await staff.wait(
            lambda e: e[0] == "message.created" and e[1]["id"] == again.json()["reply"]["id"],
            what="the bot's reply on the staff stream",
        )
    finally:
        await staff.close()
        await widget.close()


async def test_telegram_handoff(
    http: httpx.AsyncClient, telegram_api: FakeTelegram, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(http, "live-tg")
    agent = await add_member(http, owner, "agent")
    token = f"{uuid.uuid4().int % 10**9}:AA{uuid.uuid4().hex}"
    ch = await make_channel(
        http, owner, "telegram", {"bot_token": token}, fallback_text="Bot here."
    )
    await http.patch(
        f"/v1/tenants/{owner.tenant_id}/bots/{ch.bot_id}",
        json={"handoff": HANDOFF},
        headers=owner.headers,
    )
    headers = {"X-Telegram-Bot-Api-Secret-Token": ch.secret}
    chat_id = 5150 + uuid.uuid4().int % 1000

    async def update(n: int, text: str) -> None:
        body = {
            "update_id": n,
            "message": {
                "message_id": n % 1000,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": chat_id, "is_bot": False, "first_name": "Ada"},
                "text": text,
            },
        }
        assert (await http.post(ch.inbound_path, json=body, headers=headers)).status_code == 200

        async def done() -> bool:
            return (await event_counts(admin_conn, ch.channel_id)).get("done", 0) >= n - 900000

        await wait_for(done, what=f"update {n} processed")

    def sent() -> list[str]:
        return [c.body["text"] for c in telegram_api.calls_of("sendMessage", token)]

    await update(900001, "please let me talk to a person")
    assert sent() == [
        "Nobody from our team is available right now. Leave your email and we will get back to you."
    ]
    found = await http.get(
        f"/v1/tenants/{owner.tenant_id}/conversations",
        params={"channel": "telegram", "status": "waiting"},
        headers=agent.headers,
    )
    (conv,) = found.json()["items"]
    base = f"/v1/tenants/{owner.tenant_id}/conversations/{conv['id']}"
    page = (await http.get(base, headers=agent.headers)).json()
    assert page["contact"]["external_id"] == str(chat_id)
    assert (await http.post(f"{base}/assign", headers=agent.headers)).status_code == 200
    await update(900002, "hello?")
    assert len(sent()) == 1  # the bot stays silent
    reply = await http.post(
        f"{base}/messages", json={"content": "Hi Ada, Sam here."}, headers=agent.headers
    )
    assert reply.status_code == 201

    async def delivered() -> bool:
        return sent()[-1] == "Hi Ada, Sam here."

    await wait_for(delivered, what="operator reply sent through sendMessage")
    assert telegram_api.calls_of("sendMessage", token)[-1].body["chat_id"] == chat_id
    await http.post(f"{base}/handback", headers=agent.headers)
    await update(900003, "thanks")
    assert sent()[-1] == "Bot here."
    assert len(sent()) == 3


async def test_webhook_channel_handoff(
    http: httpx.AsyncClient, callback_receiver: WebhookReceiver, admin_conn: asyncpg.Connection
) -> None:
    owner = await register(http, "live-wh")
    path = f"inbox-{uuid.uuid4().hex[:8]}"
    ch = await make_channel(
        http,
        owner,
        "webhook",
        {"callback_url": callback_receiver.url(path)},
        fallback_text="Bot here.",
    )
    await http.patch(
        f"/v1/tenants/{owner.tenant_id}/bots/{ch.bot_id}",
        json={"handoff": HANDOFF},
        headers=owner.headers,
    )

    async def send(text: str, n: int) -> None:
        body = message_body("customer-9", text)
        resp = await http.post(
            ch.inbound_path, content=body, headers=signed_headers(ch.secret, body)
        )
        assert resp.status_code == 200, resp.text

        async def done() -> bool:
            return (await event_counts(admin_conn, ch.channel_id)).get("done", 0) >= n

        await wait_for(done, what=f"message {n} processed")

    def texts() -> list[str]:
        return [d.json()["data"]["text"] for d in callback_receiver.for_path(path)]

    await send("I want to talk to a person", 1)
    await wait_for(_has(texts, 1), what="announcement")
    listed = await http.get(
        f"/v1/tenants/{owner.tenant_id}/conversations",
        params={"channel": "webhook"},
        headers=owner.headers,
    )
    (conv,) = listed.json()["items"]
    base = f"/v1/tenants/{owner.tenant_id}/conversations/{conv['id']}"
    await http.post(f"{base}/assign", headers=owner.headers)
    await send("anyone?", 2)
    reply = await http.post(
        f"{base}/messages", json={"content": "Yes, I am here."}, headers=owner.headers
    )
    await wait_for(_has(texts, 2), what="operator reply delivered")
    delivery = callback_receiver.for_path(path)[-1]
    assert verify_delivery(ch.secret, delivery.headers, delivery.body)
    assert delivery.headers["webhook-id"] == f"msg_{reply.json()['message']['id']}"
    assert delivery.json()["data"]["external_user_id"] == "customer-9"
    assert texts()[-1] == "Yes, I am here."
    await http.post(f"{base}/handback", headers=owner.headers)
    await send("thanks", 3)
    await wait_for(_has(texts, 3), what="the bot answers again")
    assert texts()[-1] == "Bot here."


def _has(texts: Any, n: int) -> Any:
    async def check() -> bool:
        return len(texts()) >= n

    return check


async def test_presence_is_counted_per_open_stream(
    http: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    """An agent with two tabs open closes one: still present (a visitor asking for a person
    gets the handoff message, not the offline one); closing the last marks them away at once.
    A count a dead process left behind is dropped once it is stale."""
    box = await inbox_workspace(http, "live-presence", HANDOFF)

    async def streams() -> int:
        return int(
            await admin_conn.fetchval(
                "SELECT inbox_connections FROM memberships WHERE tenant_id = $1 AND user_id = $2",
                uuid.UUID(box.owner.tenant_id),
                uuid.UUID(box.agent.user_id),
            )
        )

    async def visitor_asks() -> bool:
        """Whether the visitor is asked for an email (nobody can take it now)."""
        s = await widget_session(http, box.widget.widget_key)
        asked = await http.post(
            "/v1/widget/messages", json={"content": "talk to a person"}, headers=s.headers
        )
        assert asked.json()["handoff_status"] == "waiting", asked.text
        return bool(asked.json()["ask_email"])

    async def settled(count: int) -> None:
        async def check() -> bool:
            return await streams() == count

        await wait_for(check, what=f"{count} open staff streams counted")

    assert await visitor_asks() is True  # no tab open
    first = await open_stream(http, box.staff("/inbox/events"), box.agent.headers)
    second = await open_stream(http, box.staff("/inbox/events"), box.agent.headers)
    try:
        await settled(2)
        assert await visitor_asks() is False
        await first.close()
        await settled(1)
        assert await visitor_asks() is False  # the other tab is still open
    finally:
        await first.close()
        await second.close()
    await settled(0)
    assert await visitor_asks() is True  # away at once, not after the presence TTL

    # A process died with three streams counted: stale after the TTL, reset by the next one.
    await admin_conn.execute(
        "UPDATE memberships SET inbox_connections = 3, inbox_seen_at = now() - interval '1 hour'"
        " WHERE tenant_id = $1 AND user_id = $2",
        uuid.UUID(box.owner.tenant_id),
        uuid.UUID(box.agent.user_id),
    )
    assert await visitor_asks() is True
    third = await open_stream(http, box.staff("/inbox/events"), box.agent.headers)
    try:
        await settled(1)
        assert await visitor_asks() is False
    finally:
        await third.close()
    await settled(0)
    assert await visitor_asks() is True
