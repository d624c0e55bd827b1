"""Optional telemetry: traces through the API, the database, the LLM call and a job reach a
local OTLP/HTTP receiver; an unexpected error reaches a local Sentry-envelope receiver; a
personal-data canary sent in every place a visitor or caller can put text appears in neither.
Needs the `telemetry` extra (in `dev`): skipped locally without it, failed under CI."""

from __future__ import annotations

import asyncio
import gzip
import importlib
import threading
import uuid
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.kit.jobs import JobContext, JobRegistry, Worker
from parley.kit.telemetry import ALLOWED_ATTRIBUTES
from parley.settings import Settings
from tests.conftest import (
    IN_CI,
    DatabaseUnderTest,
    create_widget,
    make_settings,
    register,
    widget_session,
)

CANARY = "pii-canary-5c1d"
EMAIL = f"{CANARY}@example.net"


def _require_extra() -> None:
    for module in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http", "sentry_sdk"):
        try:
            importlib.import_module(module)
        except ImportError:
            if IN_CI:
                pytest.fail(f"{module} (the telemetry extra) is required under CI")
            pytest.skip(f"{module} is not installed")


class _Receiver:
    """A local HTTP server that stores every POST body (decompressed)."""

    def __init__(self) -> None:
        bodies: list[tuple[str, bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "deflate":
                    raw = zlib.decompress(raw)
                bodies.append((self.path, raw))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.close()


def _app_settings(tmp: Path, settings: Settings, **extra: Any) -> Settings:
    return make_settings(
        tmp, openai_base_url=settings.openai_base_url, openai_api_key="sk-test", **extra
    )


async def test_traces_cover_api_db_llm_and_jobs_without_personal_data(
    receiver: _Receiver, settings: Settings, test_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    _require_extra()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from parley.app import create_app

    app = create_app(
        _app_settings(
            tmp_path, settings, otel_exporter_otlp_endpoint=f"http://127.0.0.1:{receiver.port}"
        ),
        database_url=test_db.app_url,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.7.7.7", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            owner = await register(c, "telemetry")
            w = await create_widget(c, owner)
            visitor = await widget_session(c, w.widget_key)
            sent = await c.post(
                f"/v1/widget/messages?email={EMAIL}",
                json={"content": f"I am {EMAIL}, call me"},
                headers={**visitor.headers, "Idempotency-Key": CANARY},
            )
            assert sent.status_code in (200, 201), sent.text
        # A job through the product's Worker, its payload carrying the canary too.
        registry, ran = JobRegistry(), asyncio.Event()

        @registry.job("test.telemetry")
        async def job(ctx: JobContext) -> None:
            ran.set()

        from parley.kit.db import request_transaction
        from parley.kit.jobs import enqueue

        async with request_transaction(app.state.runtime.db) as session:
            await enqueue(session, "test.telemetry", {"note": CANARY})
        worker = Worker(db=app.state.runtime.db, registry=registry, runtime=app.state.runtime)
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(ran.wait(), timeout=30)
        finally:
            worker.stop()
            await asyncio.wait_for(task, timeout=30)
    # Shutdown flushed the exporter.
    traces = [body for path, body in receiver.bodies if path == "/v1/traces"]
    assert traces
    spans = []
    for body in traces:
        assert CANARY.encode() not in body
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                spans += list(ss.spans)
    names = {s.name for s in spans}
    assert "POST /v1/widget/messages" in names, names
    assert "job test.telemetry" in names
    assert any(n.startswith("llm ") for n in names), names
    db_spans = [s for s in spans if s.name == "db"]
    assert db_spans
    assert {a.key for s in spans for a in s.attributes} <= ALLOWED_ATTRIBUTES
    # The API span is the parent of the database spans of its request.
    api = next(s for s in spans if s.name == "POST /v1/widget/messages")
    assert any(s.trace_id == api.trace_id for s in db_spans)


async def test_sentry_gets_the_error_without_personal_data(
    receiver: _Receiver, settings: Settings, test_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    _require_extra()
    from parley.app import create_app

    dsn = f"http://{uuid.uuid4().hex}@127.0.0.1:{receiver.port}/42"
    app = create_app(
        _app_settings(tmp_path, settings, sentry_dsn=dsn), database_url=test_db.app_url
    )

    @app.post("/test-boom")
    async def boom(payload: dict[str, Any]) -> None:
        raise RuntimeError(f"unexpected failure for {payload['email']}")  # a bug quoting PII

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(
            app=app, client=("10.7.7.8", 1234), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            resp = await c.post(
                f"/test-boom?email={EMAIL}",
                json={"email": EMAIL},
                headers={"Authorization": f"Bearer {CANARY}", "Cookie": f"s={CANARY}"},
            )
            assert resp.status_code == 500
    envelopes = [body for path, body in receiver.bodies if path.startswith("/api/42/envelope")]
    assert envelopes, receiver.bodies
    joined = b"\n".join(envelopes)
    assert b"RuntimeError" in joined
    assert b"test_boom" in joined or b"boom" in joined
    assert CANARY.encode() not in joined
