"""Helpers for channel tests: a bot and a Telegram or webhook channel through the API, signed
deliveries (Standard Webhooks, computed here independently of the code under test)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from tests.conftest import Account


@dataclass
class ChannelSetup:
    owner: Account
    bot_id: str
    channel_id: str
    inbound_path: str
    secret: str
    body: dict[str, Any]


async def make_bot(client: httpx.AsyncClient, owner: Account, **bot: Any) -> str:
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/bots",
        json={"name": "Channel bot", **bot},
        headers=owner.headers,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def make_channel(
    client: httpx.AsyncClient, owner: Account, kind: str, config: dict[str, Any], **bot: Any
) -> ChannelSetup:
    bot_id = await make_bot(client, owner, **bot)
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/channels",
        json={"type": kind, "bot_id": bot_id, "config": config},
        headers=owner.headers,
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return ChannelSetup(
        owner, bot_id, body["id"], body["inbound_path"], body["webhook_secret"], body
    )


def sign(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(
    secret: str, body: bytes, *, msg_id: str | None = None, ts: int | None = None
) -> dict[str, str]:
    mid = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = int(time.time()) if ts is None else ts
    return {
        "webhook-id": mid,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, mid, stamp, body),
        "Content-Type": "application/json",
    }


def message_body(user: str, text: str, **extra: Any) -> bytes:
    return json.dumps({"external_user_id": user, "text": text, **extra}).encode()


def verify_delivery(secret: str, headers: dict[str, str], body: bytes) -> bool:
    expected = sign(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    return any(
        hmac.compare_digest(candidate, expected)
        for candidate in headers["webhook-signature"].split(" ")
    )


async def event_counts(admin_conn: asyncpg.Connection, channel_id: str) -> dict[str, int]:
    rows = await admin_conn.fetch(
        "SELECT status, count(*) AS n FROM inbound_events WHERE channel_id = $1 GROUP BY status",
        uuid.UUID(channel_id),
    )
    return {r["status"]: int(r["n"]) for r in rows}


async def messages_by_role(admin_conn: asyncpg.Connection, channel_id: str) -> dict[str, int]:
    rows = await admin_conn.fetch(
        "SELECT m.role, count(*) AS n FROM messages m JOIN conversations c "
        "ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id "
        "WHERE c.channel_id = $1 GROUP BY m.role",
        uuid.UUID(channel_id),
    )
    return {r["role"]: int(r["n"]) for r in rows}


async def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout} s")
