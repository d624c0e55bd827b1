"""Fan-out of live events (new messages) to the SSE streams that watch a conversation.

In process memory for a single instance; Redis pub/sub when `REDIS_URL` is set, so a visitor
connected to one API process sees a reply posted through another. Streams always re-read what
they missed from PostgreSQL (by last event id), so a lost notification delays, never loses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)


class Broker(Protocol):
    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...

    def subscribe(self, topic: str) -> Any: ...  # async context manager → asyncio.Queue


class MemoryBroker:
    def __init__(self) -> None:
        self._subs: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        for queue in list(self._subs.get(topic, ())):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._subs[topic].add(queue)
        try:
            yield queue
        finally:
            self._subs[topic].discard(queue)
            if not self._subs[topic]:
                del self._subs[topic]


RESYNC = "stream.resync"
"""Put in a subscriber's queue after its Redis subscription was lost and restored: events
published meanwhile were missed, so the stream re-reads from the database (or ends, and the
client reconnects with `Last-Event-ID`)."""


class RedisBroker:
    """Redis pub/sub that survives Redis restarts: each subscription's reader reconnects and
    resubscribes with backoff (redis-py gives up after a few quick retries, which left a
    stream deaf for good after a 30 s outage), and a subscription opened while Redis is away
    still opens (the reader keeps trying; streams also read the database)."""

    def __init__(self, redis: Any, *, max_pause: float = 5.0) -> None:
        self.redis = redis
        self.max_pause = max_pause

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        try:
            await self.redis.publish(f"parley:ev:{topic}", json.dumps(event, default=str))
        except Exception as exc:  # streams catch up from the database
            log.warning("pubsub.publish_failed", error=type(exc).__name__)

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        channel = f"parley:ev:{topic}"
        ready = asyncio.Event()

        async def pump() -> None:
            pause = 0.2
            lost = False
            while True:
                pubsub = self.redis.pubsub()
                try:
                    await pubsub.subscribe(channel)
                    ready.set()
                    if lost:
                        log.info("pubsub.resubscribed", topic=topic)
                        with contextlib.suppress(asyncio.QueueFull):
                            queue.put_nowait({"type": RESYNC})
                    lost, pause = False, 0.2
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            with contextlib.suppress(asyncio.QueueFull, ValueError):
                                queue.put_nowait(json.loads(message["data"]))
                except Exception as exc:
                    if not lost:
                        log.warning("pubsub.subscription_lost", error=type(exc).__name__)
                    lost = True
                finally:
                    ready.set()  # the first try is over, subscribed or not
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.max_pause)

        task = asyncio.create_task(pump())
        try:
            # Subscribed before the caller reads the database, so nothing falls in between.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), timeout=3.0)
            yield queue
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
