"""Issue 15 §7: public-suffix wildcards, exact JWT audiences, a protected `/metrics`, a read
timeout on trickling bodies, and few event streams per widget token."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from parley.kit.origins import InvalidOrigin, _public_suffixes, validate_entry
from tests.conftest import (
    DatabaseUnderTest,
    LiveServer,
    assert_problem,
    create_widget,
    make_settings,
    register,
    widget_session,
)
from tests.security.conftest import BODY_READ_TIMEOUT, STREAMS_PER_TOKEN


@pytest.mark.parametrize(
    "entry",
    [
        "https://*.co.uk",
        "https://*.com",
        "https://*.github.io",  # a private-section suffix: anyone can own a.github.io
        "https://*.pvt.k12.ma.us",
        "https://*.CO.UK",
        "https://*.co.uk:8443",
    ],
)
def test_a_wildcard_over_a_public_suffix_is_refused(entry: str) -> None:
    with pytest.raises(InvalidOrigin):
        validate_entry(entry)


def test_a_wildcard_over_a_registrable_domain_is_kept() -> None:
    assert validate_entry("https://*.shop.co.uk") == "https://*.shop.co.uk"
    assert validate_entry("https://*.example.com") == "https://*.example.com"


def test_the_public_suffix_list_ships_in_the_package_and_is_not_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the public suffix list tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    _public_suffixes.cache_clear()
    assert _public_suffixes().is_public("co.uk")
    with pytest.raises(InvalidOrigin):
        validate_entry("https://*.co.uk")


async def test_a_jwt_audience_must_be_exactly_ours(app: Any, client: httpx.AsyncClient) -> None:
    owner = await register(client, "aud")
    ring = app.state.runtime.keyring
    claims = jwt.decode(owner.access_token, options={"verify_signature": False})
    key = ring.signing[0]
    for aud in (["parley:console", "other"], ["parley:console"], ["other", "parley:console"]):
        forged = jwt.encode(
            {**claims, "aud": aud}, key.key, algorithm="HS256", headers={"kid": key.kid}
        )
        resp = await client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
        assert_problem(resp, 401, "invalid_token")
    assert (await client.get("/v1/me", headers=owner.headers)).status_code == 200


async def test_metrics_can_require_a_token(data_dir: Path, test_db: DatabaseUnderTest) -> None:
    from parley.app import create_app

    app = create_app(
        make_settings(data_dir, parley_metrics_token="m" * 32), database_url=test_db.app_url
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert_problem(await c.get("/metrics"), 401, "unauthorized")
            wrong = await c.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32})
            assert_problem(wrong, 401, "unauthorized")
            ok = await c.get("/metrics", headers={"Authorization": "Bearer " + "m" * 32})
            assert ok.status_code == 200
            assert "parley_" in ok.text


def _trickle(port: int, path: str, first: bytes, declared: int) -> tuple[bytes, float]:
    """Send headers and the first bytes of a body, then nothing: what comes back, and when."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
            + first
        )
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer, time.monotonic() - started


@pytest.mark.parametrize("path", ["/v1/auth/login", "/v1/channels/{}/webhook"])
async def test_a_trickling_body_is_cut_off(tuned_server: LiveServer, path: str) -> None:
    import uuid

    answer, waited = await asyncio.to_thread(
        _trickle, tuned_server.port, path.format(uuid.uuid4()), b'{"em', 200
    )
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert waited + 0.05 >= BODY_READ_TIMEOUT
    assert waited < BODY_READ_TIMEOUT + 5


async def test_one_widget_token_holds_only_a_few_event_streams(
    tuned_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=tuned_server.base_url, timeout=30) as client:
        owner = await register(client, "streams")
        w = await create_widget(client, owner)
        s = await widget_session(client, w.widget_key)
        url = f"/v1/widget/conversations/{s.conversation_id}/events"
        async with httpx.AsyncClient(base_url=tuned_server.base_url, timeout=30) as streams:
            opened = []
            for _ in range(STREAMS_PER_TOKEN):
                cm = streams.stream("GET", url, headers=s.headers)
                resp = await cm.__aenter__()
                assert resp.status_code == 200
                opened.append(cm)
            over = await client.get(url, headers=s.headers)
            assert_problem(over, 429, "too_many_streams")
            # Another token of the same visitor has its own slots.
            other = await widget_session(client, w.widget_key, visitor_token=s.visitor_token)
            async with streams.stream(
                "GET",
                f"/v1/widget/conversations/{other.conversation_id}/events",
                headers=other.headers,
            ) as resp:
                assert resp.status_code == 200
            # Closing one frees its slot.
            await opened.pop().__aexit__(None, None, None)
            for _ in range(50):
                again = streams.stream("GET", url, headers=s.headers)
                resp = await again.__aenter__()
                if resp.status_code == 200:
                    await again.__aexit__(None, None, None)
                    break
                await resp.aread()
                await again.__aexit__(None, None, None)
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("a closed stream never gave its slot back")
            for cm in opened:
                await cm.__aexit__(None, None, None)
