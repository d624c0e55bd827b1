"""Redis restarts under the pub/sub and rate-limit paths (issue 20, R1): a private
`redis-server` on a free port is stopped and started again; a subscription opened before the
outage hears events again afterwards (resubscribed, with a resync marker for what it missed),
one opened during the outage still opens, and the rate limiter refuses (fails closed) while
Redis is away and counts again once it is back."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from parley.kit.errors import ServiceUnavailable
from parley.kit.pubsub import RESYNC, RedisBroker
from parley.kit.ratelimit import RedisRateLimiter

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


class PrivateRedis:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(shutil.which("redis-server")),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            import time

            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def _client(port: int) -> Any:
    from redis.asyncio import Redis

    # As the app builds it (parley.app.build_runtime).
    return Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=2, socket_connect_timeout=2)


async def _next(queue: asyncio.Queue[dict[str, Any]], timeout: float = 5.0) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), timeout=timeout)


async def _publish_until_heard(
    broker: RedisBroker, queue: asyncio.Queue[dict[str, Any]], topic: str, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Publish every 0.2 s until the subscriber hears one; returns what it got meanwhile."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await broker.publish(topic, {"type": "ping"})
        try:
            event = await _next(queue, 0.2)
        except TimeoutError:
            continue
        got.append(event)
        if event["type"] == "ping":
            return got
    raise AssertionError(f"nothing heard after the restart; got {got}")


async def test_a_subscription_hears_events_again_after_redis_restarts(
    redis_server: PrivateRedis,
) -> None:
    redis = _client(redis_server.port)
    broker = RedisBroker(redis, max_pause=0.5)
    try:
        async with broker.subscribe("t1") as queue:
            await broker.publish("t1", {"type": "before"})
            assert (await _next(queue))["type"] == "before"
            redis_server.stop()
            await broker.publish("t1", {"type": "lost"})  # swallowed: streams read the DB
            await asyncio.sleep(3.0)  # long enough for redis-py's own retries to give up
            redis_server.start()
            got = await _publish_until_heard(broker, queue, "t1")
            assert got[0]["type"] == RESYNC  # first: "you missed some", then live again
            assert got[-1]["type"] == "ping"
            assert "lost" not in [e["type"] for e in got]
    finally:
        await redis.aclose()


async def test_a_subscription_opened_while_redis_is_away_opens_and_catches_up(
    redis_server: PrivateRedis,
) -> None:
    redis = _client(redis_server.port)
    broker = RedisBroker(redis, max_pause=0.5)
    redis_server.stop()
    try:
        async with broker.subscribe("t2") as queue:  # does not raise
            redis_server.start()
            got = await _publish_until_heard(broker, queue, "t2")
            assert got[0]["type"] == RESYNC
    finally:
        await redis.aclose()


async def test_rate_limits_fail_closed_while_redis_is_away_and_count_again_after(
    redis_server: PrivateRedis,
) -> None:
    redis = _client(redis_server.port)
    limiter = RedisRateLimiter(redis)
    try:
        assert (await limiter.hit("login:a", 3, 60)).remaining == 2
        redis_server.stop()
        with pytest.raises(ServiceUnavailable) as refused:
            await limiter.hit("login:a", 3, 60)
        assert refused.value.headers["Retry-After"].isdigit()
        redis_server.start()  # empty: a restart without persistence forgets the counts
        first = await limiter.hit("login:a", 3, 60)
        assert (first.allowed, first.remaining) == (True, 2)
        await limiter.hit("login:a", 3, 60)
        await limiter.hit("login:a", 3, 60)
        assert not (await limiter.hit("login:a", 3, 60)).allowed
    finally:
        await redis.aclose()
