"""Health, readiness, metrics, request ids, and problem+json for every kind of error."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from parley.kit import migrate
from tests.conftest import (
    assert_problem,
    create_widget,
    make_settings,
    register,
    widget_session,
)


async def test_healthz(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


async def test_readyz_reports_every_check(client: httpx.AsyncClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ready"
    checks = body["checks"]
    assert set(checks) == {"database", "redis", "queue", "webhooks", "retrieval", "inbound_events"}
    assert isinstance(checks["webhooks"]["dead_letters"], int)
    assert {"received", "processing", "failed"} <= set(checks["inbound_events"])
    assert checks["database"]["migration"] == migrate.head_revision()
    assert isinstance(checks["retrieval"]["pgvector"], bool)
    # The test app configures no embeddings provider: keyword-only, with or without pgvector.
    assert (checks["retrieval"]["embeddings"], checks["retrieval"]["mode"]) == (
        "none",
        "keyword-only",
    )
    assert checks["retrieval"]["mode"] in ("hybrid", "keyword-only")
    assert {"queued", "running", "failed"} <= set(checks["queue"])


async def test_readyz_says_what_embeddings_auto_resolved_to(
    data_dir: Any, test_db: Any, fake_openai: Any
) -> None:
    """`PARLEY_EMBEDDINGS=auto` (the default): `local` when the packaged model is installed
    (`make install` installs it), reported with the setting it came from. Starting the app
    does not load the model (that waits for the first document or query)."""
    from parley.app import create_app
    from parley.knowledge.embeddings import CACHE_KEY
    from parley.settings import local_embeddings_installed

    application = create_app(
        make_settings(data_dir, parley_embeddings="auto"), database_url=test_db.app_url
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            retrieval = (await c.get("/readyz")).json()["checks"]["retrieval"]
        assert CACHE_KEY not in application.state.runtime.clients  # no model built yet
    expected = "local" if local_embeddings_installed("all-MiniLM-L6-v2") else "none"
    assert retrieval["embeddings"] == expected
    assert retrieval["embeddings_setting"] == "auto"
    if retrieval["pgvector"]:
        assert retrieval["mode"] == ("hybrid" if expected == "local" else "keyword-only")


async def test_metrics_use_route_templates(client: httpx.AsyncClient) -> None:
    acct = await register(client, "metrics")
    await client.get(f"/v1/tenants/{acct.tenant_id}", headers=acct.headers)
    text = (await client.get("/metrics")).text
    assert 'route="/v1/tenants/{tenant_id}"' in text
    assert acct.tenant_id not in text
    assert "parley_http_request_duration_seconds_bucket" in text
    assert (
        "parley_jobs_queued" in text or "parley_jobs_failed" in text or "# HELP parley_jobs" in text
    )


async def test_request_ids(client: httpx.AsyncClient) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    resp = await client.get("/v1/me", headers={"traceparent": traceparent})
    assert resp.headers["X-Request-ID"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert resp.json()["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    resp = await client.get("/healthz", headers={"X-Request-ID": "my-request-123"})
    assert resp.headers["X-Request-ID"] == "my-request-123"
    hostile = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith<script>"})
    assert hostile.headers["X-Request-ID"] != "bad id\twith<script>"
    assert len(hostile.headers["X-Request-ID"]) == 32
    op = await client.post(
        "/v1/auth/login",
        json={"email": "a@b.co", "password": "x"},
        headers={"X-Operation-Id": "op-12345678"},
    )
    assert op.headers["X-Operation-Id"] == "op-12345678"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/v1/nope", {}, 404, "not_found"),
        ("DELETE", "/v1/me", {}, 405, "method_not_allowed"),
        (
            "POST",
            "/v1/auth/login",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "validation_failed",
        ),
        ("POST", "/v1/auth/login", {"json": ["a", "list"]}, 422, "validation_failed"),
        (
            "POST",
            "/v1/auth/login",
            {"json": {"email": "x" * 400 + "@a.co", "password": "p"}},
            422,
            "validation_failed",
        ),
        (
            "GET",
            "/v1/tenants/not-a-uuid",
            {"headers": {"Authorization": "Bearer x"}},
            422,
            "validation_failed",
        ),
    ],
)
async def test_bad_input_is_problem_json(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    resp = await client.request(method, path, **kwargs)
    body = assert_problem(resp, status, code)
    assert body["type"].endswith(code)


async def test_oversized_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    big = {"email": "a@b.co", "password": "x" * 2_000_000}
    resp = await client.post("/v1/auth/login", json=big)
    assert_problem(resp, 413, "payload_too_large")


async def test_oversized_chunked_body_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65536

    resp = await client.post(
        "/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(resp, 413, "payload_too_large")


async def test_security_headers(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


async def test_openapi_lists_problem_responses(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    op = spec["paths"]["/v1/tenants/{tenant_id}/api-keys"]["post"]
    assert "404" in op["responses"]
    assert "Problem" in spec["components"]["schemas"]


async def test_login_rate_limit_answers_429_with_headers(test_db: Any, data_dir: Any) -> None:
    from parley.app import create_app

    settings = make_settings(data_dir, parley_login_attempts_per_minute=3, redis_url=None)
    app = create_app(settings, database_url=test_db.app_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            # The limit is a fixed one-minute window: start in a fresh one, so five slow
            # (argon2) logins cannot straddle a boundary and find a new budget.
            into_window = time.time() % 60
            if into_window > 40:
                await asyncio.sleep(60.5 - into_window)
            codes = []
            for _ in range(5):
                r = await c.post("/v1/auth/login", json={"email": "n@example.com", "password": "x"})
                codes.append(r.status_code)
            assert codes == [401, 401, 401, 429, 429]
            assert_problem(r, 429, "rate_limited")
            assert int(r.headers["Retry-After"]) >= 1
            assert r.headers["RateLimit-Limit"] == "3"
            assert r.headers["RateLimit-Remaining"] == "0"


async def test_text_the_database_cannot_store_is_a_422(client: httpx.AsyncClient) -> None:
    acct = await register(client, "nul")
    for body in ({"name": "a\u0000b"}, {"name": "ok", "fallback_models": ["\u0000"]}):
        resp = await client.post(
            f"/v1/tenants/{acct.tenant_id}/bots", json=body, headers=acct.headers
        )
        assert_problem(resp, 422, "invalid_text")
    surrogate = b'{"name": "\\ud800"}'
    resp = await client.post(
        f"/v1/tenants/{acct.tenant_id}/bots",
        content=surrogate,
        headers={**acct.headers, "content-type": "application/json"},
    )
    assert_problem(resp, 422)


async def test_a_chat_message_the_database_cannot_store_is_a_422_and_stores_nothing(
    client: httpx.AsyncClient,
) -> None:
    """The send path's statement runs on the hot paths' own asyncpg pool: its driver errors
    are answered like SQLAlchemy's."""
    owner = await register(client, "nul-chat")
    w = await create_widget(client, owner)
    s = await widget_session(client, w.widget_key)
    resp = await client.post(
        "/v1/widget/messages",
        json={"content": "before\u0000after"},
        headers={**s.headers, "Idempotency-Key": "nul-1"},
    )
    assert_problem(resp, 422, "invalid_text")
    page = await client.get(
        f"/v1/widget/conversations/{s.conversation_id}/messages", headers=s.headers
    )
    assert page.json()["items"] == []
    ok = await client.post(
        "/v1/widget/messages",
        json={"content": "fine"},
        headers={**s.headers, "Idempotency-Key": "nul-1"},
    )
    assert ok.status_code == 201, ok.text
