"""SPEC §4.4 for the widget: hostile widget tokens × every widget route → 0 accepted; and the
per-visitor message rate limit."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt

from parley.kit.security import Keyring, load_secret_keys
from parley.settings import Settings
from tests.auth.test_token_negatives import _forge
from tests.conftest import (
    ALLOWED_ORIGIN,
    assert_problem,
    create_widget,
    make_settings,
    register,
    widget_session,
)


def _ring(settings: Settings) -> Keyring:
    assert settings.parley_secret_keys is not None
    return Keyring.from_secrets(
        load_secret_keys(settings.parley_secret_keys.get_secret_value(), settings.data_dir)
    )


async def test_hostile_widget_tokens_are_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    owner = await register(client, "wt")
    w = await create_widget(client, owner)
    s = await widget_session(client, w.widget_key)
    other = await widget_session(
        client, (await create_widget(client, await register(client, "wt2"))).widget_key
    )
    ring = _ring(settings)
    key = ring.signing[0]
    claims = jwt.decode(s.token, options={"verify_signature": False})
    header = {"alg": "HS256", "kid": key.kid, "typ": "JWT"}
    now = int(time.time())
    other_claims = jwt.decode(other.token, options={"verify_signature": False})

    def signed(
        payload: dict[str, Any], hdr: dict[str, Any] | None = None, k: bytes | None = key.key
    ) -> str:
        return _forge(hdr or header, payload, k)

    hostile = {
        "alg none": _forge({"alg": "none"}, claims, None),
        "wrong key": signed(claims, k=b"z" * 32),
        "HS512": signed(claims, {"alg": "HS512", "kid": key.kid}),
        "unknown kid": signed(claims, {"alg": "HS256", "kid": "ffff"}),
        "jku": signed(claims, {**header, "jku": "https://evil.example/k"}),
        "expired by 1 s": signed({**claims, "iat": now - 60, "nbf": now - 60, "exp": now - 1}),
        "nbf future": signed({**claims, "nbf": now + 30}),
        "console audience": signed({**claims, "aud": "parley:console"}),
        "access type": signed({**claims, "typ": "access"}),
        "no exp": signed({k: v for k, v in claims.items() if k != "exp"}),
        "tenant swapped (forged)": signed({**claims, "tid": other_claims["tid"]}, k=b"q" * 32),
        "console token": owner.access_token,
        "refresh token": owner.refresh_token,
        "truncated": s.token[:-6],
        "garbage": "x.y.z",
    }
    paths = [
        ("GET", "/v1/widget/whoami", None),
        ("GET", f"/v1/widget/conversations/{s.conversation_id}/messages", None),
        ("POST", "/v1/widget/messages", {"content": "hi"}),
        ("POST", f"/v1/widget/messages/{uuid.uuid4()}/feedback", {"rating": "up"}),
        ("GET", f"/v1/widget/conversations/{s.conversation_id}/events", None),
    ]
    accepted = []
    for name, token in hostile.items():
        for method, path, body in paths:
            resp = await client.request(
                method,
                path,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Origin": ALLOWED_ORIGIN},
            )
            if resp.status_code != 401:
                accepted.append((name, path, resp.status_code))
    assert accepted == []
    # The other visitor's valid token cannot read this conversation.
    resp = await client.get(
        f"/v1/widget/conversations/{s.conversation_id}/messages", headers=other.headers
    )
    assert_problem(resp, 404)


@asynccontextmanager
async def own_app(
    test_db: Any, data_dir: Any, address: str, **limits: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app of its own, from `address`, with in-memory rate limits (`limits`):
    no other test's requests count against them."""
    from parley.app import create_app

    settings = make_settings(data_dir, redis_url=None, **limits)
    app = create_app(settings, database_url=test_db.app_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(address, 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_visitor_message_rate_limit(test_db: Any, data_dir: Any) -> None:
    async with own_app(test_db, data_dir, "198.51.100.7", parley_widget_messages_per_minute=3) as c:
        w = await create_widget(c, await register(c, "rl"))
        s = await widget_session(c, w.widget_key)
        codes = []
        for i in range(5):
            r = await c.post("/v1/widget/messages", json={"content": f"m{i}"}, headers=s.headers)
            codes.append(r.status_code)
        assert codes == [201, 201, 201, 429, 429]
        assert_problem(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
        # Another visitor is not affected.
        s2 = await widget_session(c, w.widget_key)
        ok = await c.post("/v1/widget/messages", json={"content": "hi"}, headers=s2.headers)
        assert ok.status_code == 201


async def test_session_limit_answer_is_readable_by_the_calling_page(
    test_db: Any, data_dir: Any
) -> None:
    """Too many sessions from one address: the page gets a 429 it can read (CORS), with
    Retry-After exposed, so the widget says "busy" and retries instead of "unavailable". A
    refused origin still gets no CORS header at all (decision 0043)."""
    async with own_app(test_db, data_dir, "198.51.100.9", parley_widget_sessions_per_minute=2) as c:
        w = await create_widget(c, await register(c, "sl"))
        stranger = await c.post(
            "/v1/widget/session",
            json={"widget_key": w.widget_key},
            headers={"Origin": "https://evil.example"},
        )
        assert_problem(stranger, 403, "origin_not_allowed")
        assert "access-control-allow-origin" not in stranger.headers
        codes = []
        for _ in range(3):
            r = await c.post(
                "/v1/widget/session",
                json={"widget_key": w.widget_key},
                headers={"Origin": ALLOWED_ORIGIN},
            )
            codes.append(r.status_code)
        assert codes[-1] == 429, codes
        assert_problem(r, 429, "rate_limited")
        assert r.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "retry-after" in r.headers["access-control-expose-headers"].lower()
        assert "access-control-allow-credentials" not in r.headers
        assert int(r.headers["Retry-After"]) >= 1
