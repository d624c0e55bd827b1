"""Anthropic and Gemini adapters through their official SDKs against local servers speaking
their real streaming protocols."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import (
    DatabaseUnderTest,
    assert_problem,
    create_widget,
    make_settings,
    parse_sse,
    register,
    widget_session,
)


@pytest.fixture
async def multi_client(
    test_db: DatabaseUnderTest, data_dir: Any, fake_openai: Any
) -> AsyncIterator[httpx.AsyncClient]:
    from parley.app import create_app

    settings = make_settings(
        data_dir,
        anthropic_base_url=fake_openai.root_url,
        anthropic_api_key="sk-ant-platform",
        gemini_base_url=fake_openai.root_url,
        gemini_api_key="gm-platform",
        parley_llm_retries=0,
        redis_url=None,
    )
    app = create_app(settings, database_url=test_db.app_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.40", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


@pytest.mark.parametrize(
    ("provider", "key"), [("anthropic", "sk-ant-platform"), ("gemini", "gm-platform")]
)
async def test_streams_through_the_official_sdk(
    multi_client: httpx.AsyncClient, fake_openai: Any, provider: str, key: str
) -> None:
    owner = await register(multi_client, provider)
    w = await create_widget(
        multi_client,
        owner,
        bot={
            "provider": provider,
            "model": "fake-echo",
            "instructions": f"You are the {provider} bot.",
        },
    )
    s = await widget_session(multi_client, w.widget_key)
    marker = f"{provider}-{uuid.uuid4().hex[:8]}"
    resp = await multi_client.post(
        "/v1/widget/messages",
        json={"content": f"{marker} hello"},
        headers={**s.headers, "Accept": "text/event-stream"},
    )
    events = parse_sse(resp.text)
    assert events[-1][0] == "reply.completed", events[-1]
    assert events[-1][1]["content"] == f"You said: {marker} hello"
    assert sum(1 for e in events if e[0] == "reply.delta") >= 3
    (call,) = fake_openai.calls_for(marker)
    assert key in call["_authorization"]
    system = (
        call["system"] if provider == "anthropic" else call["systemInstruction"]["parts"][0]["text"]
    )
    assert system.startswith(f"You are the {provider} bot.")
    usage = (
        await multi_client.get(f"/v1/tenants/{owner.tenant_id}/llm-usage", headers=owner.headers)
    ).json()
    (row,) = usage["items"]
    assert row["provider"] == provider
    assert row["prompt_tokens"] == (13 if provider == "anthropic" else 17)
    assert row["completion_tokens"] == 4


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
async def test_provider_errors_end_cleanly(multi_client: httpx.AsyncClient, provider: str) -> None:
    owner = await register(multi_client, f"{provider}-err")
    w = await create_widget(multi_client, owner, bot={"provider": provider, "model": "fake-500"})
    s = await widget_session(multi_client, w.widget_key)
    resp = await multi_client.post("/v1/widget/messages", json={"content": "hi"}, headers=s.headers)
    assert_problem(resp, 502, "provider_error")
