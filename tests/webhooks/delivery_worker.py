"""A product job worker in its own process, for the crash test (killed with SIGKILL)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path


async def main(url: str, data_dir: str) -> None:
    import parley.tasks  # noqa: F401  (registers the product's jobs)
    from parley.kit.boot import build_runtime
    from parley.kit.jobs import REGISTRY, Worker
    from tests.conftest import make_settings
    from tests.webhooks.conftest import CRASH

    runtime = await build_runtime(make_settings(Path(data_dir), **CRASH), url)
    await Worker(
        db=runtime.db,
        registry=REGISTRY,
        runtime=runtime,
        heartbeat_timeout=timedelta(seconds=1),
        dequeue_timeout=timedelta(seconds=0.2),
    ).run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
