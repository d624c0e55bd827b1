"""Fixed-window rate limits, in Redis when configured (shared by every process), else in
process memory (one instance only).

Answers carry the IETF `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` fields and
`Retry-After` on refusal. With Redis configured but unreachable, limits fail closed for auth
routes (a refusal), since an open door there invites credential stuffing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from parley.kit.errors import RETRY_AFTER_SECONDS, ServiceUnavailable, TooManyRequests


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.reset_after)
        return out


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_seconds: int) -> Decision: ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, key: str, limit: int, window_seconds: int) -> Decision:
        now = time.time()
        window = int(now // window_seconds)
        if len(self._counts) > 100_000:  # drop stale windows
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
        count = self._counts.get((key, window), 0) + 1
        self._counts[(key, window)] = count
        reset = max(1, math.ceil((window + 1) * window_seconds - now))
        return Decision(count <= limit, limit, max(0, limit - count), reset)


class RedisRateLimiter:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def hit(self, key: str, limit: int, window_seconds: int) -> Decision:
        now = time.time()
        window = int(now // window_seconds)
        rkey = f"parley:rl:{key}:{window}"
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.incr(rkey)
            pipe.expire(rkey, window_seconds + 1)
            count, _ = await pipe.execute()
        except Exception as exc:  # fail closed: see module docstring
            raise ServiceUnavailable(
                "Rate limiting is unavailable; try again shortly.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from exc
        reset = max(1, math.ceil((window + 1) * window_seconds - now))
        return Decision(int(count) <= limit, limit, max(0, limit - int(count)), reset)


async def enforce(limiter: RateLimiter, key: str, limit: int, window_seconds: int) -> Decision:
    decision = await limiter.hit(key, limit, window_seconds)
    if not decision.allowed:
        raise TooManyRequests(
            f"Too many attempts; retry in {decision.reset_after} s.", headers=decision.headers()
        )
    return decision
