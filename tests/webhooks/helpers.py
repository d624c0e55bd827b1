"""Small helpers shared by the webhook tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account, WidgetSetup, create_widget, widget_session


async def make_hook(
    client: httpx.AsyncClient, owner: Account, url: str, events: list[str]
) -> dict[str, Any]:
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/webhooks",
        json={"url": url, "events": events},
        headers=owner.headers,
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def call_webhook_rule(
    client: httpx.AsyncClient, owner: Account, name: str, event: str, hook_id: str
) -> dict[str, Any]:
    """An automation rule that calls the webhook `hook_id` on every `event` (`always`)."""
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/automations",
        json={
            "name": name,
            "event": event,
            "condition": {"type": "always"},
            "action": {"type": "call_webhook", "webhook_id": hook_id},
        },
        headers=owner.headers,
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def deliveries(
    client: httpx.AsyncClient, owner: Account, hook_id: str, status: str | None = None
) -> list[dict[str, Any]]:
    resp = await client.get(
        f"/v1/tenants/{owner.tenant_id}/webhooks/{hook_id}/deliveries",
        params={"status": status, "limit": 200} if status else {"limit": 200},
        headers=owner.headers,
    )
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


async def start_conversations(
    client: httpx.AsyncClient, owner: Account, n: int = 1, widget: WidgetSetup | None = None
) -> list[str]:
    """`n` new visitors, each starting a conversation (one `conversation.started` each)."""
    w = widget or await create_widget(client, owner)
    return [(await widget_session(client, w.widget_key)).conversation_id for _ in range(n)]
