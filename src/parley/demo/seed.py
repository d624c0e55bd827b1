"""Seed the demo: a platform admin with a random password (printed once), its workspace, a bot,
and a widget channel allowed on the server's own origin (what `/demo` embeds).

The account is created only when the database has no users, so nothing is overwritten and no
password is ever reset. On every `--demo` start the demo widget's allowlist is extended with the
current origin, so a new port still works.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, select

from parley.auth import service as auth_service
from parley.auth.access import Principal
from parley.bots import service as bots
from parley.bots.schemas import BotCreate
from parley.channels import service as channels
from parley.channels.schemas import WidgetChannelCreate
from parley.kit.boot import build_runtime
from parley.kit.db import UserId, request_transaction
from parley.kit.origins import normalise
from parley.knowledge import service as knowledge
from parley.models import Channel, User
from parley.settings import Settings
from parley.tenants import service as tenants
from parley.widget.auth import bind_widget_tenant

DEMO_EMAIL = "admin@parley.example.com"
DEMO_INSTRUCTIONS = (
    "You are Parley's guide. Answer questions about running and using Parley, briefly and "
    "accurately, from the documentation you are given."
)


@dataclass
class DemoResult:
    created: bool
    email: str
    password: str | None
    tenant_id: uuid.UUID | None
    widget_key: str | None = None
    pages: int = 0


def docs_dir() -> Path | None:
    """Parley's own `docs/` in a source checkout (what `make run` serves), if present."""
    candidate = Path(__file__).resolve().parents[3] / "docs"
    return candidate if (candidate / "index.md").exists() else None


NOT_KNOWLEDGE = ("decisions/", "benchmarks.md")
"""Pages of `docs/` the demo bot does not answer from (decision 0031): design records tell the
history of a choice, old bugs included, and would answer "how do I…" with how it used to be;
the benchmark report is rewritten by the benchmarks, Q1's notes quote its own questions and
gold answers, so answering from it would make Q1 measure itself."""


def doc_pages() -> list[Path]:
    """The Markdown pages of `docs/` that describe Parley as it is (none outside a source
    checkout)."""
    folder = docs_dir()
    if folder is None:
        return []
    return sorted(
        p
        for p in folder.rglob("*.md")
        if p.stat().st_size > 0 and not p.relative_to(folder).as_posix().startswith(NOT_KNOWLEDGE)
    )


async def upload_pages(
    session: Any,
    runtime: Any,
    tenant_id: Any,
    principal: Principal,
    pages: list[Path],
    title: Callable[[Path], str | None] = lambda _: None,
) -> int:
    """Upload each page as a Markdown file (ingested by the worker); how many were queued."""

    for page in pages:
        await knowledge.upload_source(
            session,
            runtime,
            tenant_id,
            principal,
            data=page.read_bytes(),
            filename=page.name,
            content_type="text/markdown",
            title=title(page),
        )
    return len(pages)


async def _seed_docs(session: Any, runtime: Any, tenant_id: Any, principal: Principal) -> int:
    """The demo bot's knowledge: every page of Parley's documentation."""
    return await upload_pages(session, runtime, tenant_id, principal, doc_pages())


def _origins(base: str) -> list[str]:
    out = []
    for candidate in (base, base.replace("127.0.0.1", "localhost")):
        canonical = normalise(candidate)
        if canonical and canonical not in out:
            out.append(canonical)
    return out


def demo_marker(settings: Settings) -> Path:
    return settings.data_dir / "demo.json"


def read_demo_key(settings: Settings) -> str | None:
    path = demo_marker(settings)
    return str(json.loads(path.read_text())["widget_key"]) if path.exists() else None


def demo_tenant(settings: Settings) -> str | None:
    """The demo workspace's id, as recorded by an earlier `--demo` start."""
    path = demo_marker(settings)
    return str(json.loads(path.read_text()).get("tenant_id")) if path.exists() else None


def run_demo_seed(settings: Settings, app_url: str, base: str) -> DemoResult:
    """Seed (or refresh) the demo and record its widget key for `/demo`."""

    # The banner says what was created; the per-object events would only repeat it.
    with structlog.contextvars.bound_contextvars(quiet=True):
        result = asyncio.run(seed_demo(settings, app_url, base, read_demo_key(settings)))
    if result.widget_key is not None:
        demo_marker(settings).write_text(
            json.dumps({"tenant_id": str(result.tenant_id), "widget_key": result.widget_key})
        )
    return result


async def seed_demo(
    settings: Settings, app_url: str, base: str, existing_key: str | None
) -> DemoResult:

    runtime = await build_runtime(settings, app_url)
    try:
        async with request_transaction(runtime.db) as session:
            if not await session.scalar(select(func.count()).select_from(User)):
                password = secrets.token_urlsafe(12)
                user = await auth_service.create_user(
                    session, runtime, email=DEMO_EMAIL, password=password, platform_admin=True
                )
                tenant = await tenants.create_tenant(
                    session, name="Demo workspace", owner_id=UserId(user.id)
                )
                tid = await tenants.bind_new_tenant(session, tenant.id)
                principal = Principal(kind="user", user_id=UserId(user.id))
                bot = await bots.create_bot(
                    session,
                    tid,
                    principal,
                    BotCreate(name="Parley guide", instructions=DEMO_INSTRUCTIONS),
                )
                channel = await channels.create_widget_channel(
                    session,
                    tid,
                    WidgetChannelCreate(
                        type="widget",
                        bot_id=bot.id,
                        name="Demo page",
                        allowed_origins=_origins(base),
                    ),
                    actor=principal.actor,
                )
                pages = await _seed_docs(session, runtime, tid, principal)
                return DemoResult(True, DEMO_EMAIL, password, tenant.id, channel.widget_key, pages)
        if existing_key is not None:
            key = existing_key
            async with request_transaction(runtime.db) as session:
                if await bind_widget_tenant(session, key) is not None:
                    ch = (
                        await session.execute(select(Channel).where(Channel.widget_key == key))
                    ).scalar_one()
                    wanted = [o for o in _origins(base) if o not in ch.allowed_origins]
                    if wanted:
                        ch.allowed_origins = [*ch.allowed_origins, *wanted]
        return DemoResult(False, DEMO_EMAIL, None, None, None)
    finally:
        await runtime.db.dispose()
