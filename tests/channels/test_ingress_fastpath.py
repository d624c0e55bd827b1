"""Channel ingress is answered ahead of the FastAPI stack (IngressFastPath); over real HTTP,
its answers must still carry everything the stack gave every other route: id and security
headers, problem+json refusals with the trace id, the inbound body limit while the body
streams, the HTTP metrics under the route template. What it does not handle goes on to the
full application."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.channels.helpers import (
    ChannelSetup,
    event_counts,
    make_channel,
    message_body,
    signed_headers,
)
from tests.conftest import (
    DatabaseUnderTest,
    LiveServer,
    assert_problem,
    make_settings,
    register,
    serve_app,
)

INBOUND_LIMIT = 4096


@pytest.fixture(scope="module")
def ingress_server(data_dir: Path, test_db: DatabaseUnderTest) -> Iterator[LiveServer]:
    settings = make_settings(
        data_dir, parley_rate_limits="off", parley_inbound_max_body_bytes=INBOUND_LIMIT
    )
    with serve_app(settings, test_db.app_url) as server:
        yield server


@pytest.fixture
async def http(ingress_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ingress_server.base_url, timeout=30) as c:
        yield c


async def _channel(http: httpx.AsyncClient, name: str) -> ChannelSetup:
    owner = await register(http, name)
    return await make_channel(
        http, owner, "webhook", {"callback_url": "https://hooks.example.com/x"}
    )


def _counter(metrics: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus counter, 0 when the series does not exist yet."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m and ",".join(sorted(m.group(1).split(","))) == wanted:
            return float(m.group(2))
    return 0.0


async def _http_count(http: httpx.AsyncClient, status: str) -> float:
    return _counter(
        (await http.get("/metrics")).text,
        "parley_http_requests_total",
        method="POST",
        route="/v1/channels/{channel_id}/inbound",
        status=status,
    )


async def test_an_accepted_delivery_carries_the_api_headers_and_is_counted_by_route(
    http: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    ch = await _channel(http, "fast-ok")
    before_ok, before_401 = await _http_count(http, "200"), await _http_count(http, "401")
    body = message_body("u1", "hello")
    headers = {
        **signed_headers(ch.secret, body),
        "X-Request-ID": "req-fastpath-0001",
        "X-Operation-Id": "op-fastpath-0001",
    }
    resp = await http.post(ch.inbound_path, content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"ok": True, "status": "accepted"}
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-request-id"] == "req-fastpath-0001"
    assert resp.headers["x-operation-id"] == "op-fastpath-0001"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["content-security-policy"].startswith("default-src 'none'")

    again = await http.post(ch.inbound_path, content=body, headers=headers)
    assert again.json() == {"ok": True, "status": "duplicate"}

    # An unsafe operation id is not echoed; a refusal is a problem with the request's trace id.
    refused = await http.post(
        ch.inbound_path,
        content=body,
        headers={"X-Request-ID": "req-fastpath-0002", "X-Operation-Id": "bad id <x>"},
    )
    problem = assert_problem(refused, 401, "invalid_signature")
    assert problem["trace_id"] == "req-fastpath-0002" == refused.headers["x-request-id"]
    assert problem["instance"] == ch.inbound_path
    assert "x-operation-id" not in refused.headers
    assert refused.headers["x-content-type-options"] == "nosniff"

    assert await _http_count(http, "200") == before_ok + 2
    assert await _http_count(http, "401") == before_401 + 1
    assert await event_counts(admin_conn, ch.channel_id) == {"received": 1}


async def test_a_body_past_the_inbound_limit_is_refused_while_it_streams(
    http: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    ch = await _channel(http, "fast-big")
    big = message_body("u", "x" * (INBOUND_LIMIT + 10))
    declared = await http.post(ch.inbound_path, content=big, headers=signed_headers(ch.secret, big))
    assert "limit is 4096" in assert_problem(declared, 413, "payload_too_large")["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked transfer
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    streamed = await http.post(
        ch.inbound_path, content=chunks(), headers=signed_headers(ch.secret, big)
    )
    assert_problem(streamed, 413, "payload_too_large")
    metrics = (await http.get("/metrics")).text
    assert (
        _counter(
            metrics, "parley_inbound_deliveries_total", channel_type="webhook", outcome="refused"
        )
        >= 2
    )
    # A body just under the limit, in chunks, is read whole and accepted.
    small = message_body("u", "y" * 1000)

    async def small_chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(small), 100):
            yield small[i : i + 100]

    ok = await http.post(
        ch.inbound_path, content=small_chunks(), headers=signed_headers(ch.secret, small)
    )
    assert ok.json()["status"] == "accepted", ok.text
    assert await event_counts(admin_conn, ch.channel_id) == {"received": 1}


async def test_what_the_fast_path_does_not_handle_goes_to_the_full_application(
    http: httpx.AsyncClient,
) -> None:
    ch = await _channel(http, "fast-other")
    body = message_body("u", "hello")
    signed = signed_headers(ch.secret, body)
    assert_problem(
        await http.post("/v1/channels/not-a-uuid/inbound", content=body, headers=signed),
        422,
        "validation_failed",
    )
    assert_problem(await http.get(ch.inbound_path), 405, "method_not_allowed")
    unknown = f"/v1/channels/{uuid.uuid4()}/inbound"
    assert_problem(await http.post(unknown, content=body, headers=signed), 404)
    # The routes stay in the OpenAPI document, with their headers.
    spec = (await http.get("/openapi.json")).json()
    inbound = spec["paths"]["/v1/channels/{channel_id}/inbound"]["post"]
    assert {p["name"] for p in inbound["parameters"]} >= {"webhook-id", "webhook-signature"}


async def test_a_client_that_hangs_up_mid_body_leaves_nothing_and_the_server_serves_on(
    ingress_server: LiveServer, http: httpx.AsyncClient, admin_conn: asyncpg.Connection
) -> None:
    ch = await _channel(http, "fast-hangup")
    body = message_body("u", "hello")
    host, port = ingress_server.base_url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    head = "".join(f"{k}: {v}\r\n" for k, v in signed_headers(ch.secret, body).items())
    request = f"POST {ch.inbound_path} HTTP/1.1\r\nHost: x\r\n{head}"
    writer.write(f"{request}Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.2)
    resp = await http.post(ch.inbound_path, content=body, headers=signed_headers(ch.secret, body))
    assert resp.json()["status"] == "accepted"
    assert await event_counts(admin_conn, ch.channel_id) == {"received": 1}
