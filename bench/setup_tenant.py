"""A workspace, bot and widget on a running server, through the public API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

ORIGIN = "https://bench.example.com"


@dataclass
class BenchWidget:
    owner_headers: dict[str, str]
    tenant_id: str
    widget_key: str


async def make_widget(
    client: httpx.AsyncClient, bot: dict[str, Any], **channel: Any
) -> BenchWidget:
    reg = await client.post(
        "/v1/auth/register",
        json={
            "email": f"bench-{secrets.token_hex(4)}@example.com",
            "password": "bench passphrase " + secrets.token_hex(4),
            "tenant_name": "Bench",
        },
    )
    reg.raise_for_status()
    body = reg.json()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    tid = body["tenant"]["id"]
    b = await client.post(f"/v1/tenants/{tid}/bots", json={"name": "Bench", **bot}, headers=headers)
    b.raise_for_status()
    ch = await client.post(
        f"/v1/tenants/{tid}/channels",
        json={
            "type": "widget",
            "bot_id": b.json()["id"],
            "allowed_origins": [ORIGIN],
            **channel,
        },
        headers=headers,
    )
    ch.raise_for_status()
    return BenchWidget(headers, tid, ch.json()["widget_key"])


async def visitor(client: httpx.AsyncClient, widget_key: str) -> tuple[dict[str, str], str]:
    s = await client.post(
        "/v1/widget/session", json={"widget_key": widget_key}, headers={"Origin": ORIGIN}
    )
    s.raise_for_status()
    body = s.json()
    return {"Authorization": f"Bearer {body['token']}", "Origin": ORIGIN}, body["conversation_id"]
