"""What a running process holds: settings, database, keys, optional Redis.

Built once by `create_app()`'s lifespan (or by the CLI for commands) and reached by routes
through `RuntimeDep`; nothing request-specific lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

if TYPE_CHECKING:
    from parley.kit.db import Database
    from parley.kit.security import Keyring
    from parley.settings import Settings


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


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]
