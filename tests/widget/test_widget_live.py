"""The widget API over a real HTTP server: live events with resume, streaming, CORS."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conftest import ALLOWED_ORIGIN, LiveServer, create_widget, register, widget_session


async def _read_events(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], want: int, timeout: float = 15
) -> list[tuple[str, dict[str, Any], str | None]]:
    out: list[tuple[str, dict[str, Any], str | None]] = []

    async def read() -> None:
        async with client.stream("GET", url, headers=headers) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            name, eid, data = None, None, []
            async for line in resp.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("id: "):
                    eid = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and name:
                    out.append((name, json.loads("\n".join(data)), eid))
                    name, eid, data = None, None, []
                    if len(out) >= want:
                        return

    await asyncio.wait_for(read(), timeout=timeout)
    return out


async def test_live_events_and_resume(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as client:
        owner = await register(client, "live")
        w = await create_widget(client, owner)
        s = await widget_session(client, w.widget_key)
        url = f"/v1/widget/conversations/{s.conversation_id}/events"
        listener = asyncio.create_task(_read_events(client, url, s.headers, want=2))
        await asyncio.sleep(0.3)  # let the stream subscribe
        sent = await client.post("/v1/widget/messages", json={"content": "ping"}, headers=s.headers)
        assert sent.status_code == 201
        events = await listener
        assert [e[0] for e in events] == ["message.created", "message.created"]
        assert [e[1]["role"] for e in events] == ["user", "assistant"]
        assert events[0][2] == sent.json()["message"]["id"]
        # Reconnect from the first id: the missed reply is replayed from the database.
        missed = await _read_events(
            client, url, {**s.headers, "Last-Event-ID": events[0][2] or ""}, want=1
        )
        assert missed[0][1]["id"] == sent.json()["reply"]["id"]


async def test_cors_over_http(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as client:
        owner = await register(client, "cors")
        w = await create_widget(client, owner)
        ok = await client.post(
            "/v1/widget/session",
            json={"widget_key": w.widget_key},
            headers={"Origin": ALLOWED_ORIGIN},
        )
        assert ok.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "Origin" in ok.headers["vary"]
        bad = await client.post(
            "/v1/widget/session",
            json={"widget_key": w.widget_key},
            headers={"Origin": "https://attacker.example"},
        )
        assert bad.status_code == 403
        assert "access-control-allow-origin" not in bad.headers
        streamed = await client.post(
            "/v1/widget/messages",
            json={"content": "hi"},
            headers={
                "Authorization": f"Bearer {ok.json()['token']}",
                "Origin": ALLOWED_ORIGIN,
                "Accept": "text/event-stream",
            },
        )
        assert streamed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "reply.completed" in streamed.text


async def test_a_visitor_who_leaves_mid_stream_still_gets_the_reply_stored(
    live_server: LiveServer, fake_openai: Any
) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as client:
        owner = await register(client, "leaver")
        w = await create_widget(client, owner, bot={"provider": "openai", "model": "fake-echo"})
        s = await widget_session(client, w.widget_key)
        fake_openai.delay_per_chunk = 0.2
        try:
            async with client.stream(
                "POST",
                "/v1/widget/messages",
                json={"content": "one two three four five six"},
                headers={**s.headers, "Accept": "text/event-stream", "Idempotency-Key": "leave"},
            ) as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("event: reply.delta"):
                        break  # the visitor closes the tab
            history: list[dict[str, Any]] = []
            for _ in range(100):
                got = await client.get(
                    f"/v1/widget/conversations/{s.conversation_id}/messages", headers=s.headers
                )
                history = got.json()["items"]
                if len(history) == 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            fake_openai.delay_per_chunk = 0.0
        assert [m["role"] for m in history] == ["user", "assistant"]
        assert history[1]["content"] == "You said: one two three four five six"
        assert len(fake_openai.calls_for("one two three four five six")) == 1
