"""Scale-out: two API instances on one PostgreSQL and Redis. A visitor's event stream on one
instance receives, live, the messages posted through the other."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.conftest import (
    DatabaseUnderTest,
    create_widget,
    make_settings,
    register,
    require_service,
    serve_app,
    widget_session,
)
from tests.widget.test_widget_live import _read_events


async def test_events_cross_instances_through_redis(
    test_db: DatabaseUnderTest, data_dir: Path
) -> None:
    redis_url = require_service("REDIS_URL")
    shared = make_settings(data_dir, redis_url=redis_url)
    with serve_app(shared, test_db.app_url) as a, serve_app(shared, test_db.app_url) as b:
        async with (
            httpx.AsyncClient(base_url=a.base_url, timeout=20) as ca,
            httpx.AsyncClient(base_url=b.base_url, timeout=20) as cb,
        ):
            owner = await register(ca, "scale")
            w = await create_widget(ca, owner)
            s = await widget_session(ca, w.widget_key)
            url = f"/v1/widget/conversations/{s.conversation_id}/events"
            listener = asyncio.create_task(_read_events(ca, url, s.headers, want=2))
            await asyncio.sleep(0.5)
            sent = await cb.post(
                "/v1/widget/messages", json={"content": "via B"}, headers=s.headers
            )
            assert sent.status_code == 201
            events = await listener
            assert [e[1]["id"] for e in events] == [
                sent.json()["message"]["id"],
                sent.json()["reply"]["id"],
            ]
