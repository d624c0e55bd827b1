"""What a running process holds: settings, database, keys, optional Redis.

Built once by `create_app()`'s lifespan (or by the CLI for commands) and reached by routes
through `RuntimeDep`; nothing request-specific lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Request

if TYPE_CHECKING:
    from parley.kit.db import Database
    from parley.kit.security import Keyring
    from parley.settings import Settings

T = TypeVar("T")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: Keyring
    redis: Any | None = None
    limiter: Any = None
    broker: Any = None
    pgvector: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    clients: dict[str, Any] = field(default_factory=dict)  # outbound clients, per process
    caches: dict[str, Any] = field(default_factory=dict)  # immutable data, per process

    def client(self, key: str, build: Callable[[], T]) -> T:
        """The process's client under `key`, built by `build` on first use. Built once per
        runtime, never per module, so a test's runtime and the app's never share one; the
        lifespan closes every one that has `aclose`."""
        found = self.clients.get(key)
        if found is None:
            found = self.clients[key] = build()
        made: T = found
        return made


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]
