"""SPEC §4.3: property-based requests over every operation of the OpenAPI schema, as an
authenticated workspace owner: no server errors, and every error answer is problem+json."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import Account, LiveServer, register


@schemathesis.serializer("audio/webm", "audio/ogg", "audio/wav", "audio/mp4", "audio/mpeg")
def _audio_body(ctx: Any, value: Any) -> bytes:
    """`POST /v1/widget/voice` takes the recording as its body: any bytes will do here."""
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module")
def owner(live_server: LiveServer) -> Account:
    async def make() -> Account:
        async with httpx.AsyncClient(base_url=live_server.base_url, timeout=20) as c:
            return await register(c, "schemathesis")

    return asyncio.run(make())


@pytest.fixture(scope="module")
def api_schema(live_server: LiveServer) -> Any:
    loaded = schemathesis.openapi.from_url(f"{live_server.base_url}/openapi.json")
    # Streams never end by themselves; they have their own tests.
    # Logging out would end the fuzzing session for every later operation.
    return loaded.exclude(path_regex=r"/events$|/auth/logout$")


def test_no_server_errors_and_problem_json(
    api_schema: Any, live_server: LiveServer, owner: Account
) -> None:
    checked = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            if case.path_parameters and "tenant_id" in case.path_parameters:
                case.path_parameters["tenant_id"] = owner.tenant_id  # fuzz inside a real tenant
            response = case.call(base_url=live_server.base_url, headers=owner.headers, timeout=30)
            where = (case.method, case.formatted_path, response.status_code, response.text[:300])
            assert response.status_code < 500, where
            if response.status_code >= 400:
                ctype = response.headers.get("content-type") or [""]
                ctype = ctype[0] if isinstance(ctype, list) else ctype
                assert ctype.startswith("application/problem+json"), where
                body = response.json()
                assert {"type", "title", "status", "detail", "code", "trace_id"} <= set(body), where

        exercise()
        checked += 1
    assert checked >= 40
