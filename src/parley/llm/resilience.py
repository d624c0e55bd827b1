"""Circuit breakers for providers: after repeated failures a model endpoint is skipped for a
while (turns go to the fallback model, or fail fast) instead of making every visitor wait for
a dead upstream. Half-open after the cool-down: one trial call decides."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    reset_after: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    _clock: object = field(default=time.monotonic, repr=False)

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self._now() - self.opened_at >= self.reset_after:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        return self.state != "open"

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.failure_threshold:
            self.opened_at = self._now()


def retry_delay(attempt: int, base: float = 0.2, cap: float = 2.0) -> float:
    """Backoff before retrying a provider call: exponential with full jitter."""
    ceiling = min(cap, base * (2**attempt))
    return random.uniform(0, ceiling)  # noqa: S311
