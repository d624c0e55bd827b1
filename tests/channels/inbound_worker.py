"""A real worker process for the inbound crash test: the product's jobs, the runtime built as
`parley worker` builds it, a short heartbeat so a killed worker's job is re-picked quickly."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path


async def main(url: str, data_dir: str, overrides: str) -> None:
    from parley.app import make_worker
    from parley.kit.boot import build_runtime
    from tests.conftest import make_settings

    settings = make_settings(Path(data_dir), **json.loads(overrides))
    runtime = await build_runtime(settings, url)
    worker = make_worker(runtime)
    worker.heartbeat_timeout = timedelta(seconds=2)
    worker.dequeue_timeout = timedelta(seconds=0.2)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
