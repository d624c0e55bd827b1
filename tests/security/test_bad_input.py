"""Issue 15 §6: bad input is a 4xx problem, never a 500, and a database error writes none of
its statement's values to the log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request
from sqlalchemy import text

from parley.channels.signatures import SignatureError, check_timestamp
from parley.kit.db import request_transaction
from parley.kit.logging import configure_logging
from parley.kit.runtime import get_runtime
from tests.conftest import (
    DatabaseUnderTest,
    assert_problem,
    create_widget,
    make_settings,
    register,
    widget_session,
)

MARKER = "PARLEY-LEAK-MARKER-" + uuid.uuid4().hex


@pytest.mark.parametrize("raw", ["١٧٠٠٠٠٠٠٠٠", "²", "１７００", "17000000০০"])
def test_non_ascii_digits_in_a_signature_timestamp_are_malformed(raw: str) -> None:
    with pytest.raises(SignatureError):
        check_timestamp(raw)


async def test_json_nested_thousands_deep_is_refused(client: httpx.AsyncClient) -> None:
    for depth in (65, 5_000, 100_000):
        body = "[" * depth + "]" * depth
        resp = await client.post(
            "/v1/auth/login", content=body, headers={"Content-Type": "application/json"}
        )
        assert_problem(resp, 422, "invalid_json")
    deep_string = '{"email": "' + "[" * 10_000 + '", "password": "x"}'  # brackets in a string
    resp = await client.post(
        "/v1/auth/login", content=deep_string, headers={"Content-Type": "application/json"}
    )
    assert_problem(resp, 422, "validation_failed")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
async def test_non_finite_numbers_are_refused_when_parsed(
    client: httpx.AsyncClient, number: str
) -> None:
    owner = await register(client, "nan")
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/bots",
        content='{"name": "n", "temperature": ' + number + "}",
        headers={**owner.headers, "Content-Type": "application/json"},
    )
    assert_problem(resp, 422, "invalid_json")


async def test_whitespace_only_widget_message_is_refused(client: httpx.AsyncClient) -> None:
    owner = await register(client, "blank")
    w = await create_widget(client, owner)
    s = await widget_session(client, w.widget_key)
    for blank in (" ", "\n\t ", "\u3000\u2003"):
        resp = await client.post("/v1/widget/messages", json={"content": blank}, headers=s.headers)
        assert_problem(resp, 422, "validation_failed")


@pytest.fixture
async def probe_app(
    data_dir: Path, test_db: DatabaseUnderTest, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[Any]:
    """A fresh app with two extra routes whose statements fail in the database, the way a
    real request's can (a row deleted meanwhile, a constraint): test routes, not mocks."""
    from parley.app import create_app

    app = create_app(
        make_settings(data_dir, parley_log_level="info", parley_log_format="json"),
        database_url=test_db.app_url,
    )

    async def fails_with_values(request: Request) -> None:
        async with request_transaction(get_runtime(request).db) as session:
            await session.execute(
                text("SELECT CAST(:instructions AS integer)"), {"instructions": MARKER}
            )

    async def names_a_missing_row(request: Request) -> None:
        async with request_transaction(get_runtime(request).db) as session:
            await session.execute(
                text(
                    "INSERT INTO auth_sessions (id, user_id, family_id, token_hash, expires_at) "
                    "VALUES (:id, :user, :id, :hash, now())"
                ),
                {"id": uuid.uuid4(), "user": uuid.uuid4(), "hash": MARKER},
            )

    app.add_api_route("/_probe/values", fails_with_values, methods=["POST"])
    app.add_api_route("/_probe/missing", names_a_missing_row, methods=["POST"])
    async with app.router.lifespan_context(app):
        yield app


async def test_a_database_error_logs_no_statement_values(
    probe_app: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("info", "json")  # onto this test's captured stderr
    transport = httpx.ASGITransport(app=probe_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        failed = await c.post("/_probe/values")
        missing = await c.post("/_probe/missing")
    assert_problem(failed, 500, "internal_error")
    assert_problem(missing, 404, "referenced_not_found")  # a foreign-key violation
    out, err = capsys.readouterr()
    logged = out + err + caplog.text
    assert "http.database_error" in logged  # the failure is logged...
    assert MARKER not in logged  # ...without the values its statement carried
    assert MARKER not in failed.text + missing.text
