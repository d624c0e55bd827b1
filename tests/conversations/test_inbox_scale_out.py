"""Two API instances on one PostgreSQL and Redis: the agent on one, the visitor on the other;
the staff stream and the widget's stream each receive, live, what the other side did."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import (
    DatabaseUnderTest,
    make_settings,
    require_service,
    serve_app,
    widget_session,
)
from tests.conversations.helpers import inbox_workspace
from tests.conversations.live import open_stream


async def test_inbox_events_cross_instances_through_redis(
    test_db: DatabaseUnderTest, data_dir: Path
) -> None:
    redis_url = require_service("REDIS_URL")
    shared = make_settings(data_dir, redis_url=redis_url, parley_rate_limits="off")
    with serve_app(shared, test_db.app_url) as a, serve_app(shared, test_db.app_url) as b:
        async with (
            httpx.AsyncClient(base_url=a.base_url, timeout=20) as agent_side,
            httpx.AsyncClient(base_url=b.base_url, timeout=20) as visitor_side,
        ):
            box = await inbox_workspace(agent_side, "scale-inbox")
            staff = await open_stream(agent_side, box.staff("/inbox/events"), box.agent.headers)
            s = await widget_session(visitor_side, box.widget.widget_key)
            conv = s.conversation_id
            widget = await open_stream(
                visitor_side, f"/v1/widget/conversations/{conv}/events", s.headers
            )
            try:
                sent = await visitor_side.post(
                    "/v1/widget/messages",
                    json={"content": "please, talk to a person"},
                    headers=s.headers,
                )
                mid = sent.json()["message"]["id"]
                await staff.wait(lambda e: e[2] == mid, what="visitor message across instances")
                await visitor_side.post("/v1/widget/typing", headers=s.headers)
                await staff.wait(lambda e: e[0] == "typing", what="typing across instances")

                await agent_side.post(box.conv(conv, "/assign"), headers=box.agent.headers)
                await widget.wait(
                    lambda e: (
                        e[0] == "conversation.status" and e[1]["handoff_status"] == "assigned"
                    ),
                    what="status across instances",
                )
                reply = await agent_side.post(
                    box.conv(conv, "/messages"),
                    json={"content": "From instance A"},
                    headers=box.agent.headers,
                )
                rid = reply.json()["message"]["id"]
                got = await widget.wait(lambda e: e[2] == rid, what="reply across instances")
                assert got[1]["role"] == "operator"
            finally:
                await staff.close()
                await widget.close()
