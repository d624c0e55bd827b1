"""Live events: the visitor's conversation topic and the workspace's staff topic.

Staff get one SSE stream per workspace (`inbox_stream`): new conversations, new messages,
status and assignment changes, visitor typing. Events published by an API process travel
through the broker (Redis across instances); the stream also re-reads the database every few
seconds (and from `Last-Event-ID` on resume), so what a job or another process wrote without
publishing (a Telegram message, a rule's handoff) still arrives, a little later. Every event
with an id is a database row (UUIDv7), so resuming is "rows after this id".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from parley.conversations import presence
from parley.conversations import repository as repo
from parley.kit.db import TenantId, UserId, tenant_session
from parley.kit.ids import id_floor
from parley.kit.jobs import worker_nudge
from parley.kit.metrics import SSE_CONNECTIONS
from parley.kit.pubsub import RESYNC
from parley.kit.runtime import Runtime
from parley.kit.sse import sse_comment, sse_event

log = structlog.get_logger(__name__)

POLL_SECONDS = 2.0  # how often a staff stream re-reads what nobody published
KEEPALIVE_SECONDS = 15.0
WINDOW = timedelta(seconds=5)  # re-read overlap: a row may commit after a later id was sent
BATCH = 200


def topic(tenant_id: TenantId, conversation_id: uuid.UUID) -> str:
    """The visitor's conversation: what the widget's events stream follows."""
    return f"conv:{tenant_id}:{conversation_id}"


def inbox_topic(tenant_id: TenantId) -> str:
    """The workspace's staff stream."""
    return f"inbox:{tenant_id}"


@dataclass
class Pending:
    """Events to publish once the transaction that wrote them has committed (an endpoint
    hands `flush` to a background task, which runs after the response, so after the commit)."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Jobs were enqueued without pgqueuer's per-insert NOTIFY (the operator reply's SQL
    # function, migration 0023): wake the workers after the commit.
    wake_workers: bool = False

    def add(self, topic_name: str, event: dict[str, Any]) -> None:
        self.items.append((topic_name, event))

    async def flush(self, runtime: Runtime) -> None:
        if self.wake_workers:
            worker_nudge(runtime).poke()
            self.wake_workers = False
        for name, event in self.items:
            await runtime.broker.publish(name, event)
        self.items.clear()


def staff_event(
    kind: str, event_id: uuid.UUID | str | None, data: dict[str, Any]
) -> dict[str, Any]:
    return {"type": kind, "id": str(event_id) if event_id else None, "data": data}


async def publish_visitor_message(
    runtime: Runtime, tenant_id: TenantId, message: dict[str, Any]
) -> None:
    """A message the visitor's side wrote (visitor or bot), for the staff stream."""
    await runtime.broker.publish(
        inbox_topic(tenant_id), staff_event("message.created", message["id"], message)
    )


def _millis(event_id: uuid.UUID) -> int:
    return int.from_bytes(event_id.bytes[:6], "big")


async def _rows_after(
    runtime: Runtime, tenant_id: TenantId, after: uuid.UUID
) -> list[dict[str, Any]]:
    async with tenant_session(runtime.db, tenant_id) as session:
        return await repo.inbox_events_after(session, tenant_id, after, BATCH)


async def _set_presence(
    runtime: Runtime,
    tenant_id: TenantId,
    user_id: UserId | None,
    change: Callable[[AsyncSession, TenantId, uuid.UUID], Awaitable[None]],
) -> None:
    """This stream opened, beat or closed (`presence`: counted per stream)."""
    if user_id is None:
        return
    try:
        async with tenant_session(runtime.db, tenant_id) as session:
            await change(session, tenant_id, user_id)
    except Exception as exc:  # presence is advisory; the stream goes on
        log.warning("inbox.presence_failed", tenant_id=str(tenant_id), error=type(exc).__name__)


async def inbox_stream(
    runtime: Runtime,
    tenant_id: TenantId,
    user_id: UserId | None,
    last_event_id: uuid.UUID | None,
    disconnected: Callable[[], Awaitable[bool]],
    follow: bool,
) -> AsyncIterator[bytes]:
    """The staff stream. Without `Last-Event-ID` it starts now; with it, it first replays
    what came after that event. `follow=False` ends after the replay (a polling client)."""
    SSE_CONNECTIONS.labels("inbox").inc()
    sent: dict[str, int] = {}
    newest = last_event_id or id_floor(datetime.now(UTC))

    def fresh(event_id: str) -> bool:
        if event_id in sent:
            return False
        sent[event_id] = _millis(uuid.UUID(event_id))
        return True

    try:
        async with runtime.broker.subscribe(inbox_topic(tenant_id)) as queue:
            await _set_presence(runtime, tenant_id, user_id, presence.opened)
            yield sse_comment("connected")
            after = newest
            for row in await _rows_after(runtime, tenant_id, after):
                if fresh(row["id"]):
                    newest = max(newest, uuid.UUID(row["id"]))
                    yield sse_event(row["type"], row["data"], row["id"])
            if not follow:
                return
            last_poll = last_beat = time.monotonic()
            while not await disconnected():
                now = time.monotonic()
                if now - last_poll >= POLL_SECONDS:
                    last_poll = now
                    floor = id_floor(datetime.fromtimestamp(_millis(newest) / 1000, UTC) - WINDOW)
                    for row in await _rows_after(runtime, tenant_id, floor):
                        if fresh(row["id"]):
                            newest = max(newest, uuid.UUID(row["id"]))
                            yield sse_event(row["type"], row["data"], row["id"])
                    horizon = _millis(floor)
                    for key in [k for k, ms in sent.items() if ms < horizon]:
                        del sent[key]
                if now - last_beat >= KEEPALIVE_SECONDS:
                    last_beat = now
                    await _set_presence(runtime, tenant_id, user_id, presence.beat)
                    yield sse_comment()
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=POLL_SECONDS)
                except TimeoutError:
                    continue
                if event.get("type") == RESYNC:  # Redis was away: re-read the database now
                    last_poll = 0.0
                    continue
                event_id = event.get("id")
                if not event_id:  # typing: not stored, not replayed
                    yield sse_event(str(event.get("type")), event.get("data") or {})
                elif fresh(str(event_id)):
                    newest = max(newest, uuid.UUID(str(event_id)))
                    yield sse_event(str(event.get("type")), event.get("data") or {}, str(event_id))
    finally:
        SSE_CONNECTIONS.labels("inbox").dec()
        # The server cancels a stream whose client left; shielded, so the uncount still runs.
        with anyio.CancelScope(shield=True):
            await _set_presence(runtime, tenant_id, user_id, presence.closed)
