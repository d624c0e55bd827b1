"""A worker process for the crash test: its job signals it started, then hangs until killed."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from parley.kit.db import create_database
from parley.kit.jobs import JobContext, JobRegistry, Worker


async def main(url: str, entrypoint: str, marker: str) -> None:
    registry = JobRegistry()

    @registry.job(entrypoint)
    async def hang(ctx: JobContext) -> None:
        Path(marker).write_text(str(ctx.job_id))
        await asyncio.sleep(3600)

    db = create_database(url, pool_size=2)
    await Worker(
        db=db,
        registry=registry,
        heartbeat_timeout=timedelta(seconds=2),
        dequeue_timeout=timedelta(seconds=0.2),
    ).run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
