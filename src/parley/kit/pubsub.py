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


class RedisBroker:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        try:
            await self.redis.publish(f"parley:ev:{topic}", json.dumps(event, default=str))
        except Exception as exc:  # streams catch up from the database
            log.warning("pubsub.publish_failed", error=type(exc).__name__)

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(f"parley:ev:{topic}")

        async def pump() -> None:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    with contextlib.suppress(asyncio.QueueFull, ValueError):
                        queue.put_nowait(json.loads(message["data"]))

        task = asyncio.create_task(pump())
        try:
            yield queue
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
                await pubsub.aclose()
