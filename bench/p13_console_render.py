"""P13 — console page render time, server side, on a workspace with 10,000 conversations.

A real Parley database (embedded PostgreSQL, migrations, app role under RLS). One workspace is
set up through the console's own forms (bot, knowledge, widget) and then given 10,000 widget
conversations of two messages each (COPY, ids are UUIDv7 spread over the last 30 days, some
waiting for a person, some resolved, some tagged). Each console page is requested through the
full app over ASGI (cookie session, tenant door, services, template) and timed from request to
last byte; p95 over the repetitions. The baseline, per page, is a bare Jinja2 render of the same
template with the same context the page rendered (captured from the first request).
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench.kb import bench_database
from bench.report import Row, Section, pct
from parley.console import render
from parley.kit.ids import new_id

CONVERSATIONS = 10_000
TARGET_MS = 50.0
GAPS_SECTION = "analytics: knowledge gaps section"
DEFERRED = {GAPS_SECTION: "gaps"}
"""Sections a page loads after itself (htmx, `hx-trigger="load"`), fetched as htmx does, and
reported without the page target: the page is shown before them."""
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _uuid7_at(when: datetime) -> uuid.UUID:
    """A UUIDv7 whose time is `when` (the product's ids sort by creation time)."""
    ms = int(when.timestamp() * 1000)
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (
        (ms << 80)
        | (0x7 << 76)
        | ((rand >> 68) & 0xFFF) << 64
        | (0b10 << 62)
        | (rand & ((1 << 62) - 1))
    )
    return uuid.UUID(int=value)


async def _fill(admin_dsn: str, tenant: uuid.UUID, bot: uuid.UUID, channel: uuid.UUID) -> None:
    rng = random.Random(13)
    now = datetime.now(UTC)
    visitors, conversations, messages = [], [], []
    for i in range(CONVERSATIONS):
        at = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        vid, cid = new_id(), _uuid7_at(at)
        status = rng.choices(["bot", "waiting", "assigned", "resolved"], [80, 5, 5, 10])[0]
        visitors.append((tenant, vid, channel, secrets.token_hex(32), at, at))
        conversations.append(
            (
                tenant,
                cid,
                bot,
                channel,
                vid,
                "closed" if status == "resolved" else "open",
                at,
                at + timedelta(seconds=5),
                ["billing"] if i % 7 == 0 else [],
                status,
                rng.randint(0, 2),
            )
        )
        messages.append(
            (tenant, _uuid7_at(at), cid, "user", f"Question number {i} about bikes?", at)
        )
        messages.append(
            (tenant, _uuid7_at(at + timedelta(seconds=5)), cid, "assistant", "An answer.", at)
        )
    conn = await asyncpg.connect(admin_dsn)
    try:
        # A plan `PARLEY_PLANS` does not list is unlimited: 10,000 conversations in a month are
        # over the free plan's admission limit (issue 19), which this benchmark is not about.
        await conn.execute("UPDATE tenants SET plan = 'p13-unlimited' WHERE id = $1", tenant)
        await conn.copy_records_to_table(
            "visitors",
            records=visitors,
            columns=["tenant_id", "id", "channel_id", "token_hash", "created_at", "last_seen_at"],
        )
        await conn.copy_records_to_table(
            "conversations",
            records=conversations,
            columns=[
                "tenant_id",
                "id",
                "bot_id",
                "channel_id",
                "visitor_id",
                "status",
                "created_at",
                "last_message_at",
                "tags",
                "handoff_status",
                "fallback_count",
            ],
        )
        await conn.copy_records_to_table(
            "messages",
            records=messages,
            columns=["tenant_id", "id", "conversation_id", "role", "content", "created_at"],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _measure(quick: bool) -> Section:
    from parley.app import create_app
    from parley.settings import Settings

    reps = 30 if quick else 200
    async with bench_database() as bench:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            parley_data_dir=bench.data_dir,
            parley_env="test",
            parley_secret_keys="bench-secret-key-" + "x" * 40,
            parley_log_level="warning",
            parley_worker_in_process=False,
            parley_rate_limits="off",
        )
        app = create_app(settings, database_url=str(bench.db.url))
        captured: dict[str, tuple[str, dict[str, Any]]] = {}
        original = render.page

        def capture(request: Any, template: str, context: dict[str, Any], **kw: Any) -> Any:
            # The template page() renders: the part htmx names (`HX-Target`) when it asks for
            # one, else the page (the gaps section alone has no figures for the whole page).
            parts = kw.get("parts") or {}
            if render.is_htmx(request):
                template = parts.get(request.headers.get("hx-target") or "", template)
            captured.setdefault(
                request.url.path + "?" + request.url.query, (template, context)
            )  # page() completes it in place
            return original(request, template, context, **kw)

        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://bench") as c:
                page = await c.get("/console/signup")
                resp = await c.post(
                    "/console/signup",
                    data={
                        "email": f"p13-{secrets.token_hex(3)}@example.com",
                        "password": "bench passphrase long enough",
                        "tenant_name": "P13",
                        "csrf_token": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
                    },
                )
                home = resp.headers["location"]
                base = home.rstrip("/")
                tenant = uuid.UUID(base.rsplit("/", 1)[1])

                async def post(url: str, data: dict[str, str]) -> httpx.Response:
                    token = CSRF.search((await c.get(home)).text).group(1)  # type: ignore[union-attr]
                    return await c.post(url, data={**data, "csrf_token": token})

                await post(f"{base}/bots", {"name": "Bench bot", "back": "home"})
                bot_link = re.search(rf"{base}/bots/([0-9a-f-]+)", (await c.get(home)).text)
                bot = uuid.UUID(bot_link.group(1))  # type: ignore[union-attr]
                await post(
                    f"{base}/knowledge/add/text",
                    {"title": "Repairs", "text": "Repairs take three days.", "back": "home"},
                )
                await post(
                    f"{base}/channels/new/widget",
                    {"bot_id": str(bot), "allowed_origins": "https://shop.example.com"},
                )
                channels = await c.get(f"{base}/channels")
                channel = uuid.UUID(
                    re.search(rf"{base}/channels/([0-9a-f-]{{36}})", channels.text).group(1)  # type: ignore[union-attr]
                )
                await post(f"{base}/bots/{bot}/try", {"question": "How long do repairs take?"})
                await _fill(bench.admin_dsn, tenant, bot, channel)
                inbox = (await c.get(f"{base}/inbox")).text
                open_id = re.search(r"c=([0-9a-f-]{36})", inbox).group(1)  # type: ignore[union-attr]
                pages = {
                    "home (at a glance)": f"{base}/",
                    "bots": f"{base}/bots",
                    "bot editor": f"{base}/bots/{bot}",
                    "knowledge": f"{base}/knowledge",
                    "channels": f"{base}/channels",
                    "inbox (all)": f"{base}/inbox",
                    "inbox (waiting)": f"{base}/inbox?tab=waiting",
                    "inbox (conversation open)": f"{base}/inbox?c={open_id}",
                    "team": f"{base}/team",
                    "audit log": f"{base}/audit",
                    "webhooks": f"{base}/webhooks",
                    "automations": f"{base}/automations",
                    "usage and plan": f"{base}/usage",
                    "analytics (30 days)": f"{base}/analytics",
                    GAPS_SECTION: f"{base}/analytics/gaps",
                    "golden questions": f"{base}/bots/{bot}/golden",
                }
                rows: list[Row] = []
                render.page = capture  # type: ignore[assignment]
                try:
                    for name, url in pages.items():
                        # A section the page loads after itself is fetched as htmx does.
                        deferred = name in DEFERRED
                        hx = {"HX-Request": "true", "HX-Target": DEFERRED[name]} if deferred else {}
                        for _ in range(3):  # warm-up
                            assert (await c.get(url, headers=hx)).status_code == 200, url
                        times = []
                        for _ in range(reps):
                            t0 = time.perf_counter()
                            r = await c.get(url, headers=hx)
                            times.append((time.perf_counter() - t0) * 1000)
                            assert r.status_code == 200
                        key = next(k for k in captured if k.startswith(url.split("?")[0] + "?"))
                        template, context = captured[key]
                        tpl = render.environment().get_template(template)
                        bare = []
                        for _ in range(reps):
                            t0 = time.perf_counter()
                            tpl.render(context)
                            bare.append((time.perf_counter() - t0) * 1000)
                        p95, base95 = pct(times, 95), pct(bare, 95)
                        rows.append(
                            Row(
                                metric=f"{name} p95",
                                measured=f"{p95:.1f} ms",
                                baseline=f"{base95:.2f} ms (bare Jinja2)",
                                ratio=f"{p95 / base95:.0f}×" if base95 else "—",
                                target="after the page" if deferred else f"≤ {TARGET_MS:.0f} ms",
                                ok=None if deferred else p95 <= TARGET_MS,
                            )
                        )
                        captured.clear()
                finally:
                    render.page = original  # type: ignore[assignment]
    return Section(
        id="P13",
        title="Console page render, server side (10,000 conversations)",
        method=(
            "Each page through the whole app over ASGI (cookie session, tenant door, services, "
            f"template), {reps} requests after 3 warm-ups, on a workspace with "
            f"{CONVERSATIONS:,} conversations (20,000 messages); baseline: the same template "
            "rendered by bare Jinja2 with the context the page used."
        ),
        command="python -m bench p13" + (" --quick" if quick else ""),
        rows=rows,
    )


def run(quick: bool = False) -> Section:
    return asyncio.run(_measure(quick))
